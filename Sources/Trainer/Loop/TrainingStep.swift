import Foundation
import Models
import Tensor
import DataPipeline

/// One data step on one micro-batch: forward in train mode, the loss, backward; and, on every
/// `accumulation`-th data step of the run (or the epoch's last), the update: gradients averaged over
/// ranks, clipped, applied by the optimizer with the scheduled LR, then the EMA update.
///
/// With accumulation the micro-batches' gradients simply add up in `.grad` (backward accumulates)
/// and the optimizer scales the sum by 1/n, so the update uses their mean; clipping bounds the norm
/// of that mean (MindCV clips each micro-batch before adding, and updates the EMA every micro-batch:
/// docs/training.md §10.3).
final class TrainingStep {
    let model: any Classifier
    let optimizer: any Optimizer
    let ema: ExponentialMovingAverage?
    let communicator: Communicator
    let labelSmoothing: Float
    let accumulation: Int
    /// `clip_value` when `clip_grad` is on.
    let clipNorm: Double?
    let parameters: [Parameter]
    let namedParameters: [NamedParameter]

    init(model: any Classifier, optimizer: any Optimizer, ema: ExponentialMovingAverage?, communicator: Communicator, recipe: Recipe) {
        self.model = model; self.optimizer = optimizer; self.ema = ema; self.communicator = communicator
        labelSmoothing = Float(recipe.labelSmoothing)
        accumulation = max(1, recipe.gradientAccumulationSteps)
        clipNorm = recipe.clipGrad ? recipe.clipValue : nil
        parameters = model.parameters
        namedParameters = model.namedParameters()
    }

    /// Forward and loss; the loss value is returned before any gradient exists, so a non-finite
    /// loss can stop the run without touching the weights.
    func forward(_ batch: Batch) -> (loss: Tensor, value: Float) {
        let logits = model(batch.images)
        let loss = batch.targets.map { Tensor.crossEntropy(logits: logits, targets: $0, labelSmoothing: labelSmoothing) }
            ?? Tensor.crossEntropy(logits: logits, labels: batch.labels, labelSmoothing: labelSmoothing)
        return (loss, loss.item)
    }

    /// Backward, then the update when `globalStep` (data steps done, this one included) completes an
    /// accumulation group or `endsEpoch`. Returns whether the weights changed.
    @discardableResult
    func backward(_ loss: Tensor, lr: Double, globalStep: Int, endsEpoch: Bool) throws -> Bool {
        loss.backward()
        guard globalStep % accumulation == 0 || endsEpoch else { return false }
        try communicator.averageGradients(parameters)  // bucketed all-reduce; a no-op with one rank
        let micro = globalStep % accumulation == 0 ? accumulation : globalStep % accumulation
        let scale: Float = 1 / Float(micro)
        if let clipNorm { clipGradients(namedParameters, maxNorm: clipNorm / Double(scale)) }
        optimizer.step(lr: lr, gradScale: scale)
        optimizer.zeroGrad()
        ema?.update()
        return true
    }
}
