import Foundation
import Models
import Tensor
import DataPipeline

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
    public var epoch: Int
    public var trainLoss: Double
    public var lr: Double
    public var top1: Double?
    public var top5: Double?
    public var valLoss: Double?
    public var trainImagesPerSecond: Double
    public var seconds: Double
    public var skippedImages: Int
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

/// A training run from a recipe: data, model, optimizer, schedule, loop, validation, checkpoints.
/// Everything that can be checked (data folders, model name, checkpoint fit, recipe values) is
/// checked in `init`, before any training work starts.
public final class TrainingRun {
    public let recipe: Recipe
    public let communicator: Communicator
    public let model: any Classifier
    public let entry: ModelEntry
    public let trainSet: ImageFolder
    public let valSet: ImageFolder?
    public let trainLoader: DataLoader
    public let valLoader: DataLoader?
    public let schedule: LRSchedule
    public let optimizer: any Optimizer
    public let ema: ExponentialMovingAverage?
    public let checkpoints: CheckpointManager?
    /// Where progress and epoch lines go (rank 0 only).
    public var log: @Sendable (String) -> Void
    /// Set to stop after the current step (e.g. by a signal handler). The interrupted epoch is not
    /// saved: the last completed epoch's checkpoint stays the point to resume from.
    public var stopRequested = false
    /// Stop cleanly after this many completed epochs (checkpoint saved), e.g. to split a run.
    public var stopAfterEpoch: Int?

    var startEpoch = 0
    var globalStep = 0
    var bestTop1: Double?
    var bestTop5: Double?
    var bestEpoch: Int?

    public var peakLR: Double { recipe.effectiveLR(worldSize: communicator.worldSize) }

