import Foundation
import Trainer

/// The updating terminal line of `zoo train`: epoch, step, loss, lr, images/s and the run's ETA,
/// redrawn every step (at most ten times a second); the run's own log lines print above it. Only
/// installed when standard error is a terminal: otherwise the run's plain step lines are the progress.
final class TrainProgressObserver: TrainingObserver {
    let progress: ProgressLine

    init(progress: ProgressLine) { self.progress = progress }

    func stepFinished(_ e: StepEvent) {
        progress.update(step: e.step, of: e.stepsPerEpoch,
                        extra: ["epoch \(e.epoch + 1)/\(e.epochs)", String(format: "loss %.4f", e.loss), String(format: "lr %.3g", e.lr)],
                        rate: e.imagesPerSecond, eta: e.etaSeconds)
    }

    func epochFinished(_ record: EpochRecord) { progress.finish() }
    func runFinished(_ summary: TrainingSummary) { progress.finish() }
}
