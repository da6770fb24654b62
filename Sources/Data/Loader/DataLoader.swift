import Foundation
import Tensor

/// Loader settings, named after MindCV's keys.
public struct LoaderOptions: Sendable, Equatable {
    /// `batch_size`, per rank.
    public var batchSize: Int = 128
    /// `shuffle`: a fresh permutation every epoch from (seed, epoch).
    public var shuffle: Bool = true
    /// `drop_remainder`: drop the last incomplete batch (set false for validation).
    public var dropRemainder: Bool = true
    /// `num_parallel_workers`: decoding/augmenting threads; 0 runs everything on the calling thread.
    public var numParallelWorkers: Int = 8
    /// Batches prepared ahead of the consumer (including the one being assembled).
    public var prefetchBatches: Int = 2
    /// `seed`: drives shuffling, augmentation, replacements and mixing.
    public var seed: UInt64 = 42
    /// This process's rank and the number of ranks (data-parallel sharding).
    public var rank: Int = 0
    public var worldSize: Int = 1
    /// `num_samples`: cap on samples per epoch (per rank).
    public var numSamples: Int? = nil
    /// `aug_repeats`: repeated augmentation factor (0/1 off).
    public var augRepeats: Int = 0
    /// Pad shards by wrapping so every rank reads the same count (MindSpore). False for validation.
    public var padShards: Bool = true
    /// `strict_data`: a corrupt image stops the epoch with an error instead of being replaced.
    public var strictData: Bool = false
    /// Leave a sample that fails to load out of its batch instead of replacing it (evaluation: the
    /// metric then covers exactly the images that were read, and the summary lists the others).
    public var dropFailedSamples: Bool = false
    /// Random replacements tried for one failed sample before giving up.
    public var maxReplacementAttempts: Int = 10

    public init(batchSize: Int = 128, shuffle: Bool = true, dropRemainder: Bool = true, numParallelWorkers: Int = 8,
                prefetchBatches: Int = 2, seed: UInt64 = 42, rank: Int = 0, worldSize: Int = 1,
                numSamples: Int? = nil, augRepeats: Int = 0, padShards: Bool = true, strictData: Bool = false,
                maxReplacementAttempts: Int = 10) {
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropRemainder = dropRemainder
        self.numParallelWorkers = numParallelWorkers
        self.prefetchBatches = prefetchBatches
        self.seed = seed
        self.rank = rank
        self.worldSize = worldSize
        self.numSamples = numSamples
        self.augRepeats = augRepeats
        self.padShards = padShards
        self.strictData = strictData
        self.maxReplacementAttempts = maxReplacementAttempts
    }

    /// Validation defaults: file order, no dropping, no padding, and an image that fails to load is
    /// left out (and listed in the summary), never replaced by another.
    public static func evaluation(batchSize: Int, numParallelWorkers: Int = 8, rank: Int = 0, worldSize: Int = 1) -> LoaderOptions {
        var options = LoaderOptions(batchSize: batchSize, shuffle: false, dropRemainder: false, numParallelWorkers: numParallelWorkers,
                                    rank: rank, worldSize: worldSize, padShards: false)
        options.dropFailedSamples = true
        return options
    }
}

/// A parallel, deterministic batch loader.
///
/// Each epoch, the sampler fixes this rank's sample order; worker threads decode and transform samples
/// into preallocated batch tensors and hand complete batches to the consumer in order, at most
/// `prefetchBatches` ahead. Every random decision of sample k comes from a generator seeded by
/// (seed, epoch, k's global position), and batch mixing from (seed, epoch, batch, rank), so an epoch
/// is the same bit for bit whatever the number of workers or their timing.
///
/// A sample that fails to load (corrupt, truncated, unreadable, not an image) is recorded in the
/// epoch summary and replaced by a random other sample (seeded as well); with `dropFailedSamples`
/// (evaluation) it is left out of its batch instead, so batches may be smaller and a batch whose
/// every sample failed is not delivered; with `strictData` the epoch fails with the error.
///
/// ```swift
/// let loader = try DataLoader(dataset: train, transform: trainTransform, options: options, mixup: mixup)
/// let epoch = loader.epoch(e)
/// while let batch = try epoch.next() { … }
/// print(epoch.summary.skippedCount)
/// ```
public final class DataLoader: Sendable {
    public let dataset: any ImageDataset
    public let transform: any ImageTransform
    public let options: LoaderOptions
    /// Batch mixing, applied when active.
    public let mixup: MixupCutmix?
    public let sampler: ShardSampler
    /// Called (on a worker thread) for every failed load as it happens, e.g. to log a warning.
    public let onSkippedSample: (@Sendable (SkippedSample) -> Void)?