    public init(recipe: Recipe, communicator: Communicator = LocalCommunicator(), log: @escaping @Sendable (String) -> Void = { print($0) }) throws {
        self.recipe = recipe
        self.communicator = communicator
        let isRoot = communicator.rank == 0
        let silent: @Sendable (String) -> Void = { _ in }
        self.log = isRoot ? log : silent
        guard recipe.loss.uppercased() == "CE" else {
            throw TrainingError.invalidRecipe(key: "loss", reason: "only CE (softmax cross-entropy) is supported, got '\(recipe.loss)'")
        }

        // Data: folders are scanned and validated before anything else.
        trainSet = try ImageFolder(root: recipe.dataDir, split: recipe.trainSplit)
        valSet = recipe.valWhileTrain ? try ImageFolder(root: recipe.dataDir, split: recipe.valSplit, expectedClasses: trainSet.classes) : nil

        // Model.
        entry = try ModelRegistry.entry(recipe.model)
        let numClasses = recipe.numClasses ?? trainSet.classes.count
        guard numClasses >= trainSet.classes.count else {
            throw TrainingError.invalidRecipe(key: "num_classes", reason: "\(numClasses) is fewer than the \(trainSet.classes.count) class folders in \(recipe.dataDir)/\(recipe.trainSplit)")
        }
        let options = ModelOptions(numClasses: numClasses, inChannels: recipe.inChannels, imageSize: recipe.imageResize,
                                   dropRate: Float(recipe.dropRate ?? 0),
                                   dropPathRate: Float(recipe.dropPathRate ?? Double(ModelRegistry.defaultDropPathRate(recipe.model))),
                                   seed: UInt64(truncatingIfNeeded: recipe.seed))
        model = entry.build(options)
        model.state.generator = RandomGenerator(seed: UInt64(truncatingIfNeeded: recipe.seed) &+ 0x5eed_d40b &+ UInt64(communicator.rank))

        // Loaders.
        let interpolation = Interpolation(mindcv: recipe.interpolation)
        let train = try TrainTransform(
            imageSize: recipe.imageResize, scale: try MindCVDefaults.range(recipe.scale, key: "scale"),
            ratio: try MindCVDefaults.range(recipe.ratio, key: "ratio"), interpolation: interpolation,
            hflip: recipe.hflip, vflip: recipe.vflip, colorJitter: recipe.colorJitter, autoAugment: recipe.autoAugment,
            reProb: recipe.reProb, reValue: recipe.reValue.erasingValue, reScale: try MindCVDefaults.range(recipe.reScale, key: "re_scale"),
            reRatio: try MindCVDefaults.range(recipe.reRatio, key: "re_ratio"), reMaxAttempts: recipe.reMaxAttempts,
            mean: recipe.mean, std: recipe.std)
        var loaderOptions = LoaderOptions(batchSize: recipe.batchSize, shuffle: recipe.shuffle, dropRemainder: recipe.dropRemainder,
                                          numParallelWorkers: recipe.numParallelWorkers, seed: UInt64(truncatingIfNeeded: recipe.seed),
                                          rank: communicator.rank, worldSize: communicator.worldSize, numSamples: recipe.numSamples,
                                          augRepeats: recipe.augRepeats, strictData: recipe.strictData)
        loaderOptions.prefetchBatches = 2
        let mixup = (recipe.mixup > 0 || recipe.cutmix > 0)
            ? try MixupCutmix(mixupAlpha: recipe.mixup, cutmixAlpha: recipe.cutmix, cutmixProb: recipe.cutmixProb, numClasses: numClasses)
            : nil
        let logLine = self.log
        trainLoader = try DataLoader(dataset: trainSet, transform: train, options: loaderOptions, mixup: mixup,
                                     onSkippedSample: { s in logLine("warning: skipped unreadable image \(s.path): \(s.reason)") })
        if let valSet {
            let eval = try EvalTransform(imageSize: recipe.imageResize, cropPct: recipe.cropPct, interpolation: interpolation,
                                         mean: recipe.mean, std: recipe.std)
            valLoader = try DataLoader(dataset: valSet, transform: eval,
                                       options: .evaluation(batchSize: recipe.batchSize, numParallelWorkers: recipe.numParallelWorkers,
                                                            rank: communicator.rank, worldSize: communicator.worldSize))
        } else {
            valLoader = nil
        }
        guard trainLoader.batchesPerEpoch > 0 else {
            throw TrainingError.invalidRecipe(key: "batch_size", reason: "\(recipe.batchSize) per rank is larger than the \(trainLoader.samplesPerEpoch) training images this rank reads, with drop_remainder")
        }

        schedule = LRSchedule(recipe: recipe, stepsPerEpoch: trainLoader.batchesPerEpoch, worldSize: communicator.worldSize)
        optimizer = makeOptimizer(recipe: recipe, parameters: model.namedParameters())
        ema = recipe.ema ? ExponentialMovingAverage(model: model, decay: recipe.emaDecay) : nil
        checkpoints = isRoot ? try CheckpointManager(recipe: recipe) : nil

        // Initial weights and resume.
        // `resume` (or MindCV's `ckpt_path` + `resume_opt`) continues a run: weights, optimizer, EMA,
        // step, epoch and generator state. `ckpt_path` alone only initialises the weights.
        if let resume = recipe.resume ?? (recipe.resumeOpt && !recipe.ckptPath.isEmpty ? recipe.ckptPath : nil) {
            let paths = try CheckpointManager.resolve(resume, modelName: recipe.model)
            let state = try CheckpointManager.load(paths, model: model, optimizer: optimizer, ema: ema)
            startEpoch = state.epoch + 1
            globalStep = state.globalStep
            bestTop1 = state.bestMetric
            bestEpoch = state.bestEpoch
            if let g = state.rng["model"] { model.state.generator = g }
            self.log("resumed from \(paths.weights): \(state.epoch + 1) epochs done, global step \(state.globalStep)")
        } else if !recipe.ckptPath.isEmpty {
            let info = try CheckpointInfo(path: recipe.ckptPath, modelName: recipe.model, preferEMA: false)
            try model.load(stateDict: info.weights, strict: true, source: info.weightsPath)
            self.log("initialised weights from \(info.weightsPath)")
        }
        // Every rank starts from rank 0's weights.
        if communicator.worldSize > 1 {
            for p in model.parameters { try communicator.broadcast(p.value.storage.pointer, count: p.value.count, root: 0) }
        }
    }

