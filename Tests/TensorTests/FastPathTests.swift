import Foundation
import XCTest
@testable import Tensor
import TestSupport

/// The performance paths against the plain ones: conv2d's sample-parallel path, sgemm's panel split,
/// attention without recording.
final class FastPathTests: XCTestCase {
    func testConvWorkSplitMatchesReferenceAndGradients() {
        var d = TestData(seed: 41)
        // (input, out channels, kernel, stride, padding, groups)
        let configs: [([Int], Int, (Int, Int), (Int, Int), (Int, Int), Int)] = [
            ([3, 8, 9, 7], 8, (3, 3), (1, 1), (1, 1), 4),     // grouped 3×3 "same" (Visformer MLP)
            ([1, 8, 9, 7], 8, (3, 3), (1, 1), (1, 1), 4),     // the same at batch 1: split over the groups
            ([1, 9, 6, 5], 6, (3, 3), (2, 1), (1, 0), 3),     // batch 1, odd group count per core
            ([4, 6, 11, 10], 12, (3, 3), (2, 2), (1, 1), 2),  // stride 2 with borders
            ([2, 4, 8, 8], 6, (1, 1), (1, 1), (0, 0), 1),     // pointwise
            ([3, 3, 16, 16], 8, (4, 4), (4, 4), (0, 0), 1),   // patch embedding
            ([2, 4, 5, 6], 4, (5, 3), (1, 2), (2, 0), 1),     // kernel wider than the row interior
        ]
        for (shape, o, k, s, p, g) in configs {
            let label = "conv \(shape) k\(k) s\(s) p\(p) g\(g)"
            let x0 = d.normal(shape), w0 = d.normal([o, shape[1] / g, k.0, k.1]), b0 = d.normal([o])
            let seed = d.normal([shape[0], o, (shape[2] + 2 * p.0 - k.0) / s.0 + 1, (shape[3] + 2 * p.1 - k.1) / s.1 + 1])
            var results: [[Tensor]] = []
            for split in [false, true] {
                Conv2dOptions.sampleSplit = split
                Conv2dOptions.batchedPlanes = false  // the per-sample paths (BatchedPlaneConvTests covers the other)
                defer { Conv2dOptions.sampleSplit = true; Conv2dOptions.batchedPlanes = true }
                withThreads(2) {
                    XCTAssertEqual(convSplitsWork(batch: shape[0], groups: g), split)
                    results.append(convWithGradients(x0, w0, b0, seed: seed, stride: s, padding: p, groups: g))
                }
            }
            let ref = naiveConv(x0, w0, b0, stride: s, padding: p, groups: g)
            XCTAssertLessThan(maxAbsDiff(results[1][0], ref), 1e-4, label)
            XCTAssertLessThan(maxAbsDiff(results[1][0], results[0][0]), 1e-5, label)
            XCTAssertLessThan(maxAbsDiff(results[1][1], results[0][1]), 1e-4, "\(label) dx")
            XCTAssertLessThan(maxAbsDiff(results[1][2], results[0][2]), 1e-3, "\(label) dw")
            XCTAssertLessThan(maxAbsDiff(results[1][3], results[0][3]), 1e-3, "\(label) db")
        }
    }

