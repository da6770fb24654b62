import Foundation
import Models
import Tensor
import DataPipeline

extension TrainingRun {
    /// Continues a run or initialises its weights. `resume` (or MindCV's `ckpt_path` + `resume_opt`)
    /// continues: weights, optimizer, EMA, step, epoch and generator state. `ckpt_path` alone only
    /// initialises the weights (fine-tuning starts here).
    func restoreInitialState() throws {
        if let resume = recipe.resume ?? (recipe.resumeOpt && !recipe.ckptPath.isEmpty ? recipe.ckptPath : nil) {
            let paths = try CheckpointManager.resolve(resume, modelName: recipe.model)
            let state = try CheckpointManager.load(paths, model: model, optimizer: optimizer, ema: ema)
            progress.epoch = state.epoch + 1
            progress.globalStep = state.globalStep
            progress.bestTop1 = state.bestMetric
            progress.bestEpoch = state.bestEpoch
            if let g = state.rng["model"] { model.state.generator = g }
            log("resumed from \(paths.weights): \(state.epoch + 1) epochs done, global step \(state.globalStep)")
        } else if !recipe.ckptPath.isEmpty {
            let info = try CheckpointInfo(path: recipe.ckptPath, modelName: recipe.model, preferEMA: false)
            // Another class count, input channel count or image size is adapted (docs/finetuning.md).
            let adapted = try model.loadAdapting(stateDict: info.weights, firstConv: entry.dataConfig.firstConv,
                                                 classifier: entry.dataConfig.classifier, source: info.weightsPath)
            log("initialised weights from \(info.weightsPath)" + adapted.lines.map { "\n  " + $0 }.joined())
        }
    }
}