    /// Runs the remaining epochs. Throws on a non-finite loss (after logging it) or a data error.
    @discardableResult
    public func run() throws -> TrainingSummary {
        let start = Date()
        let world = communicator.worldSize
        let accumulation = max(1, recipe.gradientAccumulationSteps)
        let stepsPerEpoch = trainLoader.batchesPerEpoch
        log("model \(recipe.model): \(model.trainableParameterCount) trainable parameters, \(trainSet.classes.count) classes, \(trainSet.count) training images" +
            (valSet.map { ", \($0.count) validation images" } ?? ""))
        log("world size \(world), batch \(recipe.batchSize) per rank, global batch \(recipe.globalBatch(worldSize: world)), " +
            "peak lr \(String(format: "%.6g", peakLR))" + (recipe.lr == nil && recipe.lrBase != nil ? " (lr_base \(recipe.lrBase!) for \(recipe.lrBaseSize) images, \(recipe.lrBaseScale) scaling)" : "") +
            ", \(recipe.scheduler), \(recipe.epochSize) epochs of \(stepsPerEpoch) steps")
        if let w = schedule.warning { log("warning: \(w)") }
        try checkpoints?.writeRecipe(recipe, worldSize: world)
        var records: [EpochRecord] = []
        var lastCheckpoint: String?
        let metricsPath = (recipe.ckptSaveDir as NSString).appendingPathComponent("metrics.csv")
        if startEpoch == 0 && communicator.rank == 0 {
            // A fresh run starts its own metrics file; a resumed run appends to it.
            try? FileManager.default.removeItem(atPath: metricsPath)
        }
        let parameters = model.parameters

        for epoch in startEpoch..<recipe.epochSize {
            model.train()
            let epochStart = Date()
            let batches = trainLoader.epoch(epoch)
            var lossSum = 0.0, seen = 0, step = 0
            var lr = schedule(globalStep)
            var lastLog = Date()
            while let batch = try batches.next() {
                lr = schedule(min(globalStep, schedule.totalSteps - 1))
                let logits = model(batch.images)
                let loss = batch.targets.map { Tensor.crossEntropy(logits: logits, targets: $0, labelSmoothing: Float(recipe.labelSmoothing)) }
                    ?? Tensor.crossEntropy(logits: logits, labels: batch.labels, labelSmoothing: Float(recipe.labelSmoothing))
                let value = loss.item
                guard value.isFinite else {
                    batches.cancel()
                    log("error: non-finite loss \(value) at epoch \(epoch + 1) step \(step + 1)")
                    throw TrainingError.nonFiniteLoss(epoch: epoch, step: step, globalStep: globalStep, value: value)
                }
                loss.backward()
                lossSum += Double(value) * Double(batch.count); seen += batch.count
                globalStep += 1
                step += 1
                if globalStep % accumulation == 0 || step == stepsPerEpoch {
                    try synchronizeGradients(parameters)
                    let micro = globalStep % accumulation == 0 ? accumulation : globalStep % accumulation
                    let scale: Float = 1 / Float(micro)
                    if recipe.clipGrad {
                        _ = clipGradients(model.namedParameters(), maxNorm: recipe.clipValue / Double(scale))
                    }
                    optimizer.step(lr: lr, gradScale: scale)
                    optimizer.zeroGrad()
                    ema?.update()
                }
                if step == 1 || step == stepsPerEpoch || step % max(recipe.logInterval, 1) == 0 || Date().timeIntervalSince(lastLog) > 30 {
                    lastLog = Date()
                    let elapsed = Date().timeIntervalSince(epochStart)
                    let ips = Double(seen * world) / max(elapsed, 1e-9)
                    let remainingSteps = (recipe.epochSize - epoch - 1) * stepsPerEpoch + (stepsPerEpoch - step)
                    let eta = Double(remainingSteps * recipe.batchSize * world) / max(ips, 1e-9)
                    log(String(format: "epoch %d/%d step %d/%d  loss %.4f  lr %.6g  %.1f img/s  ETA %@",
                               epoch + 1, recipe.epochSize, step, stepsPerEpoch, value, lr, ips, formatDuration(eta)))
                }
                if stopRequested { break }
            }
            if stopRequested {
                batches.cancel()
                log("interrupted in epoch \(epoch + 1); nothing saved for it" + (lastCheckpoint.map { "; resume from \($0) with --resume \(recipe.ckptSaveDir)" } ?? ""))
                break
            }
            let summary = batches.summary
            let trainSeconds = Date().timeIntervalSince(epochStart)
            var reduced = try communicator.allReduceSum([lossSum, Double(seen), Double(summary.skippedCount)])
            if reduced[1] == 0 { reduced[1] = 1 }
            var record = EpochRecord(epoch: epoch + 1, trainLoss: reduced[0] / reduced[1], lr: lr, top1: nil, top5: nil, valLoss: nil,
                                     trainImagesPerSecond: reduced[1] / max(trainSeconds, 1e-9), seconds: trainSeconds,
                                     skippedImages: Int(reduced[2]))
            if summary.skippedCount > 0 {
                log("warning: \(summary.skippedCount) unreadable images replaced this epoch: " + summary.skippedPaths.prefix(5).joined(separator: ", "))
            }
            if let valLoader, epoch % max(recipe.valIntervalOrOne, 1) == 0 || epoch == recipe.epochSize - 1 {
                ema?.apply()
                let counts = try validate(loader: valLoader)
                ema?.restore()
                record.top1 = counts.top1; record.top5 = counts.top5; record.valLoss = counts.loss
                if bestTop1 == nil || counts.top1 > bestTop1! { bestTop1 = counts.top1; bestTop5 = counts.top5; bestEpoch = epoch + 1 }
                log(String(format: "epoch %d validation: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%d images, %.1f img/s)",
                           epoch + 1, counts.top1, counts.top5, counts.loss, counts.images, counts.imagesPerSecond))
            }
            records.append(record)
            log(String(format: "epoch %d/%d done: train loss %.4f, %.1f img/s, %@", epoch + 1, recipe.epochSize, record.trainLoss,
                       record.trainImagesPerSecond, formatDuration(trainSeconds)))
            if communicator.rank == 0 {
                try appendMetrics(record, to: metricsPath)
                if let checkpoints {
                    let state = TrainingState(epoch: epoch, globalStep: globalStep, optimizerSteps: optimizer.stepCount,
                                              rng: ["model": model.state.generator], metric: record.top1,
                                              bestMetric: bestTop1, bestEpoch: bestEpoch, classNames: trainSet.classes, model: recipe.model)
                    if (epoch + 1) % max(recipe.ckptSaveInterval, 1) == 0 || epoch == recipe.epochSize - 1 || epoch + 1 == stopAfterEpoch {
                        lastCheckpoint = try checkpoints.save(model: model, optimizer: optimizer, ema: ema, state: state).weights
                    }
                    if let t1 = record.top1, bestEpoch == epoch + 1, t1 == bestTop1 {
                        try checkpoints.saveBest(model: model, optimizer: optimizer, ema: ema, state: state)
                    }
                }
            }
            if let stop = stopAfterEpoch, epoch + 1 >= stop { break }
        }
        let total = Date().timeIntervalSince(start)
        if let bestTop1, let bestEpoch {
            log(String(format: "best top-1 %.2f%% (top-5 %.2f%%) at epoch %d; total time %@", bestTop1, bestTop5 ?? 0, bestEpoch, formatDuration(total)))
        } else {
            log("total time \(formatDuration(total))")
        }
        return TrainingSummary(epochs: records, bestTop1: bestTop1, bestTop5: bestTop5, bestEpoch: bestEpoch, seconds: total,
                               lastCheckpoint: lastCheckpoint, bestCheckpoint: bestEpoch != nil ? checkpoints?.bestPaths.weights : nil)
    }

