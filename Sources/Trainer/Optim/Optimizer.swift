import Foundation
import Models
import Tensor

public typealias NamedParameter = (name: String, parameter: Parameter)

/// Errors restoring optimizer or EMA state; each names the tensor and both shapes.
public enum OptimizerStateError: Error, CustomStringConvertible, Equatable {
    case missing(name: String)
    case shapeMismatch(name: String, expected: [Int], found: [Int])
    case unexpected(names: [String])

    public var description: String {
        switch self {
        case let .missing(n): return "optimizer state: no tensor '\(n)' in the checkpoint"
        case let .shapeMismatch(n, e, f): return "optimizer state: '\(n)' has shape \(f) in the checkpoint, the model needs \(e)"
        case let .unexpected(ns): return "optimizer state: checkpoint tensors not in the model: " + ns.prefix(20).joined(separator: ", ")
        }
    }
}

/// A per-parameter update rule with state, applied to the parameters' own gradients (`.grad`). The
/// training loop (`TrainingStep`) calls `step(lr:gradScale:)` once per update with the scheduled LR
/// of the current data step; with gradient accumulation over n micro-batches the gradients add up in
/// `.grad` and it calls it every n-th micro-batch with `gradScale` 1/n, while the schedule index
/// still advances every micro-batch (docs/training.md §10.3).
///
/// Parameters without a gradient are skipped (their state does not move). The update count used for
/// bias correction advances once per `step`.
public protocol Optimizer: AnyObject {
    var parameters: [NamedParameter] { get }
    /// λ per parameter (0 for parameters exempt by the weight-decay filter).
    var weightDecays: [Float] { get }
    /// Number of updates applied so far (Adam's t).
    var stepCount: Int { get set }
    /// Applies one update from the parameters' `.grad`, each gradient multiplied by `gradScale` first.
    func step(lr: Double, gradScale: Float)
    /// The per-parameter state tensors by `<slot>.<parameter name>` (e.g. `exp_avg.head.weight`).
    func stateTensors() -> [String: Tensor]
    /// Restores state written by `stateTensors` (shapes must match) and the update count.
    func loadState(tensors: [String: Tensor], stepCount: Int) throws
}

extension Optimizer {
    public func step(lr: Double) { step(lr: lr, gradScale: 1) }
    public func zeroGrad() { for p in parameters { p.parameter.zeroGrad() } }
}

/// Shared bookkeeping of the optimizers: parameters, decay coefficients and named state slots.
public class SlotOptimizer {
    public let parameters: [NamedParameter]
    public let weightDecays: [Float]
    public var stepCount: Int = 0
    let slotNames: [String]
    /// slots[s][p]: state tensor of slot s for parameter p, zero-initialised, same shape.
    var slots: [[Tensor]]

    init(parameters: [NamedParameter], weightDecays: [Float], slotNames: [String]) {
        precondition(parameters.count == weightDecays.count, "one weight decay per parameter")
        self.parameters = parameters
        self.weightDecays = weightDecays
        self.slotNames = slotNames
        slots = slotNames.map { _ in parameters.map { Tensor.zeros($0.parameter.shape) } }
    }

    public func stateTensors() -> [String: Tensor] {
        var d: [String: Tensor] = [:]
        for (s, slot) in slotNames.enumerated() {
            for (i, p) in parameters.enumerated() { d["\(slot).\(p.name)"] = slots[s][i] }
        }
        return d
    }

    public func loadState(tensors: [String: Tensor], stepCount: Int) throws {
        var plan: [(Tensor, Tensor)] = []
        var used = Set<String>()
        for (s, slot) in slotNames.enumerated() {
            for (i, p) in parameters.enumerated() {
                let key = "\(slot).\(p.name)"
                guard let t = tensors[key] else { throw OptimizerStateError.missing(name: key) }
                guard t.shape == p.parameter.shape else {
                    throw OptimizerStateError.shapeMismatch(name: key, expected: p.parameter.shape, found: t.shape)
                }
                plan.append((slots[s][i], t))
                used.insert(key)
            }
        }
        let extra = tensors.keys.filter { !used.contains($0) }.sorted()
        if !extra.isEmpty { throw OptimizerStateError.unexpected(names: extra) }
        for (dst, src) in plan { dst.assign(src) }
        self.stepCount = stepCount
    }

    /// Runs `kernel(range, param, grad, slots…)` over the elements of every parameter with a
    /// gradient, split across cores.
    func forEachParameter(_ kernel: (_ i: Int, _ range: Range<Int>, _ p: UnsafeMutablePointer<Float>,
                                     _ g: UnsafeMutablePointer<Float>, _ s: [UnsafeMutablePointer<Float>]) -> Void) {
        for i in parameters.indices {
            guard let g = parameters[i].parameter.grad else { continue }
            let p = parameters[i].parameter.value
            precondition(g.shape == p.shape, "gradient of \(parameters[i].name) has shape \(g.shape), parameter \(p.shape)")
            let pp = p.storage.pointer.sendable, gp = g.storage.pointer.sendable
            let sp = slots.map { $0[i].storage.pointer.sendable }
            Parallel.forRange(p.count, grain: 16_384) { r in
                kernel(i, r, pp.base, gp.base, sp.map { $0.base })
            }
        }
    }
}

