import Foundation
import XCTest
@testable import Tensor
import TestSupport

/// `Tensor.packedSelfAttention` and `packedAttention` (q, k, v read in place from the projections'
/// outputs) against the composition they replace: reshape → permute → select →
/// scaledDotProductAttention → permute → reshape.
final class PackedAttentionTests: XCTestCase {
    private func composed(_ qkv: Tensor, heads: Int, scale: Float) -> Tensor {
        let b = qkv.shape[0], n = qkv.shape[1], c = qkv.shape[2] / 3
        let t = qkv.reshaped([b, n, 3, heads, c / heads]).permuted([2, 0, 3, 1, 4])
        let o = Tensor.scaledDotProductAttention(query: t.select(axis: 0, index: 0), key: t.select(axis: 0, index: 1),
                                                 value: t.select(axis: 0, index: 2), scale: scale)
        return o.permuted([0, 2, 1, 3]).reshaped([b, n, c])
    }

    func testMatchesCompositionBitForBit() {
        var d = TestData(seed: 81)
        // (batch, tokens, heads, head dim, threads): odd token counts and head dims, one head, more
        // (batch, head) pairs than threads.
        for (b, n, heads, hd, threads) in [(2, 5, 3, 4, 1), (3, 17, 2, 7, 2), (1, 9, 1, 5, 2), (4, 6, 4, 8, 3)] {
            let x = d.normal([b, n, 3 * heads * hd])
            let seed = d.normal([b, n, heads * hd])
            var results: [(Tensor, Tensor)] = []
            for packed in [true, false] {
                var qkv = x.copy()
                qkv.requiresGrad = true
                let y = withThreads(threads) {
                    packed ? Tensor.packedSelfAttention(qkv: qkv, heads: heads, scale: 0.37) : composed(qkv, heads: heads, scale: 0.37)
                }
                withThreads(threads) { y.backward(gradient: seed) }
                results.append((y.detached(), qkv.grad ?? Tensor.zeros(x.shape)))
            }
            let label = "b \(b) n \(n) heads \(heads) d \(hd) threads \(threads)"
            XCTAssertEqual(results[0].0.shape, [b, n, heads * hd], label)
            XCTAssertEqual(maxAbsDiff(results[0].0, results[1].0), 0, "output, \(label)")
            XCTAssertEqual(maxAbsDiff(results[0].1, results[1].1), 0, "dqkv, \(label)")
            let inference = withNoGrad { Tensor.packedSelfAttention(qkv: x, heads: heads, scale: 0.37) }
            XCTAssertNil(inference.node)
            // without a tape the rows are normalised after the product with V (AttentionGeometry), a few ulps apart
            XCTAssertLessThan(maxAbsDiff(inference, results[0].0), 2e-6, "no-grad output, \(label)")
        }
    }

    func testCrossAttentionMatchesCompositionBitForBit() {
        var d = TestData(seed: 84)
        // (batch, queries, keys, heads, head dim, threads): fewer keys than queries (PVT's reduced
        // grid), more, one head.
        for (b, n, m, heads, hd, threads) in [(2, 13, 4, 2, 5, 2), (3, 3, 7, 3, 4, 1), (2, 9, 9, 1, 6, 2)] {
            let q0 = d.normal([b, n, heads * hd]), kv0 = d.normal([b, m, 2 * heads * hd])
            let seed = d.normal([b, n, heads * hd])
            var results: [[Tensor]] = []
            for packed in [true, false] {
                var q = q0.copy(), kv = kv0.copy()
                q.requiresGrad = true
                kv.requiresGrad = true
                let y = withThreads(threads) { () -> Tensor in
                    if packed { return Tensor.packedAttention(query: q, keyValue: kv, heads: heads, scale: 0.41) }
                    let qh = q.reshaped([b, n, heads, hd]).permuted([0, 2, 1, 3])
                    let t = kv.reshaped([b, m, 2, heads, hd]).permuted([2, 0, 3, 1, 4])
                    let o = Tensor.scaledDotProductAttention(query: qh, key: t.select(axis: 0, index: 0),
                                                             value: t.select(axis: 0, index: 1), scale: 0.41)
                    return o.permuted([0, 2, 1, 3]).reshaped([b, n, heads * hd])
                }
                withThreads(threads) { y.backward(gradient: seed) }
                results.append([y.detached(), q.grad ?? Tensor.zeros(q0.shape), kv.grad ?? Tensor.zeros(kv0.shape)])
            }
            for (i, name) in ["output", "dquery", "dkeyValue"].enumerated() {
                XCTAssertEqual(maxAbsDiff(results[0][i], results[1][i]), 0, "\(name), b \(b) n \(n) m \(m) heads \(heads)")
            }
        }
    }

