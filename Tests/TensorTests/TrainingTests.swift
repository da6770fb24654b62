import Foundation
import XCTest
@testable import Tensor

/// A small network trained end to end by the engine.
final class TrainingTests: XCTestCase {
    /// 2-layer MLP (linear → LayerNorm → GELU → linear) on three interleaved spirals (300 points,
    /// not linearly separable), full-batch plain SGD written here. Deterministic seed. The loss
    /// starts at ln 3 ≈ 1.10 and must fall below 0.15 within 600 steps.
    func testMLPLearnsSpirals() {
        var rng = RandomGenerator(seed: 1)
        let classes = 3, perClass = 100, hidden = 64
        var xs: [Float] = [], labels: [Int] = []
        for c in 0..<classes {
            for i in 0..<perClass {
                let r = Float(i) / Float(perClass)
                let t = Float(c) * 4 + r * 4 + rng.nextNormal() * 0.2
                xs += [r * Foundation.sin(t), r * Foundation.cos(t)]
                labels.append(c)
            }
        }
        let x = Tensor(shape: [classes * perClass, 2], xs)
        func param(_ t: Tensor) -> Tensor { var t = t; t.requiresGrad = true; return t }
        let w1 = param(Tensor.randn([hidden, 2], std: 1, generator: &rng))
        let b1 = param(Tensor.zeros([hidden]))
        let lnW = param(Tensor.ones([hidden])), lnB = param(Tensor.zeros([hidden]))
        let w2 = param(Tensor.randn([classes, hidden], std: 0.1, generator: &rng))
        let b2 = param(Tensor.zeros([classes]))
        let params = [w1, b1, lnW, lnB, w2, b2]
        func loss() -> Tensor {
            let h = Tensor.layerNorm(Tensor.linear(x, weight: w1, bias: b1), weight: lnW, bias: lnB, eps: 1e-5).gelu()
            return Tensor.crossEntropy(logits: Tensor.linear(h, weight: w2, bias: b2), labels: labels)
        }
        let initial = loss().item
        XCTAssertEqual(initial, Float(Foundation.log(3.0)), accuracy: 0.3)
        var last: Float = initial
        for _ in 0..<600 {
            for p in params { p.zeroGrad() }
            let l = loss()
            last = l.item
            l.backward()
            withNoGrad {
                for p in params { p.assign(p - p.grad! * 0.5) }
            }
        }
        XCTAssertLessThan(last, 0.15, "final training loss")
        print("MLP on spirals: loss \(initial) → \(last) after 600 SGD steps")
        // and it classifies the training set
        let logits = withNoGrad {
            Tensor.linear(Tensor.layerNorm(Tensor.linear(x, weight: w1, bias: b1), weight: lnW, bias: lnB, eps: 1e-5).gelu(),
                          weight: w2, bias: b2)
        }
        var correct = 0
        for i in 0..<labels.count {
            let row = Array(logits.scalars[(i * 3)..<(i * 3 + 3)])
            if row.firstIndex(of: row.max()!) == labels[i] { correct += 1 }
        }
        XCTAssertGreaterThan(Double(correct) / Double(labels.count), 0.95)
    }
}