    /// Validation over the whole val split; with several ranks each evaluates its shard and the counts are summed.
    public func validate(loader: DataLoader) throws -> EvaluationCounts {
        var counts = try Evaluator.evaluate(model: model, loader: loader)
        if communicator.worldSize > 1 {
            let r = try communicator.allReduceSum([Double(counts.images), Double(counts.correctTop1), Double(counts.correctTop5), counts.lossSum])
            counts.images = Int(r[0]); counts.correctTop1 = Int(r[1]); counts.correctTop5 = Int(r[2]); counts.lossSum = r[3]
        }
        return counts
    }

    /// Averages the gradients across ranks (sum, then the optimizer's scale divides by the world size).
    func synchronizeGradients(_ parameters: [Parameter]) throws {
        // Bucketed, non-blocking all-reduce of the gradients, then divided by the world size
        // (Sources/Trainer/Distributed/GradientBuckets.swift); a no-op with one rank.
        try communicator.averageGradients(parameters)
    }

    func appendMetrics(_ r: EpochRecord, to path: String) throws {
        func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "" }
        let header = "epoch,train_loss,lr,val_top1,val_top5,val_loss,train_images_per_s,epoch_seconds,skipped_images\n"
        let line = "\(r.epoch),\(String(format: "%.6f", r.trainLoss)),\(String(format: "%.8g", r.lr)),\(f(r.top1)),\(f(r.top5)),\(f(r.valLoss)),\(String(format: "%.2f", r.trainImagesPerSecond)),\(String(format: "%.2f", r.seconds)),\(r.skippedImages)\n"
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: Data(header.utf8)) else {
                throw CheckpointError.writeFailed(path: path, reason: "cannot create metrics file")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw CheckpointError.writeFailed(path: path, reason: "cannot open metrics file") }
        defer { try? h.close() }
        h.seekToEndOfFile()
        h.write(Data(line.utf8))
    }
}

extension Recipe {
    var valIntervalOrOne: Int { max(valInterval, 1) }
}

/// 1h02m03s / 4m05s / 12s.
public func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    if t >= 3600 { return String(format: "%dh%02dm%02ds", t / 3600, (t % 3600) / 60, t % 60) }
    if t >= 60 { return String(format: "%dm%02ds", t / 60, t % 60) }
    return "\(t)s"
}

extension RandomErasingValue {
    /// The data pipeline's form of `re_value`.
    public var erasingValue: ErasingValue {
        switch self {
        case .constant(let v): return .constant(Float(v))
        case .random: return .random
        case .perChannel(let vs): return .perChannel(vs.map { Float($0) })
        }
    }
}
