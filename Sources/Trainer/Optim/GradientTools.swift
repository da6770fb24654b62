import Foundation
import Models
import Tensor

/// Sum of squares of `count` floats, accumulated in Double, split across cores.
func sumOfSquares(_ x: UnsafeMutablePointer<Float>, count: Int) -> Double {
    let chunkSize = 65_536
    let chunks = (count + chunkSize - 1) / chunkSize
    guard chunks > 1 else {
        var acc: Float = 0, total = 0.0
        var j = 0
        while j < count {  // Float partials of 4096 keep the inner loop vectorized; Double across them.
            let hi = min(j + 4096, count)
            acc = 0
            for k in j..<hi { acc += x[k] * x[k] }
            total += Double(acc)
            j = hi
        }
        return total
    }
    let partials = UnsafeMutablePointer<Double>.allocate(capacity: chunks)
    defer { partials.deallocate() }
    let xs = x.sendable, ps = partials.sendable
    Parallel.forRange(chunks, grain: 1) { r in
        for c in r {
            let lo = c * chunkSize
            ps[c] = sumOfSquares(xs.base + lo, count: min(chunkSize, count - lo))
        }
    }
    var total = 0.0
    for c in 0..<chunks { total += partials[c] }
    return total
}

/// The global L2 norm over all given gradients (nil entries are skipped).
public func globalGradNorm(_ gradients: [Tensor?]) -> Double {
    var total = 0.0
    for g in gradients { if let g { total += sumOfSquares(g.storage.pointer, count: g.count) } }
    return total.squareRoot()
}

/// Clips by global L2 norm as MindCV does (docs/training.md §7 step 4):
/// `g ← g · maxNorm / max(‖g‖, maxNorm)`, in place. Returns the norm before clipping.
/// Call it after backward and before the optimizer.
@discardableResult
public func clipGradients(_ gradients: [Tensor?], maxNorm: Double) -> Double {
    let norm = globalGradNorm(gradients)
    guard norm > maxNorm, norm.isFinite else { return norm }
    let f = Float(maxNorm / norm)
    for g in gradients {
        guard let g else { continue }
        let p = g.storage.pointer.sendable
        Parallel.forRange(g.count, grain: 32_768) { r in for j in r { p[j] *= f } }
    }
    return norm
}

/// Clips the parameters' own gradients (`.grad`).
@discardableResult
public func clipGradients(_ parameters: [NamedParameter], maxNorm: Double) -> Double {
    clipGradients(parameters.map { $0.parameter.grad }, maxNorm: maxNorm)
}

/// Exponential moving average of every parameter and buffer (docs/training.md §10): after every
/// train step, with n = 1, 2, …: `d = decay·(1 − exp(−n/2000))`, `e ← d·e + (1 − d)·w`.
/// `apply()` swaps the averaged weights in for validation/saving and `restore()` swaps back.
public final class ExponentialMovingAverage {
    enum Target {
        case parameter(Parameter)
        case buffer(Buffer)
        var value: Tensor {
            switch self {
            case let .parameter(p): return p.value
            case let .buffer(b): return b.value
            }
        }
    }
    public let decay: Double
    /// Updates applied so far (the warm-up counter n).
    public private(set) var updates: Int = 0
    public let names: [String]
    let targets: [Target]
    /// The averaged values, aligned with `names`.
    public private(set) var shadow: [Tensor]
    var backup: [Tensor]? = nil

    public init(model: any Module, decay: Double) {
        let ps = model.namedParameters(), bs = model.namedBuffers()
        names = ps.map { $0.name } + bs.map { $0.name }
        targets = ps.map { .parameter($0.parameter) } + bs.map { .buffer($0.buffer) }
        shadow = targets.map { $0.value.copy() }
        self.decay = decay
    }

    /// The decay used by update number n (1-based).
    public static func warmedUpDecay(_ decay: Double, update n: Int) -> Double { decay * (1 - exp(-Double(n) / 2000)) }

    public func update() {
        precondition(backup == nil, "EMA update while the averaged weights are applied")
        updates += 1
        let d = Float(Self.warmedUpDecay(decay, update: updates)), c = 1 - d
        for (k, t) in targets.enumerated() {
            let w = t.value.storage.pointer.sendable, e = shadow[k].storage.pointer.sendable
            Parallel.forRange(shadow[k].count, grain: 32_768) { r in for j in r { e[j] = d * e[j] + c * w[j] } }
        }
    }

    /// Writes the averaged values into the model, keeping the live ones for `restore()`.
    public func apply() {
        guard backup == nil else { return }
        backup = targets.map { $0.value.copy() }
        withNoGrad { for (k, t) in targets.enumerated() { t.value.assign(shadow[k]) } }
    }

    /// Puts the live weights back after `apply()`.
    public func restore() {
        guard let backup else { return }
        withNoGrad { for (k, t) in targets.enumerated() { t.value.assign(backup[k]) } }
        self.backup = nil
    }

    /// `ema.<name>` → averaged tensor (MindCV's checkpoint naming).
    public func stateTensors() -> [String: Tensor] {
        Dictionary(uniqueKeysWithValues: zip(names, shadow).map { ("ema." + $0, $1) })
    }

    /// The averaged weights under canonical names (to load into a model for evaluation).
    public func averagedStateDict() -> [String: Tensor] { Dictionary(uniqueKeysWithValues: zip(names, shadow).map { ($0, $1) }) }

    public func loadState(tensors: [String: Tensor], updates: Int) throws {
        var plan: [(Tensor, Tensor)] = []
        for (k, n) in names.enumerated() {
            guard let t = tensors["ema." + n] else { throw OptimizerStateError.missing(name: "ema." + n) }
            guard t.shape == shadow[k].shape else { throw OptimizerStateError.shapeMismatch(name: "ema." + n, expected: shadow[k].shape, found: t.shape) }
            plan.append((shadow[k], t))
        }
        for (dst, src) in plan { dst.assign(src) }
        self.updates = updates
    }
}
