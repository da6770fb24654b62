import Foundation

/// The human-readable progress log: the run's plan, a step line every `log_interval` steps (and on
/// an epoch's first and last step, and at least every 30 s), validation results, one line per
/// finished epoch and the best result at the end.
public final class TextLogObserver: TrainingObserver {
    let log: @Sendable (String) -> Void
    let logInterval: Int
    private var lastLine = Date()
    private var currentEpoch: Int?
    private var epochs = 0

    public init(logInterval: Int, log: @escaping @Sendable (String) -> Void) {
        self.logInterval = max(logInterval, 1)
        self.log = log
    }

    public func runStarted(_ i: RunStartInfo) {
        epochs = i.epochs
        log("model \(i.model): \(i.trainableParameters) trainable parameters, \(i.classes) classes, \(i.trainImages) training images" +
            (i.valImages.map { ", \($0) validation images" } ?? ""))
        log("world size \(i.worldSize), batch \(i.batchSize) per rank, global batch \(i.globalBatch), " +
            "peak lr \(String(format: "%.6g", i.peakLR))" + (i.lrNote.map { " (\($0))" } ?? "") +
            ", \(i.scheduler), \(i.epochs) epochs of \(i.stepsPerEpoch) steps")
    }

    public func stepFinished(_ e: StepEvent) {
        let firstOfEpoch = currentEpoch != e.epoch
        currentEpoch = e.epoch
        guard firstOfEpoch || e.step == e.stepsPerEpoch || e.step % logInterval == 0 || Date().timeIntervalSince(lastLine) > 30 else { return }
        lastLine = Date()
        log(String(format: "epoch %d/%d step %d/%d  loss %.4f  lr %.6g  %.1f img/s  ETA %@",
                   e.epoch + 1, e.epochs, e.step, e.stepsPerEpoch, e.loss, e.lr, e.imagesPerSecond, formatDuration(e.etaSeconds)))
    }

    public func validationFinished(epoch: Int, counts c: EvaluationCounts) {
        log(String(format: "epoch %d validation: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%d images, %.1f img/s)",
                   epoch + 1, c.top1, c.top5, c.loss, c.images, c.imagesPerSecond))
    }

    public func epochFinished(_ r: EpochRecord) {
        log(String(format: "epoch %d/%d done: train loss %.4f, %.1f img/s, %@", r.epoch, epochs, r.trainLoss,
                   r.trainImagesPerSecond, formatDuration(r.seconds)))
    }

    public func runFinished(_ s: TrainingSummary) {
        if let best = s.bestTop1, let epoch = s.bestEpoch {
            log(String(format: "best top-1 %.2f%% (top-5 %.2f%%) at epoch %d; total time %@", best, s.bestTop5 ?? 0, epoch, formatDuration(s.seconds)))
        } else {
            log("total time \(formatDuration(s.seconds))")
        }
    }
}

/// 1h02m03s / 4m05s / 12s.
public func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    if t >= 3600 { return String(format: "%dh%02dm%02ds", t / 3600, (t % 3600) / 60, t % 60) }
    if t >= 60 { return String(format: "%dm%02ds", t / 60, t % 60) }
    return "\(t)s"
}
