import Foundation
import Models
import Tensor
import DataPipeline

/// Rank 0's checkpoint policy during a run: after an epoch, the periodic checkpoint when it is due
/// and `<model>_best.*` on a new best top-1. Writing and retention are `CheckpointManager`'s.
final class RunCheckpointer {
    let manager: CheckpointManager
    let model: String
    let classNames: [String]
    /// Weights file of the last checkpoint this run wrote.
    private(set) var lastCheckpoint: String?

    init(recipe: Recipe, classNames: [String]) throws {
        manager = try CheckpointManager(recipe: recipe)
        model = recipe.model
        self.classNames = classNames
    }

    /// The state of a run at `progress` (the RNG of the model's dropout included).
    func state(_ progress: RunProgress, model: any Classifier, optimizer: any Optimizer, metric: Double?) -> TrainingState {
        TrainingState(epoch: progress.epoch, globalStep: progress.globalStep, optimizerSteps: optimizer.stepCount,
                      rng: ["model": model.state.generator], metric: metric, bestMetric: progress.bestTop1,
                      bestEpoch: progress.bestEpoch, classNames: classNames, model: self.model)
    }

    /// After epoch `progress.epoch` (its record written): the periodic checkpoint when `save`, the
    /// best one when this epoch set a new best top-1.
    func epochEnded(_ record: EpochRecord, progress: RunProgress, model: any Classifier, optimizer: any Optimizer,
                    ema: ExponentialMovingAverage?, save: Bool) throws {
        let st = state(progress, model: model, optimizer: optimizer, metric: record.top1)
        if save {
            lastCheckpoint = try manager.save(model: model, optimizer: optimizer, ema: ema, state: st).weights
        }
        if let top1 = record.top1, progress.bestEpoch == record.epoch, top1 == progress.bestTop1 {
            try manager.saveBest(model: model, optimizer: optimizer, ema: ema, state: st)
        }
    }
}