    /// The composition `stackedSelfAttention` replaces: unstack the channel-major operands to
    /// `[B, heads, d, H·W]` copies, attend, stack the result back.
    private func stackedComposed(_ qkv: Tensor, batch b: Int, heads: Int, scale: Float) -> Tensor {
        let c = qkv.shape[1] / 3, rows = qkv.shape[2], w = qkv.shape[3]
        let t = qkv.reshaped([3, heads, c / heads, b, rows / b * w]).permuted([0, 3, 1, 2, 4])
        let o = Tensor.scaledDotProductAttention(query: t.select(axis: 0, index: 0), key: t.select(axis: 0, index: 1),
                                                 value: t.select(axis: 0, index: 2), scale: scale, layout: .channelMajor)
        return o.permuted([1, 2, 0, 3]).reshaped([1, c, rows, w])
    }

    /// Visformer's batch-stacked map `[1, 3·heads·d, B·H, W]`: output and dqkv equal the composition's.
    func testStackedMatchesCompositionBitForBit() {
        var d = TestData(seed: 85)
        // (batch, rows per sample, width, heads, head dim, threads): one sample, one head, one row,
        // more (sample, head) pairs than threads.
        for (b, h, w, heads, hd, threads) in [(2, 3, 2, 2, 4, 1), (3, 2, 3, 3, 5, 2), (1, 4, 4, 1, 6, 2), (4, 1, 5, 2, 3, 3)] {
            let x = d.normal([1, 3 * heads * hd, b * h, w])
            let seed = d.normal([1, heads * hd, b * h, w])
            var results: [(Tensor, Tensor)] = []
            for stacked in [true, false] {
                var qkv = x.copy()
                qkv.requiresGrad = true
                let y = withThreads(threads) {
                    stacked ? Tensor.stackedSelfAttention(qkv: qkv, batch: b, heads: heads, scale: 0.43)
                        : stackedComposed(qkv, batch: b, heads: heads, scale: 0.43)
                }
                withThreads(threads) { y.backward(gradient: seed) }
                results.append((y.detached(), qkv.grad ?? Tensor.zeros(x.shape)))
            }
            let label = "b \(b) h \(h) w \(w) heads \(heads) d \(hd) threads \(threads)"
            XCTAssertEqual(results[0].0.shape, [1, heads * hd, b * h, w], label)
            XCTAssertEqual(maxAbsDiff(results[0].0, results[1].0), 0, "output, \(label)")
            XCTAssertEqual(maxAbsDiff(results[0].1, results[1].1), 0, "dqkv, \(label)")
            let inference = withNoGrad { Tensor.stackedSelfAttention(qkv: x, batch: b, heads: heads, scale: 0.43) }
            XCTAssertNil(inference.node)
            // without a tape the rows are normalised after the product with V (AttentionGeometry), a few ulps apart
            XCTAssertLessThan(maxAbsDiff(inference, results[0].0), 2e-6, "no-grad output, \(label)")
        }
    }

    func testGradient() {
        var s = TestData(seed: 86)
        gradCheck("stacked attention", [s.normal([1, 12, 6, 2])]) {
            Tensor.stackedSelfAttention(qkv: $0[0], batch: 3, heads: 2, scale: 0.5)
        }
        var d = TestData(seed: 82)
        gradCheck("packed attention", [d.normal([2, 4, 18])]) { Tensor.packedSelfAttention(qkv: $0[0], heads: 2, scale: 0.5) }
        gradCheck("packed cross attention", [d.normal([2, 5, 6]), d.normal([2, 3, 12])]) {
            Tensor.packedAttention(query: $0[0], keyValue: $0[1], heads: 3, scale: 0.6)
        }
    }

    /// Under an op tracer (ONNX export) the composition is what gets recorded.
    func testTracerSeesTheComposition() {
        final class Names: OpTracer, @unchecked Sendable {
            var ops: [String] = []
            func record(op: String, inputs: [Tensor], output: Tensor, attributes: OpAttributes) { ops.append(op) }
        }
        let names = Names()
        var d = TestData(seed: 83)
        let x = d.normal([1, 3, 12])
        let y = withOpTracer(names) { withNoGrad { Tensor.packedSelfAttention(qkv: x, heads: 2, scale: 0.5) } }
        XCTAssertTrue(names.ops.contains("attention") && names.ops.contains("permute"), "\(names.ops)")
        XCTAssertFalse(names.ops.contains("packed_attention"))
        XCTAssertEqual(maxAbsDiff(y, Tensor.packedSelfAttention(qkv: x, heads: 2, scale: 0.5)), 0)
        names.ops = []
        let m = d.normal([1, 12, 4, 3])
        let z = withOpTracer(names) { withNoGrad { Tensor.stackedSelfAttention(qkv: m, batch: 2, heads: 2, scale: 0.5) } }
        XCTAssertTrue(names.ops.contains("attention") && names.ops.contains("permute"), "\(names.ops)")
        XCTAssertFalse(names.ops.contains("stacked_attention"))
        XCTAssertEqual(maxAbsDiff(z, Tensor.stackedSelfAttention(qkv: m, batch: 2, heads: 2, scale: 0.5)), 0)
    }
}
