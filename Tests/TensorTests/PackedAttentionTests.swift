import Foundation
import XCTest
@testable import Tensor
import TestSupport

/// `Tensor.packedSelfAttention` (q, k, v read in place from the qkv projection's output) against the
/// composition it replaces: reshape → permute → select → scaledDotProductAttention → permute → reshape.
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
            XCTAssertEqual(maxAbsDiff(inference, results[0].0), 0, "no-grad output, \(label)")
        }
    }

    func testGradient() {
        var d = TestData(seed: 82)
        gradCheck("packed attention", [d.normal([2, 4, 18])]) { Tensor.packedSelfAttention(qkv: $0[0], heads: 2, scale: 0.5) }
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
    }
}
