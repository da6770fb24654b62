import Foundation
import Models
import Tensor
import DataPipeline

extension TrainingRun {
    /// Trains the rest of epoch `progress.epoch` from step `progress.step`: the scheduled LR, one
    /// `TrainingStep` per batch, observers told after each step, recovery checkpoints when due
    /// (rank 0). Returns the epoch's record (without
    /// validation), or nil when `stopRequested` interrupted it. Throws on a non-finite loss.
    func trainEpoch() throws -> EpochRecord? {
        model.train()
        let epoch = progress.epoch, stepsPerEpoch = trainLoader.batchesPerEpoch
        let epochStart = Date()
        let batches = trainLoader.epoch(epoch, startBatch: progress.step)
        var lr = schedule(progress.globalStep)
        var seenHere = 0
        while let batch = try batches.next() {
            lr = schedule(min(progress.globalStep, schedule.totalSteps - 1))
            let (loss, value) = step.forward(batch)
            guard value.isFinite else {
                batches.cancel()
                log("error: non-finite loss \(value) at epoch \(epoch + 1) step \(progress.step + 1)")
                throw TrainingError.nonFiniteLoss(epoch: epoch, step: progress.step, globalStep: progress.globalStep, value: value)
            }
            progress.globalStep += 1
            progress.step += 1
            let updated = try step.backward(loss, lr: lr, globalStep: progress.globalStep, endsEpoch: progress.step == stepsPerEpoch)
            progress.lossSum += Double(value) * Double(batch.count); progress.seen += batch.count
            seenHere += batch.count
            if updated && recovery.isDue(progress) { try saveRecovery(skippedHere: batches.summary.skipped) }
            let ips = Double(seenHere * communicator.worldSize) / max(Date().timeIntervalSince(epochStart), 1e-9)
            let event = StepEvent(epoch: epoch, step: progress.step, epochs: recipe.epochSize, stepsPerEpoch: stepsPerEpoch,
                                  globalStep: progress.globalStep, loss: Double(value), lr: lr, imagesPerSecond: ips,
                                  globalBatch: recipe.batchSize * communicator.worldSize)
            try observers.each { try $0.stepFinished(event) }
            if stopRequested { break }
        }
        if stopRequested {
            batches.cancel()
            log("interrupted in epoch \(epoch + 1) after step \(progress.step); the steps since the last checkpoint are not saved" +
                (checkpointer?.lastCheckpoint.map { "; resume from \($0) with --resume \(recipe.ckptSaveDir)" } ?? ""))
            return nil
        }
        let summary = batches.summary
        progress.skipped += summary.skippedCount
        if summary.skippedCount > 0 {
            log("warning: \(summary.skippedCount) unreadable images replaced this epoch: " + summary.skippedPaths.prefix(5).joined(separator: ", "))
        }
        let seconds = Date().timeIntervalSince(epochStart)
        var reduced = try communicator.allReduceSum([progress.lossSum, Double(progress.seen), Double(progress.skipped)])
        if reduced[1] == 0 { reduced[1] = 1 }
        return EpochRecord(epoch: epoch + 1, trainLoss: reduced[0] / reduced[1], lr: lr, top1: nil, top5: nil, valLoss: nil,
                           trainImagesPerSecond: Double(seenHere * communicator.worldSize) / max(seconds, 1e-9), seconds: seconds,
                           skippedImages: Int(reduced[2]))
    }

    /// A recovery checkpoint after the current step: the epoch's running sums are added over ranks
    /// (a collective call, on every rank) and rank 0 writes them with the weights and state.
    func saveRecovery(skippedHere: [SkippedSample]) throws {
        let firstUnread = progress.step * recipe.batchSize
        let skipped = progress.skipped + skippedHere.filter { $0.position < firstUnread }.count
        let sums = try communicator.allReduceSum([progress.lossSum, Double(progress.seen), Double(skipped)])
        try checkpointer?.saveRecovery(progress: progress,
                                       sums: .init(steps: progress.step, lossSum: sums[0], samples: Int(sums[1]), skipped: Int(sums[2])),
                                       model: model, optimizer: optimizer, ema: ema)
        recovery.lastStep = progress.globalStep
    }
}
