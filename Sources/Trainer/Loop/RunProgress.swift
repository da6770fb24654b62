import Foundation

/// Where a run stands: the position in the data, this epoch's running sums and the best result so
/// far. A checkpoint stores it (in `TrainingState`) to continue the run exactly.
struct RunProgress: Equatable {
    /// The 0-based epoch in progress (or next to start) and its data steps already done.
    var epoch = 0
    var step = 0
    /// Data steps (micro-batches) done in the whole run = the LR-schedule index of the next step.
    var globalStep = 0
    /// This epoch so far, on this rank: sum of per-sample training losses, samples, images replaced.
    var lossSum = 0.0
    var seen = 0
    var skipped = 0
    var bestTop1: Double?
    var bestTop5: Double?
    /// 1-based epoch of `bestTop1`.
    var bestEpoch: Int?

    /// Moves to the start of the next epoch.
    mutating func startNextEpoch() {
        epoch += 1
        step = 0
        lossSum = 0; seen = 0; skipped = 0
    }

    /// Records a validation result of (0-based) `epoch`; true when it is a new best top-1.
    @discardableResult
    mutating func noteValidation(top1: Double, top5: Double, epoch: Int) -> Bool {
        guard bestTop1.map({ top1 > $0 }) ?? true else { return false }
        bestTop1 = top1; bestTop5 = top5; bestEpoch = epoch + 1
        return true
    }
}
