import Foundation
import Models
import Tensor

/// MindSpore `nn.SGD` / `nn.Momentum` as MindCV's `opt: sgd | momentum | nesterov`
/// (docs/training.md §4.3): L2 decay added to the gradient, dampening 0:
///
///     g ← g + λ·p;  buf ← μ·buf + g
///     p ← p − η·buf                 (Nesterov: p ← p − η·(g + μ·buf))
///
/// State slot: `momentum_buffer`.
public final class SGD: SlotOptimizer, Optimizer {
    public let momentum: Float
    public let nesterov: Bool

    public init(parameters: [NamedParameter], weightDecays: [Float], momentum: Float = 0.9, nesterov: Bool = false) {
        self.momentum = momentum; self.nesterov = nesterov
        super.init(parameters: parameters, weightDecays: weightDecays, slotNames: ["momentum_buffer"])
    }

    public func step(lr: Double, gradScale: Float) {
        stepCount += 1
        let mu = momentum, eta = Float(lr), scale = gradScale, nesterov = self.nesterov
        withNoGrad {
            forEachParameter { i, r, p, g, s in
                let buf = s[0], wd = weightDecays[i]
                if nesterov {
                    for j in r {
                        let gj = g[j] * scale + wd * p[j]
                        let b = mu * buf[j] + gj
                        buf[j] = b
                        p[j] -= eta * (gj + mu * b)
                    }
                } else {
                    for j in r {
                        let gj = g[j] * scale + wd * p[j]
                        let b = mu * buf[j] + gj
                        buf[j] = b
                        p[j] -= eta * b
                    }
                }
            }
        }
    }
}