    /// - Parameters:
    ///   - dataset: the samples (e.g. an `ImageFolder`).
    ///   - transform: per-image transform (`TrainTransform` or `EvalTransform`).
    ///   - options: batching, workers, seed, sharding, strictness.
    ///   - mixup: batch-level Mixup/CutMix; ignored unless active. Batches then carry soft `targets`.
    ///   - onSkippedSample: called from a worker thread for each corrupt sample met (before replacement).
    public init(dataset: any ImageDataset, transform: any ImageTransform, options: LoaderOptions,
                mixup: MixupCutmix? = nil, onSkippedSample: (@Sendable (SkippedSample) -> Void)? = nil) throws(DataError) {
        guard options.batchSize >= 1 else { throw .invalidConfig(key: "batch_size", reason: "must be ≥ 1, got \(options.batchSize)") }
        guard options.numParallelWorkers >= 0 else {
            throw .invalidConfig(key: "num_parallel_workers", reason: "must be ≥ 0, got \(options.numParallelWorkers)")
        }
        guard options.prefetchBatches >= 1 else { throw .invalidConfig(key: "prefetch", reason: "must be ≥ 1, got \(options.prefetchBatches)") }
        guard options.maxReplacementAttempts >= 0 else { throw .invalidConfig(key: "max_replacement_attempts", reason: "must be ≥ 0") }
        if let mixup, mixup.isActive, mixup.numClasses < dataset.classes.count {
            throw .invalidConfig(key: "num_classes", reason: "\(mixup.numClasses) is fewer than the \(dataset.classes.count) classes of the dataset")
        }
        sampler = try ShardSampler(datasetCount: dataset.count, shuffle: options.shuffle, seed: options.seed,
                                   rank: options.rank, worldSize: options.worldSize, numSamples: options.numSamples,
                                   repeats: options.augRepeats, padShards: options.padShards)
        self.dataset = dataset
        self.transform = transform
        self.options = options
        self.mixup = (mixup?.isActive ?? false) ? mixup : nil
        self.onSkippedSample = onSkippedSample
    }

    /// Samples this rank reads per epoch (before dropping the remainder).
    public var samplesPerEpoch: Int { sampler.samplesPerEpoch }

    /// Batches per epoch: ⌊n / B⌋ when dropping the remainder, else ⌈n / B⌉.
    public var batchesPerEpoch: Int {
        let n = samplesPerEpoch, b = options.batchSize
        return options.dropRemainder ? n / b : (n + b - 1) / b
    }

    /// Starts epoch `epoch` (workers begin immediately) and returns its batch iterator. With
    /// `startBatch` k the first k batches are skipped without being read: every random decision
    /// hangs on (seed, epoch, position), so batch k onwards are those of an unbroken epoch (a resume
    /// inside an epoch). k is clamped to 0...batchesPerEpoch.
    public func epoch(_ epoch: Int, startBatch: Int = 0) -> EpochIterator {
        EpochIterator(state: EpochState(loader: self, epoch: epoch, startBatch: startBatch))
    }
}

/// The batches of one epoch, in order. Not thread-safe: consume it from one thread. Dropping it (or
/// `cancel()`) stops the workers.
public final class EpochIterator {
    let state: EpochState

    init(state: EpochState) {
        self.state = state
        state.start()
    }

    deinit { state.cancel(wait: false) }

    /// The next batch, or nil at the end of the epoch (or after `cancel()`).
    /// - Throws: the first sample error with `strictData`, `DataError.replacementFailed` when a sample
    ///   and all its replacements fail. The workers stop; later calls throw the same error.
    public func next() throws(DataError) -> Batch? {
        try state.nextBatch()
    }

    /// The epoch so far; complete after `next()` returned nil.
    public var summary: EpochSummary { state.summary() }

    /// Stops the workers and waits for them to exit.
    public func cancel() { state.cancel(wait: true) }
}

/// A batch being assembled by the workers.
final class PendingBatch: @unchecked Sendable {
    let images: Tensor
    var labels: [Int]
    var paths: [String]
    var indices: [Int]
    /// False for slots whose sample failed and is left out (`dropFailedSamples`).
    var loaded: [Bool]
    var remaining: Int

    init(size: Int, channels: Int, height: Int, width: Int) {
        images = Tensor(uninitializedShape: [size, channels, height, width])
        labels = [Int](repeating: 0, count: size)
        paths = [String](repeating: "", count: size)
        indices = [Int](repeating: 0, count: size)
        loaded = [Bool](repeating: true, count: size)
        remaining = size
    }
}

