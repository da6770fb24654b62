import Foundation

/// Sends a run's numbers to a TensorBoard event file (docs/cli.md lists the tags): every step
/// `train/loss`, `train/lr`, `train/images_per_s`; every validated epoch `val/top1`, `val/top5`,
/// `val/loss`; every epoch `train/epoch_loss`. The x axis is the global data step throughout, so
/// per-epoch points sit at the step that ended their epoch. Flushed after every epoch.
public final class TensorBoardObserver: TrainingObserver {
    public let writer: TensorBoardWriter
    private var lastStep = 0

    /// Starts a new event file in `directory` (created if needed).
    public init(directory: String) throws {
        writer = try TensorBoardWriter(directory: directory)
    }

    public func stepFinished(_ e: StepEvent) throws {
        lastStep = e.globalStep
        try writer.scalars([("train/loss", e.loss), ("train/lr", e.lr), ("train/images_per_s", e.imagesPerSecond)], step: e.globalStep)
    }

    public func validationFinished(epoch: Int, counts: EvaluationCounts) throws {
        try writer.scalars([("val/top1", counts.top1), ("val/top5", counts.top5), ("val/loss", counts.loss)], step: lastStep)
    }

    public func epochFinished(_ record: EpochRecord) throws {
        try writer.scalars([("train/epoch_loss", record.trainLoss)], step: lastStep)
        try writer.flush()
    }

    public func runFinished(_ summary: TrainingSummary) throws {
        try writer.flush()
    }
}
