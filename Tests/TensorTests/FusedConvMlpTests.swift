import Foundation
import XCTest
@testable import Tensor
import TestSupport

/// `Tensor.residualConvMlp` (conv1 → GELU → grouped conv2 → GELU → conv3, scaled per sample and added
/// to a residual, sample by sample per core) against the composition of conv2d, gelu, mul and add.
final class FusedConvMlpTests: XCTestCase {
    private struct Case {
        let batch: Int, channels: Int, hidden: Int, groups: Int, kernel: Int, h: Int, w: Int, bias: Bool, threads: Int
    }

    /// Output and the gradients of x, residual, w1, (b1), w2, w3, fused or composed.
    private func run(fused: Bool, _ inputs: [Tensor], groups: Int, bias: Bool, scales: [Float]?, seed: Tensor,
                     approximate: GELUApproximation) -> [Tensor] {
        let t = inputs.map { v -> Tensor in var c = v.copy(); c.requiresGrad = true; return c }
        let b1: Tensor? = bias ? t[3] : nil, w2 = t[bias ? 4 : 3], w3 = t[bias ? 5 : 4], k = w2.shape[2]
        let y: Tensor
        if fused {
            y = Tensor.residualConvMlp(t[0], residual: t[1], conv1Weight: t[2], conv1Bias: b1, conv2Weight: w2, groups: groups,
                                       conv3Weight: w3, branchScales: scales, approximate: approximate)
        } else {
            let a = Tensor.conv2d(t[0], weight: t[2], bias: b1).gelu(approximate: approximate)
            var branch = Tensor.conv2d(Tensor.conv2d(a, weight: w2, bias: nil, padding: (k / 2, k / 2), groups: groups)
                                        .gelu(approximate: approximate), weight: w3, bias: nil)
            if let scales { branch = branch * Tensor(shape: [scales.count, 1, 1, 1], scales) }
            y = t[1] + branch
        }
        y.backward(gradient: seed)
        return [y.detached()] + t.map { $0.grad ?? Tensor.zeros($0.shape) }
    }

    func testMatchesComposition() {
        var d = TestData(seed: 91)
        // odd planes (the direct kernel's junk columns and tails), 1 and 3 groups, a bias or none, a
        // 5×5 conv2, a dropped sample, one thread and two
        let cases = [Case(batch: 3, channels: 5, hidden: 8, groups: 2, kernel: 3, h: 5, w: 6, bias: false, threads: 2),
                     Case(batch: 2, channels: 4, hidden: 6, groups: 3, kernel: 3, h: 7, w: 4, bias: true, threads: 1),
                     Case(batch: 4, channels: 3, hidden: 4, groups: 1, kernel: 5, h: 6, w: 6, bias: true, threads: 2)]
        for (ci, c) in cases.enumerated() {
            for approximate in [GELUApproximation.tanh, .none] {
                var inputs = [d.normal([c.batch, c.channels, c.h, c.w]), d.normal([c.batch, c.channels, c.h, c.w]),
                              d.normal([c.hidden, c.channels, 1, 1], std: 0.5)]
                if c.bias { inputs.append(d.normal([c.hidden], std: 0.5)) }
                inputs += [d.normal([c.hidden, c.hidden / c.groups, c.kernel, c.kernel], std: 0.3), d.normal([c.channels, c.hidden, 1, 1], std: 0.4)]
                let scales: [Float]? = ci == 1 ? nil : (0..<c.batch).map { $0 == 1 ? 0 : 1.25 }
                let seed = d.normal([c.batch, c.channels, c.h, c.w])
                withThreads(c.threads) {
                    let f = run(fused: true, inputs, groups: c.groups, bias: c.bias, scales: scales, seed: seed, approximate: approximate)
                    let r = run(fused: false, inputs, groups: c.groups, bias: c.bias, scales: scales, seed: seed, approximate: approximate)
                    let names = ["output", "dx", "dresidual", "dW1"] + (c.bias ? ["db1"] : []) + ["dW2", "dW3"]
                    for (i, name) in names.enumerated() {
                        XCTAssertEqual(f[i].shape, r[i].shape, "\(name), case \(ci)")
                        XCTAssertLessThanOrEqual(maxAbsDiff(f[i], r[i]), 2e-5 * max(maxAbs(r[i]), 1), "\(name), case \(ci), \(approximate)")
                    }
                    XCTAssertGreaterThan(maxAbs(f[4]), 0, "case \(ci)")
                    let b1: Tensor? = c.bias ? inputs[3] : nil
                    let inference = withNoGrad {
                        Tensor.residualConvMlp(inputs[0], residual: inputs[1], conv1Weight: inputs[2], conv1Bias: b1,
                                               conv2Weight: inputs[c.bias ? 4 : 3], groups: c.groups, conv3Weight: inputs[c.bias ? 5 : 4],
                                               branchScales: scales, approximate: approximate)
                    }
                    XCTAssertNil(inference.node)
                    XCTAssertEqual(maxAbsDiff(inference, f[0]), 0, "no-grad output, case \(ci)")
                }
                if let scales, let dropped = scales.firstIndex(of: 0) {
                    // a dropped sample: output = residual, no gradient through the branch
                    let f = withThreads(c.threads) { run(fused: true, inputs, groups: c.groups, bias: c.bias, scales: scales, seed: seed,
                                                         approximate: approximate) }
                    let per = c.channels * c.h * c.w
                    XCTAssertEqual(Array(f[0].scalars[(dropped * per)..<((dropped + 1) * per)]),
                                   Array(inputs[1].scalars[(dropped * per)..<((dropped + 1) * per)]))
                    XCTAssertEqual(maxAbs(Tensor(shape: [per], Array(f[1].scalars[(dropped * per)..<((dropped + 1) * per)]))), 0)
                }
            }
        }
    }

    func testGradient() {
        var d = TestData(seed: 92)
        let inputs = [d.normal([2, 3, 4, 5]), d.normal([2, 3, 4, 5]), d.normal([4, 3, 1, 1], std: 0.5), d.normal([4], std: 0.5),
                      d.normal([4, 2, 3, 3], std: 0.4), d.normal([3, 4, 1, 1], std: 0.5)]
        withThreads(2) {
            gradCheck("residual conv MLP", inputs) {
                Tensor.residualConvMlp($0[0], residual: $0[1], conv1Weight: $0[2], conv1Bias: $0[3], conv2Weight: $0[4], groups: 2,
                                       conv3Weight: $0[5], branchScales: [1.5, 0.5], approximate: .tanh)
            }
        }
    }
}
