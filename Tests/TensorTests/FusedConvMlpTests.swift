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

    /// `conv2d(…, adding: r)` (the bias and r written into the output before the GEMMs accumulate onto
    /// them) against `r + conv2d(…)`: pointwise and im2col convs, per-sample and batch-1 products, a bias
    /// or none; the direct-kernel and batched-plane geometries fall back to the add.
    func testConvAddingResidualMatchesSum() {
        var d = TestData(seed: 93)
        // (x shape, weight shape, stride, padding, groups, bias, threads)
        let cases: [([Int], [Int], Int, Int, Int, Bool, Int)] = [
            ([3, 6, 17, 17], [5, 6, 1, 1], 1, 0, 1, true, 2), ([1, 8, 9, 11], [8, 4, 1, 1], 1, 0, 2, false, 2),
            ([2, 4, 9, 9], [6, 4, 3, 3], 2, 1, 1, true, 1), ([4, 6, 8, 8], [6, 3, 3, 3], 1, 1, 2, true, 2),
            ([3, 4, 6, 6], [5, 4, 2, 2], 2, 0, 1, false, 2)]
        for (shape, wshape, stride, pad, groups, bias, threads) in cases {
            let x0 = d.normal(shape), w0 = d.normal(wshape, std: 0.5), b0 = d.normal([wshape[0]], std: 0.5)
            let oh = (shape[2] + 2 * pad - wshape[2]) / stride + 1, ow = (shape[3] + 2 * pad - wshape[3]) / stride + 1
            let r0 = d.normal([shape[0], wshape[0], oh, ow]), seed = d.normal([shape[0], wshape[0], oh, ow])
            var results: [[Tensor]] = []
            for fused in [true, false] {
                let t = [x0, w0, b0, r0].map { v -> Tensor in var c = v.copy(); c.requiresGrad = true; return c }
                let y = withThreads(threads) { () -> Tensor in
                    let b: Tensor? = bias ? t[2] : nil
                    return fused ? Tensor.conv2d(t[0], weight: t[1], bias: b, stride: (stride, stride), padding: (pad, pad), groups: groups,
                                                 adding: t[3])
                        : t[3] + Tensor.conv2d(t[0], weight: t[1], bias: b, stride: (stride, stride), padding: (pad, pad), groups: groups)
                }
                withThreads(threads) { y.backward(gradient: seed) }
                results.append([y.detached()] + t.map { $0.grad ?? Tensor.zeros($0.shape) })
            }
            for (i, name) in ["output", "dx", "dW", "db", "dresidual"].enumerated() {
                XCTAssertLessThanOrEqual(maxAbsDiff(results[0][i], results[1][i]), 1e-5 * max(maxAbs(results[1][i]), 1), "\(name), x \(shape), w \(wshape)")
            }
            XCTAssertEqual(maxAbsDiff(results[0][4], seed), 0, "dresidual is the output gradient")
        }
    }

    /// `Tensor.stackedTransformerBlock` (sample by sample per core on the batch-stacked map) against its
    /// composition, recorded (which runs the composition itself) and not.
    func testStackedTransformerBlockMatchesComposition() {
        var d = TestData(seed: 94)
        let saved = stackedBlockMinimumPositions
        stackedBlockMinimumPositions = 4
        defer { stackedBlockMinimumPositions = saved }
        // (batch, rows, width, channels, heads, head dim, hidden, biases, threads)
        for (b, h, w, c, heads, hd, hidden, biases, threads) in [(3, 3, 4, 6, 2, 4, 10, true, 2), (2, 5, 3, 5, 1, 7, 12, false, 2),
                                                                 (4, 2, 2, 4, 3, 2, 8, true, 3)] {
            let x = d.normal([1, c, b * h, w])
            let wq = d.normal([3 * heads * hd, c, 1, 1], std: 0.4), wp = d.normal([c, heads * hd, 1, 1], std: 0.4)
            let w1 = d.normal([hidden, c, 1, 1], std: 0.4), w2 = d.normal([c, hidden, 1, 1], std: 0.4)
            let bq: Tensor? = biases ? d.normal([3 * heads * hd], std: 0.3) : nil, bp: Tensor? = biases ? d.normal([c], std: 0.3) : nil
            let b1: Tensor? = biases ? d.normal([hidden], std: 0.3) : nil, b2: Tensor? = biases ? d.normal([c], std: 0.3) : nil
            func block() -> Tensor {
                Tensor.stackedTransformerBlock(x, batch: b, heads: heads, scale: 0.45, qkvWeight: wq, qkvBias: bq, projWeight: wp, projBias: bp,
                                               fc1Weight: w1, fc1Bias: b1, fc2Weight: w2, fc2Bias: b2, approximate: .tanh)
            }
            let fused = withThreads(threads) { withNoGrad { block() } }
            let composed = withThreads(threads) { () -> Tensor in
                withNoGrad {
                    let attention = Tensor.stackedSelfAttention(qkv: Tensor.conv2d(x, weight: wq, bias: bq), batch: b, heads: heads, scale: 0.45)
                    let y = x + Tensor.conv2d(attention, weight: wp, bias: bp)
                    return y + Tensor.conv2d(Tensor.conv2d(y, weight: w1, bias: b1).gelu(approximate: .tanh), weight: w2, bias: b2)
                }
            }
            let label = "batch \(b), \(h)×\(w), heads \(heads), biases \(biases), threads \(threads)"
            XCTAssertLessThanOrEqual(maxAbsDiff(fused, composed), 1e-5 * max(maxAbs(composed), 1), label)
            var xr = x.copy()
            xr.requiresGrad = true
            let recorded = withThreads(threads) {
                Tensor.stackedTransformerBlock(xr, batch: b, heads: heads, scale: 0.45, qkvWeight: wq, qkvBias: bq, projWeight: wp, projBias: bp,
                                               fc1Weight: w1, fc1Bias: b1, fc2Weight: w2, fc2Bias: b2, approximate: .tanh)
            }
            XCTAssertNotNil(recorded.node, "recording runs the composition")
            XCTAssertLessThanOrEqual(maxAbsDiff(recorded, composed), 1e-5 * max(maxAbs(composed), 1), label)
        }
    }

    func testGradient() {
        var d = TestData(seed: 92)
        let inputs = [d.normal([2, 3, 4, 5]), d.normal([2, 3, 4, 5]), d.normal([4, 3, 1, 1], std: 0.5), d.normal([4], std: 0.5),
                      d.normal([4, 2, 3, 3], std: 0.4), d.normal([3, 4, 1, 1], std: 0.5)]
        _ = withThreads(2) {
            gradCheck("residual conv MLP", inputs) {
                Tensor.residualConvMlp($0[0], residual: $0[1], conv1Weight: $0[2], conv1Bias: $0[3], conv2Weight: $0[4], groups: 2,
                                       conv3Weight: $0[5], branchScales: [1.5, 0.5], approximate: .tanh)
            }
        }
    }
}
