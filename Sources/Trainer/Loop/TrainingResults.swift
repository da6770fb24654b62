import Foundation

/// Why a run stopped early or could not start.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case nonFiniteLoss(epoch: Int, step: Int, globalStep: Int, value: Float)
    case invalidRecipe(key: String, reason: String)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(e, s, g, v):
            return "the loss became \(v) at epoch \(e + 1), step \(s + 1) (global step \(g)); stopping. " +
                "The last good checkpoint is left intact."
        case let .invalidRecipe(k, r): return "recipe key '\(k)': \(r)"
        }
    }
}

/// One line of the metrics file: a finished epoch.
public struct EpochRecord: Codable, Sendable, Equatable {
    /// 1-based.
    public var epoch: Int
    public var trainLoss: Double
    public var lr: Double
    public var top1: Double?
    public var top5: Double?
    public var valLoss: Double?
    public var trainImagesPerSecond: Double
    public var seconds: Double
    public var skippedImages: Int
    /// Validation images that could not be read and were left out of top-1/top-5 (nil: no validation).
    public var valSkippedImages: Int? = nil
}

/// What a finished run reports.
public struct TrainingSummary: Sendable {
    public var epochs: [EpochRecord]
    public var bestTop1: Double?
    public var bestTop5: Double?
    public var bestEpoch: Int?
    public var seconds: Double
    public var lastCheckpoint: String?
    public var bestCheckpoint: String?
}