/// Which parameters are exempt from weight decay (docs/training.md §4.1), on canonical
/// (PyTorch-style) names.
///
/// MindCV tests MindSpore names for `gamma`/`beta` (norm scale/shift). Canonical names call those
/// `<norm>.weight`/`<norm>.bias`, so vitzoo identifies a *norm parameter* structurally:
///   * `<prefix>.weight` of rank 1 (Linear and Conv weights have rank ≥ 2, so a 1-D weight belongs
///     to a LayerNorm/BatchNorm/GroupNorm), or
///   * `<prefix>.bias` whose sibling `<prefix>.weight` has rank 1, or
///   * a name whose last component contains `gamma` or `beta` (LayerScale, as MindCV would exempt).
/// Filters:
///   * `disable`: every parameter is decayed (MindCV's default, and all PiT/PVT/ConViT/Visformer recipes);
///   * `auto`: norm parameters are exempt; biases, position embeddings, class tokens are decayed;
///   * `norm_and_bias`: norm parameters, names whose last component contains `bias` (biases,
///     relative-position bias tables) and the model's `noWeightDecay` names are exempt.
/// With `layer_decay` set (and a filter other than `auto`), rank-1 parameters and `noWeightDecay`
/// names are exempt as well (§4.4; the per-layer LR multiplier is 1 for these models).
public enum WeightDecayFilter: String, Sendable, CaseIterable {
    case disable
    case auto
    case normAndBias = "norm_and_bias"

    public static func isNormParameter(_ name: String, shapes: [String: [Int]]) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        let last = parts.last.map(String.init) ?? name
        let lower = last.lowercased()
        if lower.contains("gamma") || lower.contains("beta") { return true }
        let prefix = parts.dropLast().joined(separator: ".")
        let weightName = prefix.isEmpty ? "weight" : prefix + ".weight"
        switch last {
        case "weight": return shapes[name]?.count == 1
        case "bias": return shapes[weightName]?.count == 1
        default: return false
        }
    }

    /// Whether each parameter is decayed.
    public func decayMask(_ parameters: [NamedParameter], noWeightDecay: Set<String> = [],
                          layerDecay: Bool = false) -> [Bool] {
        let shapes = Dictionary(parameters.map { ($0.name, $0.parameter.shape) }, uniquingKeysWith: { a, _ in a })
        return parameters.map { p in
            let name = p.name
            if layerDecay && self != .auto && (p.parameter.shape.count <= 1 || noWeightDecay.contains(name)) { return false }
            switch self {
            case .disable: return true
            case .auto: return !Self.isNormParameter(name, shapes: shapes)
            case .normAndBias:
                let last = name.split(separator: ".").last.map(String.init) ?? name
                return !(Self.isNormParameter(name, shapes: shapes) || last.lowercased().contains("bias") || noWeightDecay.contains(name))
            }
        }
    }
}

/// Builds the recipe's optimizer (`opt`, `momentum`, `use_nesterov`, `weight_decay`,
/// `weight_decay_filter`, `layer_decay`) over the model's trainable parameters.
/// `noWeightDecay` is only used by `norm_and_bias` (and `layer_decay`). MindCV's five families define
/// no `no_weight_decay()`, so pass `[]` (the default) to reproduce MindCV — position embeddings and
/// class tokens are then decayed; pass `model.noWeightDecay` for timm's behaviour.
public func makeOptimizer(recipe: Recipe, parameters: [NamedParameter], noWeightDecay: Set<String> = []) -> any Optimizer {
    let filter = WeightDecayFilter(rawValue: recipe.weightDecayFilter) ?? .normAndBias
    let mask = filter.decayMask(parameters, noWeightDecay: noWeightDecay, layerDecay: recipe.layerDecay != nil)
    let decays = mask.map { $0 ? Float(recipe.weightDecay) : 0 }
    switch recipe.opt.lowercased() {
    case "adamw":
        return AdamW(parameters: parameters, weightDecays: decays)
    case "adam":
        return Adam(parameters: parameters, weightDecays: decays, nesterov: recipe.useNesterov)
    case "nesterov":
        return SGD(parameters: parameters, weightDecays: decays, momentum: Float(recipe.momentum), nesterov: true)
    case "sgd", "momentum":
        return SGD(parameters: parameters, weightDecays: decays, momentum: Float(recipe.momentum), nesterov: recipe.useNesterov)
    default:
        preconditionFailure("unsupported optimizer '\(recipe.opt)' (the recipe check rejects it)")
    }
}

extension SIMD8 where Scalar == Float {
    @inline(__always) static func load(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: self, as: SIMD8<Float>.self)
    }
}
