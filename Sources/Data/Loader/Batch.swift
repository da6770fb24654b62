import Tensor

/// One batch of training or evaluation data.
public struct Batch: Sendable {
    /// Position of the batch in its epoch (0-based).
    public let index: Int
    /// `[B, 3, H, W]`, normalised float32, NCHW.
    public var images: Tensor
    /// Class index of each sample (after any corrupt-sample replacement).
    public var labels: [Int]
    /// `[B, numClasses]` soft targets when Mixup/CutMix is configured, else nil.
    public var targets: Tensor?
    /// What Mixup/CutMix did to this batch, when configured.
    public var mixing: MixupCutmix.Outcome?
    /// The file each sample came from.
    public var paths: [String]
    /// The dataset index of each sample.
    public var sampleIndices: [Int]

    /// Batch size B.
    public var count: Int { labels.count }
}

/// A sample that failed to load during an epoch (replaced by another, or left out in evaluation).
public struct SkippedSample: Sendable, Equatable {
    /// Local position in the epoch where it was met.
    public var position: Int
    public var path: String
    /// The decoder's or file system's message.
    public var reason: String
}

/// What happened during one epoch, complete once the epoch iterator has returned nil.
public struct EpochSummary: Sendable {
    public var epoch: Int
    public var batches: Int
    /// Samples delivered in batches.
    public var samples: Int
    /// Whether failed samples were left out (evaluation) rather than replaced (training).
    public var droppedFailures: Bool = false
    /// Every failed load, in epoch order (a file met twice is listed twice).
    public var skipped: [SkippedSample]
    /// Wall-clock seconds from the start of the epoch to its last batch.
    public var seconds: Double

    /// Number of failed loads (each replaced by another sample, or left out with `droppedFailures`).
    public var skippedCount: Int { skipped.count }
    /// Distinct paths that failed, sorted.
    public var skippedPaths: [String] { Array(Set(skipped.map(\.path))).sorted() }
    /// Samples per second over the epoch.
    public var imagesPerSecond: Double { seconds > 0 ? Double(samples) / seconds : 0 }
}
