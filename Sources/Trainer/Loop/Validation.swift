import Foundation
import Models
import Tensor
import DataPipeline

extension TrainingRun {
    /// Validates the epoch just trained when `val_interval` says so (and always after the last
    /// epoch), with the EMA weights when EMA is on; keeps the best top-1 and tells the observers.
    func validateIfDue() throws -> EvaluationCounts? {
        let epoch = progress.epoch
        guard let valLoader, epoch % max(recipe.valInterval, 1) == 0 || epoch == recipe.epochSize - 1 else { return nil }
        ema?.apply()
        defer { ema?.restore() }
        let counts = try validate(loader: valLoader)
        if counts.skippedImages > 0 {
            log("warning: \(counts.skippedImages) unreadable validation images left out of the metrics: "
                + counts.skipped.prefix(5).map(\.path).joined(separator: ", "))
        }
        progress.noteValidation(top1: counts.top1, top5: counts.top5, epoch: epoch)
        try observers.each { try $0.validationFinished(epoch: epoch, counts: counts) }
        return counts
    }

    /// Validation over the whole val split; with several ranks each evaluates its shard and the counts are summed.
    public func validate(loader: DataLoader) throws -> EvaluationCounts {
        var counts = try Evaluator.evaluate(model: model, loader: loader)
        if communicator.worldSize > 1 {
            let r = try communicator.allReduceSum([Double(counts.images), Double(counts.correctTop1), Double(counts.correctTop5), counts.lossSum,
                                                   Double(counts.skippedImages)])
            counts.images = Int(r[0]); counts.correctTop1 = Int(r[1]); counts.correctTop5 = Int(r[2]); counts.lossSum = r[3]
            counts.skippedImages = Int(r[4])
        }
        return counts
    }
}
