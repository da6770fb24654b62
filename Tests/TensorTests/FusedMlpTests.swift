import Foundation
import XCTest
@testable import Tensor
import TestSupport

/// `Tensor.mlp` (fc1 → GELU → fc2 as one tape entry, the GELU output recomputed in backward) against
/// the composition linear → gelu → linear.
final class FusedMlpTests: XCTestCase {
    /// Output and the five gradients, fused or composed, from the same inputs and output gradient.
    private func run(fused: Bool, _ inputs: [Tensor], seed: Tensor, approximate: GELUApproximation) -> [Tensor] {
        let t = inputs.map { v -> Tensor in var c = v.copy(); c.requiresGrad = true; return c }
        let y = fused ? Tensor.mlp(t[0], fc1Weight: t[1], fc1Bias: t[2], fc2Weight: t[3], fc2Bias: t[4], approximate: approximate)
            : Tensor.linear(Tensor.linear(t[0], weight: t[1], bias: t[2]).gelu(approximate: approximate), weight: t[3], bias: t[4])
        y.backward(gradient: seed)
        return [y.detached()] + t.map { $0.grad ?? Tensor.zeros($0.shape) }
    }

    func testMatchesCompositionBitForBit() {
        var d = TestData(seed: 71)
        // (input shape, hidden, out, threads): odd widths exercise the kernels' scalar tails; the last
        // is large enough for the element-wise passes to split across two threads.
        let configs: [([Int], Int, Int, Int)] = [([2, 7, 19], 45, 11, 1), ([5, 3], 16, 3, 1), ([300, 33], 257, 31, 2)]
        for (shape, hidden, out, threads) in configs {
            for approximate in [GELUApproximation.tanh, .none] {
                let inputs = [d.normal(shape), d.normal([hidden, shape.last!], std: 0.5), d.normal([hidden], std: 0.5),
                              d.normal([out, hidden], std: 0.3), d.normal([out], std: 0.3)]
                let seed = d.normal(Array(shape.dropLast()) + [out])
                withThreads(threads) {
                    let f = run(fused: true, inputs, seed: seed, approximate: approximate)
                    let c = run(fused: false, inputs, seed: seed, approximate: approximate)
                    for (i, name) in ["output", "dx", "dW1", "db1", "dW2", "db2"].enumerated() {
                        XCTAssertEqual(f[i].shape, c[i].shape, "\(name) \(shape) \(approximate)")
                        XCTAssertEqual(maxAbsDiff(f[i], c[i]), 0, "\(name) \(shape) hidden \(hidden) \(approximate)")
                    }
                    let inference = withNoGrad {
                        Tensor.mlp(inputs[0], fc1Weight: inputs[1], fc1Bias: inputs[2], fc2Weight: inputs[3], fc2Bias: inputs[4],
                                   approximate: approximate)
                    }
                    XCTAssertEqual(maxAbsDiff(inference, f[0]), 0, "no-grad output \(shape) \(approximate)")
                }
            }
        }
    }