/// Shared state of one epoch, guarded by `condition`.
final class EpochState: @unchecked Sendable {
    let loader: DataLoader
    let epoch: Int
    let order: ShardOrder
    let batchSize: Int
    let batchCount: Int
    let sampleCount: Int
    let height: Int, width: Int
    let started = Date()

    private let condition = NSCondition()
    private var nextPosition = 0
    private var consumed = 0
    private var pending: [Int: PendingBatch] = [:]
    private var ready: [Int: Batch] = [:]
    private var failure: DataError?
    private var cancelled = false
    private var skipped: [SkippedSample] = []
    private var activeWorkers = 0
    private var finishedAt: Date?
    private var delivered = 0
    private var deliveredSamples = 0
    /// The consumer thread's decoder when `numParallelWorkers` is 0 (only touched by the consumer).
    private var inlineDecoder: ImageDecoder?

    init(loader: DataLoader, epoch: Int, startBatch: Int = 0) {
        self.loader = loader
        self.epoch = epoch
        order = loader.sampler.order(epoch: epoch)
        batchSize = loader.options.batchSize
        batchCount = loader.batchesPerEpoch
        sampleCount = loader.options.dropRemainder ? batchCount * batchSize : order.indices.count
        consumed = min(max(startBatch, 0), batchCount)
        nextPosition = min(consumed * batchSize, sampleCount)
        height = loader.transform.outputHeight
        width = loader.transform.outputWidth
    }

    func start() {
        let workers = min(loader.options.numParallelWorkers, max(sampleCount, 1))
        guard workers > 0 else { return }
        activeWorkers = workers
        for i in 0..<workers {
            let thread = Thread { [self] in self.workerLoop() }
            thread.name = "vitzoo-data-\(i)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    func cancel(wait: Bool) {
        condition.lock()
        cancelled = true
        condition.broadcast()
        if wait { while activeWorkers > 0 { condition.wait() } }
        condition.unlock()
    }

    func summary() -> EpochSummary {
        condition.lock()
        defer { condition.unlock() }
        let end = finishedAt ?? Date()
        return EpochSummary(epoch: epoch, batches: delivered, samples: deliveredSamples, droppedFailures: loader.options.dropFailedSamples,
                            skipped: skipped.enumerated()
                                .sorted { ($0.element.position, $0.offset) < ($1.element.position, $1.offset) }
                                .map(\.element),
                            seconds: end.timeIntervalSince(started))
    }

    // MARK: Consumer

    /// The next batch that holds at least one sample (with `dropFailedSamples` a batch may lose all).
    func nextBatch() throws(DataError) -> Batch? {
        while let batch = try nextAssembledBatch() {
            if batch.count > 0 { return batch }
        }
        return nil
    }

    private func nextAssembledBatch() throws(DataError) -> Batch? {
        let inline = loader.options.numParallelWorkers == 0
        if inline {
            // Build the next batch on this thread.
            let decoder = inlineDecoder ?? ImageDecoder()
            inlineDecoder = decoder
            while true {
                condition.lock()
                let done = ready[consumed] != nil || failure != nil || consumed >= batchCount || cancelled
                condition.unlock()
                if done { break }
                if !workOnce(decoder: decoder, blocking: false) { break }
            }
        }
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let failure {
                cancelled = true
                condition.broadcast()
                throw failure
            }
            if cancelled {
                if finishedAt == nil { finishedAt = Date() }
                return nil
            }
            if let batch = ready.removeValue(forKey: consumed) {
                consumed += 1
                if consumed == batchCount { finishedAt = Date() }
                condition.broadcast()
                if batch.count > 0 {
                    delivered += 1
                    deliveredSamples += batch.count
                }
                return batch
            }
            if consumed >= batchCount {
                if finishedAt == nil { finishedAt = Date() }
                return nil
            }
            condition.wait()
        }
    }

    // MARK: Workers

