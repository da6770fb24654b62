import Foundation
import Models
import Tensor

/// Rank 0's checkpoint policy during a run: after an epoch, the periodic checkpoint when it is due
/// and `<model>_best.*` on a new best top-1; inside an epoch, recovery checkpoints when
/// `RecoverySchedule` says so. Writing, retention and recovery pruning are `CheckpointManager`'s.
final class RunCheckpointer {
    let manager: CheckpointManager
    let model: String
    let classNames: [String]
    let stepsPerEpoch: Int
    /// Weights file of the last checkpoint this run wrote.
    private(set) var lastCheckpoint: String?

    init(recipe: Recipe, classNames: [String], stepsPerEpoch: Int) throws {
        manager = try CheckpointManager(recipe: recipe)
        manager.removeStaleTemporaries()
        model = recipe.model
        self.classNames = classNames
        self.stepsPerEpoch = stepsPerEpoch
    }

    /// The state of a run at `progress` (the RNG of the model's dropout included).
    func state(_ progress: RunProgress, model: any Classifier, optimizer: any Optimizer, metric: Double?) -> TrainingState {
        var st = TrainingState(epoch: progress.epoch, globalStep: progress.globalStep, optimizerSteps: optimizer.stepCount,
                               rng: ["model": model.state.generator], metric: metric, bestMetric: progress.bestTop1,
                               bestEpoch: progress.bestEpoch, classNames: classNames, model: self.model)
        st.bestTop5 = progress.bestTop5
        st.stepsPerEpoch = stepsPerEpoch
        return st
    }

    /// After epoch `progress.epoch` (its record written): the periodic checkpoint when `save`, the
    /// best one when this epoch set a new best top-1. A periodic checkpoint that survives retention
    /// makes the epoch's recovery checkpoints redundant: they are removed.
    func epochEnded(_ record: EpochRecord, progress: RunProgress, model: any Classifier, optimizer: any Optimizer,
                    ema: ExponentialMovingAverage?, save: Bool) throws {
        let st = state(progress, model: model, optimizer: optimizer, metric: record.top1)
        if save {
            let paths = try manager.save(model: model, optimizer: optimizer, ema: ema, state: st)
            lastCheckpoint = paths.weights
            if paths.isComplete { manager.removeRecovery(before: progress.epoch + 1) }
        }
        if let top1 = record.top1, progress.bestEpoch == record.epoch, top1 == progress.bestTop1 {
            try manager.saveBest(model: model, optimizer: optimizer, ema: ema, state: st)
        }
    }

    /// A recovery checkpoint at `progress` (inside its epoch) with the epoch's sums over all ranks.
    func saveRecovery(progress: RunProgress, sums: TrainingState.PartialEpoch, model: any Classifier, optimizer: any Optimizer,
                      ema: ExponentialMovingAverage?) throws {
        var st = state(progress, model: model, optimizer: optimizer, metric: nil)
        st.partialEpoch = sums
        lastCheckpoint = try manager.saveRecovery(model: model, optimizer: optimizer, ema: ema, state: st).weights
    }
}

/// When recovery checkpoints are due: after an update, once `recovery_interval` data steps have
/// passed since the last one (or the run's start), and never on an epoch's last step (the epoch's
/// end has its own checkpoint policy). Every rank keeps one, so all agree without talking.
struct RecoverySchedule {
    let interval: Int
    let stepsPerEpoch: Int
    var lastStep: Int

    func isDue(_ progress: RunProgress) -> Bool {
        interval > 0 && progress.step < stepsPerEpoch && progress.globalStep - lastStep >= interval
    }
}
