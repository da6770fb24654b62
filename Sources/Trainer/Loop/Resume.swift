import Foundation
import Models
import Tensor

/// A resume that has nothing left to do: the checkpoint already covers `epoch_size`.
struct CompletedRun {
    var checkpoint: String
    var epochsDone: Int
}

extension TrainingRun {
    /// Continues a run or initialises its weights. `resume` (or MindCV's `ckpt_path` + `resume_opt`)
    /// continues from the newest complete checkpoint, epoch or recovery (docs/training.md §9):
    /// weights, optimizer, EMA, position in the data, running sums and generator state. Its
    /// training state is checked field by field first; a damaged one is refused, never passed over.
    /// `ckpt_path` alone only initialises the weights (fine-tuning starts here).
    func restoreInitialState() throws {
        if let path = recipe.resume ?? (recipe.resumeOpt && !recipe.ckptPath.isEmpty ? recipe.ckptPath : nil) {
            try resume(from: path)
        } else if !recipe.ckptPath.isEmpty || recipe.pretrained {
            // `pretrained: True`: the model card's MindCV weights, from the cache or downloaded (docs/checkpoints.md §6).
            let source = recipe.pretrained ? try PretrainedWeights.localFile(for: recipe.model) : recipe.ckptPath
            let info = try CheckpointInfo(path: source, modelName: recipe.model, preferEMA: false)
            // Another class count, input channel count or image size is adapted (docs/finetuning.md).
            let adapted = try model.loadAdapting(stateDict: info.weights, firstConv: entry.dataConfig.firstConv,
                                                 classifier: entry.dataConfig.classifier, source: info.weightsPath)
            log("initialised weights from \(info.weightsPath)" + adapted.lines.map { "\n  " + $0 }.joined())
        }
    }

    private func resume(from path: String) throws {
        let paths = try CheckpointManager.resumePoint(path, modelName: recipe.model)
        let state = try CheckpointManager.readState(paths.meta)
        try state.checkRanges(path: paths.meta)
        if state.epochsDone >= recipe.epochSize {
            completed = CompletedRun(checkpoint: paths.meta, epochsDone: state.epochsDone)
            return
        }
        try state.checkConsistency(path: paths.meta, model: recipe.model, classNames: trainSet.classes,
                                   stepsPerEpoch: trainLoader.batchesPerEpoch)
        try CheckpointManager.load(paths, model: model, optimizer: optimizer, ema: ema)
        progress.epoch = state.epochsDone
        progress.globalStep = state.globalStep
        progress.bestTop1 = state.bestMetric
        progress.bestTop5 = state.bestTop5
        progress.bestEpoch = state.bestEpoch
        if let g = state.rng["model"] { model.state.generator = g }
        if let partial = state.partialEpoch {
            progress.step = partial.steps
            // The saved sums are over all ranks; rank 0 carries them on.
            if isRoot { progress.lossSum = partial.lossSum; progress.seen = partial.samples; progress.skipped = partial.skipped }
            log("resumed from \(paths.weights): epoch \(state.epoch + 1), \(partial.steps) of \(trainLoader.batchesPerEpoch) steps done, global step \(state.globalStep)")
        } else {
            log("resumed from \(paths.weights): \(state.epochsDone) epochs done, global step \(state.globalStep)")
        }
        recovery.lastStep = state.globalStep
    }
}
