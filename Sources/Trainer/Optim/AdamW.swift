import Foundation
import Models
import Tensor

/// AdamW exactly as MindCV uses it (docs/training.md §4.2, = PyTorch `AdamW`): β1 0.9, β2 0.999,
/// eps 1e-8 outside the square root of the bias-corrected v, decoupled decay multiplied by the LR:
///
///     m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
///     p ← p − η·( (m/(1−β1^t)) / (sqrt(v/(1−β2^t)) + eps) + λ·p )
///
/// State slots: `exp_avg` (m) and `exp_avg_sq` (v).
public final class AdamW: SlotOptimizer, Optimizer {
    public let beta1: Double, beta2: Double, eps: Double

    public init(parameters: [NamedParameter], weightDecays: [Float], beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        super.init(parameters: parameters, weightDecays: weightDecays, slotNames: ["exp_avg", "exp_avg_sq"])
    }

    public convenience init(parameters: [NamedParameter], weightDecay: Double = 0) {
        self.init(parameters: parameters, weightDecays: Array(repeating: Float(weightDecay), count: parameters.count))
    }

    public func step(lr: Double, gradScale: Float) {
        stepCount += 1
        let t = Double(stepCount)
        let b1 = Float(beta1), b2 = Float(beta2), e = Float(eps), eta = Float(lr), scale = gradScale
        let c1 = Float(1 / (1 - pow(beta1, t))), c2 = Float(1 / (1 - pow(beta2, t)))
        withNoGrad {
            forEachParameter { i, r, p, g, s in
                let m = s[0], v = s[1], wd = weightDecays[i]
                // Explicit 8-wide SIMD: the scalar loop does not vectorize (sqrt + divide stay scalar).
                typealias V8 = SIMD8<Float>
                var j = r.lowerBound
                while j + 8 <= r.upperBound {
                    let gj = V8.load(g + j) * scale
                    let mj = b1 * V8.load(m + j) + (1 - b1) * gj
                    let vj = b2 * V8.load(v + j) + (1 - b2) * (gj * gj)
                    let pj = V8.load(p + j)
                    mj.store(to: m + j)
                    vj.store(to: v + j)
                    (pj - eta * ((mj * c1) / ((vj * c2).squareRoot() + e) + wd * pj)).store(to: p + j)
                    j += 8
                }
                while j < r.upperBound {
                    let gj = g[j] * scale
                    let mj = b1 * m[j] + (1 - b1) * gj
                    let vj = b2 * v[j] + (1 - b2) * (gj * gj)
                    m[j] = mj
                    v[j] = vj
                    p[j] -= eta * ((mj * c1) / ((vj * c2).squareRoot() + e) + wd * p[j])
                    j += 1
                }
            }
        }
    }
}

/// MindSpore `nn.Adam` as MindCV's `opt: adam` (docs/training.md §4.3): L2 decay added to the
/// gradient, eps on the un-corrected v, optional Nesterov:
///
///     g ← g + λ·p;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  η_t = η·sqrt(1−β2^t)/(1−β1^t)
///     p ← p − η_t·m/(sqrt(v) + eps)          (Nesterov: (β1·m + (1−β1)·g) instead of m)
public final class Adam: SlotOptimizer, Optimizer {
    public let beta1: Double, beta2: Double, eps: Double, nesterov: Bool

    public init(parameters: [NamedParameter], weightDecays: [Float], beta1: Double = 0.9, beta2: Double = 0.999,
                eps: Double = 1e-8, nesterov: Bool = false) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.nesterov = nesterov
        super.init(parameters: parameters, weightDecays: weightDecays, slotNames: ["exp_avg", "exp_avg_sq"])
    }

    public func step(lr: Double, gradScale: Float) {
        stepCount += 1
        let t = Double(stepCount)
        let b1 = Float(beta1), b2 = Float(beta2), e = Float(eps), scale = gradScale
        let eta = Float(lr * (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t)))
        let nesterov = self.nesterov
        withNoGrad {
            forEachParameter { i, r, p, g, s in
                let m = s[0], v = s[1], wd = weightDecays[i]
                for j in r {
                    let gj = g[j] * scale + wd * p[j]
                    let mj = b1 * m[j] + (1 - b1) * gj
                    let vj = b2 * v[j] + (1 - b2) * (gj * gj)
                    m[j] = mj
                    v[j] = vj
                    let num = nesterov ? b1 * mj + (1 - b1) * gj : mj
                    p[j] -= eta * num / (vj.squareRoot() + e)
                }
            }
        }
    }
}