    private func workerLoop() {
        let decoder = ImageDecoder()
        while workOnce(decoder: decoder, blocking: true) {}
        condition.lock()
        activeWorkers -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Claims one sample, processes it, and files the result. Returns false when there is nothing
    /// left to do (epoch done, cancelled, failed) — or, when not blocking, nothing claimable now.
    private func workOnce(decoder: ImageDecoder, blocking: Bool) -> Bool {
        let prefetch = loader.options.prefetchBatches
        condition.lock()
        var claimed: (position: Int, batch: PendingBatch)?
        while claimed == nil {
            if cancelled || failure != nil || nextPosition >= sampleCount { break }
            let b = nextPosition / batchSize
            if b < consumed + prefetch {
                let batch: PendingBatch
                if let existing = pending[b] {
                    batch = existing
                } else {
                    let size = min(batchSize, sampleCount - b * batchSize)
                    batch = PendingBatch(size: size, channels: 3, height: height, width: width)
                    pending[b] = batch
                }
                claimed = (nextPosition, batch)
                nextPosition += 1
            } else if blocking {
                condition.wait()
            } else {
                break
            }
        }
        condition.unlock()
        guard let (position, batch) = claimed else { return false }

        let slot = position % batchSize
        let result = loadSample(position: position, decoder: decoder,
                                into: batch.images.storage.pointer + slot * 3 * height * width)

        condition.lock()
        skipped.append(contentsOf: result.skipped)
        if let error = result.error {
            if failure == nil { failure = error }
            condition.broadcast()
            condition.unlock()
            return false
        }
        batch.labels[slot] = result.label
        batch.paths[slot] = result.path
        batch.indices[slot] = result.index
        batch.loaded[slot] = !result.dropped
        batch.remaining -= 1
        let complete = batch.remaining == 0
        let batchIndex = position / batchSize
        if complete { pending.removeValue(forKey: batchIndex) }
        condition.unlock()

        if complete {
            let finished = finish(batch, index: batchIndex)
            condition.lock()
            ready[batchIndex] = finished
            condition.broadcast()
            condition.unlock()
        }
        return true
    }

    private struct SampleResult {
        var index = 0
        var label = 0
        var path = ""
        var skipped: [SkippedSample] = []
        var error: DataError?
        /// The sample failed and is left out of its batch.
        var dropped = false
    }

    /// Loads sample `position` (replacing it if it fails) and transforms it into `output`.
    private func loadSample(position: Int, decoder: ImageDecoder, into output: UnsafeMutablePointer<Float>) -> SampleResult {
        let dataset = loader.dataset
        let options = loader.options
        let globalPosition = order.positions[position]
        var result = SampleResult()
        var index = order.indices[position]
        var replacementRNG: RandomGenerator?
        var attempts = 0
        while true {
            do {
                let image = try dataset.image(at: index, decoder: decoder)
                var rng = DataSeeds.generator(options.seed, epoch: epoch, position: globalPosition, stream: .transform)
                loader.transform.apply(image, rng: &rng, into: output)
                result.index = index
                result.label = dataset.label(at: index)
                result.path = dataset.path(at: index)
                return result
            } catch {
                if options.strictData || !error.isSampleFailure {
                    result.error = error
                    return result
                }
                let path = error.path ?? dataset.path(at: index)
                let skip = SkippedSample(position: position, path: path, reason: error.description)
                result.skipped.append(skip)
                loader.onSkippedSample?(skip)
                if options.dropFailedSamples {
                    result.dropped = true
                    return result
                }
                if attempts >= options.maxReplacementAttempts {
                    result.error = .replacementFailed(path: dataset.path(at: order.indices[position]), attempts: attempts)
                    return result
                }
                attempts += 1
                if replacementRNG == nil {
                    replacementRNG = DataSeeds.generator(options.seed, epoch: epoch, position: globalPosition, stream: .replacement)
                }
                index = replacementRNG!.nextInt(below: dataset.count)
            }
        }
    }

    /// Turns an assembled batch into a `Batch` (without the samples left out), mixing it when configured.
    private func finish(_ pending: PendingBatch, index: Int) -> Batch {
        var batch = Batch(index: index, images: pending.images, labels: pending.labels, targets: nil, mixing: nil,
                          paths: pending.paths, sampleIndices: pending.indices)
        let kept = pending.loaded.indices.filter { pending.loaded[$0] }
        if kept.count < pending.loaded.count {
            batch.labels = kept.map { pending.labels[$0] }
            batch.paths = kept.map { pending.paths[$0] }
            batch.sampleIndices = kept.map { pending.indices[$0] }
            guard !kept.isEmpty else { return batch }
            let sample = 3 * height * width
            let images = Tensor(uninitializedShape: [kept.count, 3, height, width])
            for (to, from) in kept.enumerated() {
                (images.storage.pointer + to * sample).update(from: pending.images.storage.pointer + from * sample, count: sample)
            }
            batch.images = images
        }
        if let mixup = loader.mixup {
            let options = loader.options
            var rng = DataSeeds.generator(options.seed, epoch: epoch, position: index &* options.worldSize &+ options.rank,
                                          stream: .mixing)
            let (targets, outcome) = mixup.apply(images: &batch.images, labels: batch.labels, rng: &rng)
            batch.targets = targets
            batch.mixing = outcome
        }
        return batch
    }
}