    /// Enough rows run in row blocks per thread (`Tensor.mlpInRowBlocks`, here with blocks of a few
    /// dozen rows): the same products and GELU kernel row by row, so the output of the whole products
    /// up to rounding (OpenBLAS takes other kernels for small blocks), at one and two threads and with a
    /// short last block; with a tape, the output and all five gradients those of the composition.
    func testRowBlocksMatchWholeProducts() {
        var d = TestData(seed: 74)
        let (savedFloats, savedRows) = (MlpRowBlocks.hiddenFloats, MlpRowBlocks.minimumRows)
        defer { MlpRowBlocks.hiddenFloats = savedFloats; MlpRowBlocks.minimumRows = savedRows }
        for (shape, hidden, out, threads) in [([4, 61, 24], 40, 24, 2), ([203, 17], 33, 9, 1), ([3, 71, 16], 64, 16, 2)] {
            let inputs = [d.normal(shape), d.normal([hidden, shape.last!], std: 0.5), d.normal([hidden], std: 0.5),
                          d.normal([out, hidden], std: 0.3), d.normal([out], std: 0.3)]
            func mlp() -> Tensor {
                withThreads(threads) { withNoGrad {
                    Tensor.mlp(inputs[0], fc1Weight: inputs[1], fc1Bias: inputs[2], fc2Weight: inputs[3], fc2Bias: inputs[4],
                               approximate: .tanh)
                } }
            }
            MlpRowBlocks.hiddenFloats = 1 << 18; MlpRowBlocks.minimumRows = 256
            let rows = inputs[0].count / shape.last!
            XCTAssertNil(withThreads(threads) { MlpRowBlocks.rows(rows: rows, hidden: hidden) }, "whole products at the default sizes")
            let whole = mlp()
            MlpRowBlocks.hiddenFloats = 16 * hidden; MlpRowBlocks.minimumRows = 16
            let block = withThreads(threads) { MlpRowBlocks.rows(rows: rows, hidden: hidden) }
            XCTAssertNotNil(block, "\(shape) runs in row blocks")
            if let block { XCTAssertNotEqual(rows % block, 0, "\(shape): a short last block is exercised") }
            let blocked = mlp()
            XCTAssertLessThan(maxAbsDiff(blocked, whole), 2e-5, "\(shape) hidden \(hidden) threads \(threads)")
            let reference = Tensor.linear(Tensor.linear(inputs[0], weight: inputs[1], bias: inputs[2]).gelu(approximate: .tanh),
                                          weight: inputs[3], bias: inputs[4])
            XCTAssertLessThan(maxAbsDiff(blocked, reference), 1e-5, "\(shape) against the composition")
            // with a tape: fc1's output is kept from the blocks, backward is the whole-product one
            let seed = d.normal(Array(shape.dropLast()) + [out])
            let fused = withThreads(threads) { run(fused: true, inputs, seed: seed, approximate: .tanh) }
            MlpRowBlocks.hiddenFloats = 1 << 18; MlpRowBlocks.minimumRows = 256
            let composed = withThreads(threads) { run(fused: false, inputs, seed: seed, approximate: .tanh) }
            for (i, name) in ["output", "dx", "dW1", "db1", "dW2", "db2"].enumerated() {
                let scale = max(1, maxAbsDiff(composed[i], Tensor.zeros(composed[i].shape)))
                XCTAssertLessThan(maxAbsDiff(fused[i], composed[i]) / scale, 2e-6, "\(name) \(shape) in row blocks, recorded")
            }
        }
    }

    func testGradients() {
        var d = TestData(seed: 72)
        for approximate in [GELUApproximation.tanh, .none] {
            let inputs = [d.normal([3, 5], std: 1.5), d.normal([7, 5], std: 0.6), d.normal([7], std: 0.6),
                          d.normal([4, 7], std: 0.6), d.normal([4], std: 0.6)]
            gradCheck("mlp \(approximate)", inputs) { t in
                Tensor.mlp(t[0], fc1Weight: t[1], fc1Bias: t[2], fc2Weight: t[3], fc2Bias: t[4], approximate: approximate)
            }
        }
    }

    func testBackwardTwiceWithRetainedGraph() {
        var d = TestData(seed: 73)
        var x = d.normal([4, 6]), w1 = d.normal([9, 6])
        let b1 = d.normal([9]), w2 = d.normal([5, 9]), b2 = d.normal([5])
        x.requiresGrad = true
        w1.requiresGrad = true
        let y = Tensor.mlp(x, fc1Weight: w1, fc1Bias: b1, fc2Weight: w2, fc2Bias: b2, approximate: .tanh).sum()
        y.backward(retainGraph: true)
        let once = (x.grad!.copy(), w1.grad!.copy())
        y.backward()
        XCTAssertEqual(maxAbsDiff(x.grad!, once.0 * 2), 0)
        XCTAssertEqual(maxAbsDiff(w1.grad!, once.1 * 2), 0)
        XCTAssertNil(b1.grad, "inputs off the tape get no gradient")
    }
}