    /// The direct kernel (forward, and the input gradient at stride 1) against the im2col path (or the
    /// scalar depthwise loops) and the Double reference: register-tile remainders, rows wider than a
    /// tile, paddings from none to kernel − 1, strides (phase planes, output rows in pairs and an odd
    /// one), depthwise, batch 1 (split over
    /// the groups, or over the output channels) and 3, one and two threads.
    func testDirectConvMatchesIm2colPath() {
        var d = TestData(seed: 53)
        // (input, out channels, kernel, stride, padding, groups)
        let configs: [([Int], Int, (Int, Int), (Int, Int), (Int, Int), Int)] = [
            ([3, 16, 7, 9], 48, (3, 3), (1, 1), (1, 1), 2),   // Visformer-like: og 24, three tiles
            ([1, 6, 5, 37], 18, (3, 3), (1, 1), (1, 1), 2),   // og 9 (tile + remainder), rows wider than a tile
            ([2, 9, 6, 5], 6, (3, 3), (1, 1), (0, 0), 3),     // valid conv, og 2 < tile
            ([1, 4, 8, 6], 10, (5, 3), (1, 1), (4, 2), 2),    // padding kernel − 1 (full conv), non-square
            ([2, 8, 1, 17], 8, (1, 3), (1, 1), (0, 1), 4),    // single row
            ([2, 3, 19, 17], 16, (7, 7), (2, 2), (3, 3), 1),  // the Visformer stem
            ([1, 3, 19, 17], 10, (7, 7), (2, 2), (3, 3), 1),  // batch 1: output channels split, tile + remainder
            ([2, 3, 17, 15], 9, (7, 7), (2, 2), (3, 3), 1),   // strided rows in pairs and an odd one left, tile + 1
            ([2, 4, 9, 11], 8, (3, 3), (2, 2), (1, 1), 4),    // depthwise x2, stride 2 (PiT pooling)
            ([2, 2, 10, 9], 4, (5, 4), (3, 2), (1, 2), 1),    // unequal strides
        ]
        for (shape, o, k, st, p, g) in configs {
            for threads in [1, 2] {
                let label = "direct conv \(shape) k\(k) s\(st) p\(p) g\(g) threads \(threads)"
                let x0 = d.normal(shape), w0 = d.normal([o, shape[1] / g, k.0, k.1])
                let seed = d.normal([shape[0], o, (shape[2] + 2 * p.0 - k.0) / st.0 + 1, (shape[3] + 2 * p.1 - k.1) / st.1 + 1])
                var results: [[Tensor]] = []
                for direct in [false, true] {
                    Conv2dOptions.directKernel = direct
                    defer { Conv2dOptions.directKernel = true }
                    withThreads(threads) {
                        XCTAssertEqual(Tensor.convUsesDirectKernel(inChannels: shape[1], outChannels: o, kernel: 3, stride: 1, padding: 1,
                                                                   groups: 2), direct)
                        results.append(convWithGradients(x0, w0, nil, seed: seed, stride: st, padding: p, groups: g))
                    }
                }
                let ref = naiveConv(x0, w0, nil, stride: st, padding: p, groups: g)
                XCTAssertLessThan(maxAbsDiff(results[1][0], ref), 1e-4, label)
                XCTAssertLessThan(maxAbsDiff(results[1][0], results[0][0]), 1e-4, label)
                XCTAssertLessThan(maxAbsDiff(results[1][1], results[0][1]), 1e-4, "\(label) dx")
                XCTAssertLessThan(maxAbsDiff(results[1][2], results[0][2]), 1e-3, "\(label) dw")
            }
        }
    }

    func testSgemmPanelSplitMatchesUnsplit() {
        var d = TestData(seed: 43)
        // (m, n, k, threads): split by rows, split by columns (few rows; short and much wider than
        // tall), odd sizes, split along k (k ≥ 4·max(m, n)) with 2 and 3 threads
        for (m, n, k, threads) in [(300, 170, 90, 2), (20, 700, 160, 2), (150, 600, 40, 2), (257, 129, 65, 2), (40, 24, 2200, 2),
                                   (33, 47, 2300, 3)] {
            if k >= gemmSplitDepthRatio * max(m, n) { XCTAssertGreaterThanOrEqual(m * n * k, gemmSplitMinimum, "the depth split is exercised") }
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = d.normal(ta ? [k, m] : [m, k]), b = d.normal(tb ? [n, k] : [k, n]), c0 = d.normal([m, n])
                var outs: [Tensor] = []
                for split in [false, true] {
                    gemmSplitEnabled = split
                    defer { gemmSplitEnabled = true }
                    let c = c0.copy()
                    withThreads(threads) {
                        sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a.storage.pointer, lda: ta ? m : k,
                              b: b.storage.pointer, ldb: tb ? k : n, beta: 1, c: c.storage.pointer, ldc: n)
                    }
                    outs.append(c)
                }
                XCTAssertLessThan(maxAbsDiff(outs[0], outs[1]), 1e-4, "sgemm \(m)x\(n)x\(k) tA \(ta) tB \(tb)")
            }
        }
    }

    func testAttentionWithoutRecordingMatches() {
        var d = TestData(seed: 47)
        let q = d.normal([2, 3, 17, 8]), k = d.normal([2, 3, 23, 8]), v = d.normal([2, 3, 23, 5])
        var qg = q.copy(); qg.requiresGrad = true
        let recorded = Tensor.scaledDotProductAttention(query: qg, key: k, value: v, scale: 0.3)
        XCTAssertNotNil(recorded.node)
        let plain = withNoGrad { Tensor.scaledDotProductAttention(query: qg, key: k, value: v, scale: 0.3) }
        XCTAssertNil(plain.node)
        // without a tape the rows are normalised after the product with V (AttentionGeometry): a few ulps
        // apart from the recorded path, and the same whatever the thread count
        XCTAssertLessThan(maxAbsDiff(recorded, plain), 2e-6)
        XCTAssertGreaterThan(maxAbsDiff(recorded, plain), 0, "the no-grad path is expected to take the deferred normalisation")
        for threads in [1, 2, 4] {
            let y = withThreads(threads) { Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: 0.3) }
            XCTAssertEqual(maxAbsDiff(plain, y), 0, "threads \(threads)")
        }
    }
}
