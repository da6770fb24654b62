import Foundation

/// MindCV's learning-rate schedules (docs/training.md §3) as a pure function of the data step.
///
/// MindCV builds an array `lrs = warmup ++ main` of `epochs × stepsPerEpoch` entries and step k
/// (0-based, counting data batches since the start of training, micro-batches included) uses
/// `lrs[k]`. `lr(at:)` computes the same entry without the array; `values()` builds the array.
/// The main part's epoch counter starts at 0 at the end of warm-up (milestones and step periods are
/// relative to it). Steps past the end continue the formula (cosine: `min_lr`).
public struct LRSchedule: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case constant
        /// Also `warmup_cosine_decay`.
        case cosineDecay = "cosine_decay"
        case exponentialDecay = "exponential_decay"
        case polynomialDecay = "polynomial_decay"
        case stepDecay = "step_decay"
        case multiStepDecay = "multi_step_decay"

        public init?(mindcvName: String) {
            if mindcvName == "warmup_cosine_decay" { self = .cosineDecay } else { self.init(rawValue: mindcvName) }
        }
    }

    public var kind: Kind
    /// Peak LR (the effective LR of the recipe).
    public var lr: Double
    public var stepsPerEpoch: Int
    /// Total epochs E (the array has E × stepsPerEpoch entries).
    public var epochs: Int
    public var warmupEpochs: Int = 0
    public var warmupFactor: Double = 0
    public var minLR: Double = 0
    public var decayEpochs: Int = 100
    /// γ for exponential / step / multi-step; the power for polynomial.
    public var decayRate: Double = 0.9
    public var milestones: [Int] = []
    /// LR constant within an epoch (`lr_epoch_stair`).
    public var stair: Bool = false
    public var numCycles: Int = 1
    public var cycleDecay: Double = 1

    public init(kind: Kind, lr: Double, stepsPerEpoch: Int, epochs: Int, warmupEpochs: Int = 0, warmupFactor: Double = 0,
                minLR: Double = 0, decayEpochs: Int = 100, decayRate: Double = 0.9, milestones: [Int] = [],
                stair: Bool = false, numCycles: Int = 1, cycleDecay: Double = 1) {
        precondition(stepsPerEpoch > 0, "LRSchedule needs at least one step per epoch")
        self.kind = kind; self.lr = lr; self.stepsPerEpoch = stepsPerEpoch; self.epochs = epochs
        self.warmupEpochs = warmupEpochs; self.warmupFactor = warmupFactor; self.minLR = minLR
        self.decayEpochs = decayEpochs; self.decayRate = decayRate; self.milestones = milestones.sorted()
        self.stair = stair; self.numCycles = numCycles; self.cycleDecay = cycleDecay
    }

    /// The recipe's schedule for `stepsPerEpoch` data steps per epoch, peaking at
    /// `recipe.effectiveLR(worldSize:)`. The recipe has been validated, so the scheduler name is known.
    public init(recipe r: Recipe, stepsPerEpoch: Int, worldSize: Int = 1) {
        guard let kind = Kind(mindcvName: r.scheduler) else { preconditionFailure("unsupported scheduler '\(r.scheduler)'") }
        self.init(kind: kind, lr: r.effectiveLR(worldSize: worldSize), stepsPerEpoch: stepsPerEpoch, epochs: r.epochSize,
                  warmupEpochs: r.warmupEpochs, warmupFactor: r.warmupFactor, minLR: r.minLR, decayEpochs: r.decayEpochs,
                  decayRate: r.decayRate, milestones: r.multiStepDecayMilestones, stair: r.lrEpochStair,
                  numCycles: r.numCycles, cycleDecay: r.cycleDecay)
    }

    /// Number of entries of MindCV's array: epochs × stepsPerEpoch.
    public var totalSteps: Int { epochs * stepsPerEpoch }

    /// MindCV warns when warm-up plus one cosine period does not fit into the run.
    public var warning: String? {
        kind == .cosineDecay && warmupEpochs + decayEpochs > epochs
            ? "warmup_epochs + decay_epochs (\(warmupEpochs) + \(decayEpochs)) > epoch_size (\(epochs)): the cosine is truncated" : nil
    }

    /// The LR of data step `step` (0-based) = MindCV's `lrs[step]`.
    public func lr(at step: Int) -> Double {
        let s = stepsPerEpoch
        let warmSteps = warmupEpochs * s
        if step < warmSteps {
            let t = stair ? Double(step / s) : Double(step) / Double(s)
            return lr * (warmupFactor + (1 - warmupFactor) * t / Double(warmupEpochs))
        }
        let i = step - warmSteps
        let epoch = i / s
        let t = stair ? Double(epoch) : Double(i) / Double(s)
        switch kind {
        case .constant:
            return lr
        case .cosineDecay:
            let period = decayEpochs * s
            let cycle = i / period
            guard cycle < numCycles else { return minLR }
            let k = i - cycle * period
            let tc = stair ? Double(k / s) : Double(k) / Double(s)
            let peak = lr * pow(cycleDecay, Double(cycle))
            return minLR + 0.5 * (peak - minLR) * (1 + cos(Double.pi * tc / Double(decayEpochs)))
        case .exponentialDecay:
            return lr * pow(decayRate, t)
        case .polynomialDecay:
            let mainEpochs = Double(max(epochs - warmupEpochs, 1))
            return lr * pow(1 - min(t, mainEpochs) / mainEpochs, decayRate)
        case .stepDecay:
            return lr * pow(decayRate, Double(epoch / decayEpochs))
        case .multiStepDecay:
            return lr * pow(decayRate, Double(milestones.filter { $0 <= epoch }.count))
        }
    }

    public func callAsFunction(_ step: Int) -> Double { lr(at: step) }

    /// MindCV's whole array (`totalSteps` entries).
    public func values() -> [Double] { (0..<totalSteps).map { lr(at: $0) } }
}
