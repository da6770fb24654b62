import Foundation

/// What a run is about to do, told once before the first step.
public struct RunStartInfo: Sendable {
    public var model: String
    public var trainableParameters: Int
    public var classes: Int
    public var trainImages: Int
    public var valImages: Int?
    public var worldSize: Int
    public var batchSize: Int
    public var globalBatch: Int
    public var peakLR: Double
    /// How the peak LR was derived (`lr_base` scaling), when it was.
    public var lrNote: String?
    public var scheduler: String
    public var epochs: Int
    public var stepsPerEpoch: Int
    /// Where this process starts: 0-based epoch and the steps of it already done (resume).
    public var startEpoch: Int
    public var startStep: Int
}

/// One finished data step (micro-batch).
public struct StepEvent: Sendable {
    /// 0-based epoch and 1-based step within it.
    public var epoch: Int
    public var step: Int
    public var epochs: Int
    public var stepsPerEpoch: Int
    /// Data steps done in the run so far, this one included.
    public var globalStep: Int
    public var loss: Double
    public var lr: Double
    /// Training throughput of this epoch so far, over all ranks.
    public var imagesPerSecond: Double
    /// Images per step over all ranks (to turn remaining steps into time).
    public var globalBatch: Int

    /// Data steps left in the run after this one.
    public var remainingSteps: Int { (epochs - epoch - 1) * stepsPerEpoch + (stepsPerEpoch - step) }
    /// Seconds left at the current throughput (infinite before any throughput is known).
    public var etaSeconds: Double { Double(remainingSteps * globalBatch) / max(imagesPerSecond, 1e-9) }
}

/// A sink for training progress: the text log, `metrics.csv`, and whatever else wants to see the run
/// (a TensorBoard writer, a terminal progress line) without the loop knowing about it. Called on rank
/// 0 only, on the training thread, in this order: `runStarted`, then per epoch `stepFinished` for each
/// step, `validationFinished` when the epoch is validated, `epochFinished` (before the epoch's
/// checkpoint is written), and `runFinished` at the end. Every method has an empty default.
/// A method that throws stops the run (e.g. a metrics file that cannot be written).
public protocol TrainingObserver: AnyObject {
    func runStarted(_ info: RunStartInfo) throws
    func stepFinished(_ event: StepEvent) throws
    /// `epoch` is 0-based; the counts are summed over ranks.
    func validationFinished(epoch: Int, counts: EvaluationCounts) throws
    func epochFinished(_ record: EpochRecord) throws
    func runFinished(_ summary: TrainingSummary) throws
}

extension TrainingObserver {
    public func runStarted(_ info: RunStartInfo) throws {}
    public func stepFinished(_ event: StepEvent) throws {}
    public func validationFinished(epoch: Int, counts: EvaluationCounts) throws {}
    public func epochFinished(_ record: EpochRecord) throws {}
    public func runFinished(_ summary: TrainingSummary) throws {}
}

/// Forwards each event to every observer in order.
struct ObserverList {
    var observers: [any TrainingObserver] = []

    func each(_ body: (any TrainingObserver) throws -> Void) throws {
        for o in observers { try body(o) }
    }
}
