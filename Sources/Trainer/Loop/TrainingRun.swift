import Foundation
import DataPipeline
import Models
import Tensor

/// A training run from a recipe: data, model, optimizer, schedule, loop, validation, checkpoints.
/// Everything that can be checked (data folders, model name, checkpoint fit, recipe values) is
/// checked in `init`, before any training work starts. The loop itself is split into one data step
/// (`TrainingStep`), one epoch (`trainEpoch`), validation (`validateIfDue`), the checkpoint policy
/// (`RunCheckpointer`) and observers for everything that is reported (`TrainingObserver`).
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
    /// Rank 0's checkpoint writer (nil on other ranks).
    let checkpointer: RunCheckpointer?
    let step: TrainingStep
    /// Free-text messages (warnings, resume notes) go here; rank 0 only.
    public var log: @Sendable (String) -> Void
    /// Progress reports (the text log and `metrics.csv` by default); rank 0 only.
    var observers = ObserverList()
    /// Set to stop after the current step (e.g. by a signal handler). Nothing is saved for the
    /// interruption: the last (epoch or recovery) checkpoint stays the point to resume from.
    public var stopRequested = false
    /// Stop cleanly after this many completed epochs (checkpoint saved), e.g. to split a run.
    public var stopAfterEpoch: Int?
    /// Where the run stands (resume point, best so far).
    var progress = RunProgress()
    /// When the next recovery checkpoint is due.
    var recovery: RecoverySchedule
    /// Set when a resume finds `epoch_size` already reached: `run()` then only says so.
    var completed: CompletedRun?

    public var peakLR: Double { recipe.effectiveLR(worldSize: communicator.worldSize) }
    var isRoot: Bool { communicator.rank == 0 }

    public init(recipe: Recipe, communicator: Communicator = LocalCommunicator(), log logLine: @escaping @Sendable (String) -> Void = { print($0) }) throws {
        self.recipe = recipe
        self.communicator = communicator
        let isRoot = communicator.rank == 0
        let silent: @Sendable (String) -> Void = { _ in }
        let log = isRoot ? logLine : silent
        self.log = log
        guard recipe.loss.uppercased() == "CE" else {
            throw TrainingError.invalidRecipe(key: "loss", reason: "only CE (softmax cross-entropy) is supported, got '\(recipe.loss)'")
        }
        // Data folders are scanned and validated before anything else.
        trainSet = try ImageFolder(root: recipe.dataDir, split: recipe.trainSplit)
        valSet = recipe.valWhileTrain ? try ImageFolder(root: recipe.dataDir, split: recipe.valSplit, expectedClasses: trainSet.classes) : nil
        entry = try ModelRegistry.entry(recipe.model, numerics: recipe.numerics.flatMap(Numerics.init(rawValue:)))
        let numClasses = try RunSetup.numClasses(recipe, trainSet: trainSet)
        model = try RunSetup.model(recipe, entry: entry, numClasses: numClasses, rank: communicator.rank)
        trainLoader = try RunSetup.trainLoader(recipe, dataset: trainSet, numClasses: numClasses, communicator: communicator, log: log)
        valLoader = try valSet.map { try RunSetup.valLoader(recipe, dataset: $0, communicator: communicator) }

        schedule = LRSchedule(recipe: recipe, stepsPerEpoch: trainLoader.batchesPerEpoch, worldSize: communicator.worldSize)
        optimizer = makeOptimizer(recipe: recipe, parameters: model.namedParameters())
        ema = recipe.ema ? ExponentialMovingAverage(model: model, decay: recipe.emaDecay) : nil
        step = TrainingStep(model: model, optimizer: optimizer, ema: ema, communicator: communicator, recipe: recipe)
        checkpointer = isRoot ? try RunCheckpointer(recipe: recipe, classNames: trainSet.classes, stepsPerEpoch: trainLoader.batchesPerEpoch) : nil
        recovery = RecoverySchedule(interval: recipe.recoveryInterval, stepsPerEpoch: trainLoader.batchesPerEpoch, lastStep: 0)
        if isRoot {
            observers.observers = [TextLogObserver(logInterval: recipe.logInterval, log: log), MetricsFile(directory: recipe.ckptSaveDir)]
            if recipe.tensorboard {
                let tensorboard = try TensorBoardObserver(directory: recipe.resolvedTensorboardDir)
                observers.observers.append(tensorboard)
                log("TensorBoard events: \(tensorboard.writer.path)")
            }
        }
        try restoreInitialState()
        // Every rank starts from rank 0's weights.
        if communicator.worldSize > 1 {
            for p in model.parameters { try communicator.broadcast(p.value.storage.pointer, count: p.value.count, root: 0) }
        }
    }

    /// Adds a progress sink (a TensorBoard writer, a progress line). Ignored on ranks other than 0.
    public func addObserver(_ observer: any TrainingObserver) {
        if isRoot { observers.observers.append(observer) }
    }

    /// Runs the remaining epochs. Throws on a non-finite loss (after logging it) or a data error.
    /// A resume whose checkpoint already reached `epoch_size` says so and returns at once, without
    /// training or writing anything.
    @discardableResult
    public func run() throws -> TrainingSummary {
        let start = Date()
        if let completed {
            log("nothing to train: \(completed.checkpoint) has \(completed.epochsDone) epochs done and epoch_size is \(recipe.epochSize); " +
                "no training, no new checkpoint (raise --epoch_size to train further)")
            return TrainingSummary(epochs: [], bestTop1: nil, bestTop5: nil, bestEpoch: nil, seconds: 0, lastCheckpoint: nil, bestCheckpoint: nil)
        }
        try observers.each { try $0.runStarted(startInfo) }
        if let w = schedule.warning { log("warning: \(w)") }
        try checkpointer?.manager.writeRecipe(recipe, worldSize: communicator.worldSize)
        var records: [EpochRecord] = []
        while progress.epoch < recipe.epochSize {
            guard var record = try trainEpoch() else { break }
            if let counts = try validateIfDue() {
                record.top1 = counts.top1; record.top5 = counts.top5; record.valLoss = counts.loss
                record.valSkippedImages = counts.skippedImages
            }
            records.append(record)
            try observers.each { try $0.epochFinished(record) }
            try checkpointer?.epochEnded(record, progress: progress, model: model, optimizer: optimizer, ema: ema,
                                         save: savesEpochCheckpoint(progress.epoch))
            progress.startNextEpoch()
            if let stop = stopAfterEpoch, progress.epoch >= stop { break }
        }
        let summary = TrainingSummary(epochs: records, bestTop1: progress.bestTop1, bestTop5: progress.bestTop5, bestEpoch: progress.bestEpoch,
                                      seconds: Date().timeIntervalSince(start), lastCheckpoint: checkpointer?.lastCheckpoint,
                                      bestCheckpoint: progress.bestEpoch != nil ? checkpointer?.manager.bestPaths.weights : nil)
        try observers.each { try $0.runFinished(summary) }
        return summary
    }

    /// Whether the periodic checkpoint is written after (0-based) `epoch`: every `ckpt_save_interval`
    /// epochs, after the last, and where the run is told to stop.
    func savesEpochCheckpoint(_ epoch: Int) -> Bool {
        (epoch + 1) % max(recipe.ckptSaveInterval, 1) == 0 || epoch == recipe.epochSize - 1 || epoch + 1 == stopAfterEpoch
    }

    var startInfo: RunStartInfo {
        let world = communicator.worldSize
        let note = recipe.lr == nil ? recipe.lrBase.map { "lr_base \($0) for \(recipe.lrBaseSize) images, \(recipe.lrBaseScale) scaling" } : nil
        return RunStartInfo(model: recipe.model, trainableParameters: model.trainableParameterCount, classes: trainSet.classes.count,
                            trainImages: trainSet.count, valImages: valSet?.count, worldSize: world, batchSize: recipe.batchSize,
                            globalBatch: recipe.globalBatch(worldSize: world), peakLR: peakLR, lrNote: note,
                            scheduler: recipe.scheduler, epochs: recipe.epochSize, stepsPerEpoch: trainLoader.batchesPerEpoch,
                            startEpoch: progress.epoch, startStep: progress.step)
    }
}
