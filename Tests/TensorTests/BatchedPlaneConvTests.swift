import Foundation
import XCTest
@testable import Tensor
import TestSupport

/// conv2d's batched-plane path (Sources/Tensor/Ops/ConvKernels/BatchedPlaneConv.swift: one GEMM per
/// group over the whole batch) against the per-sample path and the Double reference, forward and all
/// three gradients, and a finite-difference check of its backward.
final class BatchedPlaneConvTests: XCTestCase {
    // (input, out channels, kernel, stride, padding, groups)
    static let configs: [([Int], Int, (Int, Int), (Int, Int), (Int, Int), Int)] = [
        ([3, 8, 4, 4], 12, (1, 1), (1, 1), (0, 0), 1),    // Visformer's 1×1 convs at a 4×4 map
        ([2, 6, 5, 3], 4, (1, 1), (1, 1), (0, 0), 2),     // grouped pointwise, odd plane
        ([4, 8, 12, 12], 8, (5, 5), (2, 2), (2, 2), 1),   // strided and padded, too many channels for the direct kernel
        ([3, 4, 8, 8], 6, (4, 4), (4, 4), (0, 0), 1),     // a patch embedding
        ([2, 12, 7, 7], 6, (3, 3), (2, 2), (1, 1), 2),    // grouped, strided, padded (not the direct kernel)
        ([5, 4, 6, 5], 8, (2, 2), (2, 1), (0, 1), 1),     // uneven strides and paddings
    ]

    func testMatchesPerSamplePathAndReference() {
        var d = TestData(seed: 97)
        for (shape, o, k, s, p, g) in Self.configs {
            let label = "conv \(shape) k\(k) s\(s) p\(p) g\(g)"
            let x0 = d.normal(shape), w0 = d.normal([o, shape[1] / g, k.0, k.1]), b0 = d.normal([o])
            let oh = (shape[2] + 2 * p.0 - k.0) / s.0 + 1, ow = (shape[3] + 2 * p.1 - k.1) / s.1 + 1
            let seed = d.normal([shape[0], o, oh, ow])
            let geo = Conv2dGeometry(inChannels: shape[1], outChannels: o, kernelH: k.0, kernelW: k.1, strideH: s.0, strideW: s.1,
                                     padH: p.0, padW: p.1, groups: g, inH: shape[2], inW: shape[3])
            var results: [[Tensor]] = []
            for batched in [false, true] {
                Conv2dOptions.batchedPlanes = batched
                defer { Conv2dOptions.batchedPlanes = true }
                XCTAssertEqual(geo.usesBatchedPlanes(batch: shape[0]), batched, label)
                for threads in [1, 2] {
                    results.append(withThreads(threads) { convWithGradients(x0, w0, b0, seed: seed, stride: s, padding: p, groups: g) })
                }
            }
            let ref = naiveConv(x0, w0, b0, stride: s, padding: p, groups: g)
            for (i, r) in results.enumerated().dropFirst() {
                XCTAssertLessThan(maxAbsDiff(r[0], ref), 1e-4, "\(label) #\(i)")
                XCTAssertLessThan(maxAbsDiff(r[0], results[0][0]), 1e-4, "\(label) #\(i)")
                XCTAssertLessThan(maxAbsDiff(r[1], results[0][1]), 1e-4, "\(label) #\(i) dx")
                XCTAssertLessThan(maxAbsDiff(r[2], results[0][2]), 1e-3, "\(label) #\(i) dw")
                XCTAssertLessThan(maxAbsDiff(r[3], results[0][3]), 1e-3, "\(label) #\(i) db")
            }
        }
    }

    /// Batch 1, a plane over the limit and the depthwise case keep their own paths.
    func testPathSelection() {
        let small = Conv2dGeometry(inChannels: 8, outChannels: 8, kernelH: 1, kernelW: 1, strideH: 1, strideW: 1,
                                   padH: 0, padW: 0, groups: 1, inH: 16, inW: 16)
        XCTAssertTrue(small.usesBatchedPlanes(batch: 2))
        XCTAssertFalse(small.usesBatchedPlanes(batch: 1))
        var large = small; large.inH = 17
        XCTAssertFalse(large.usesBatchedPlanes(batch: 2), "17×16 = 272 outputs > 256")
        var depthwise = small; depthwise.groups = 8; depthwise.kernelH = 3; depthwise.kernelW = 3; depthwise.padH = 1; depthwise.padW = 1
        XCTAssertFalse(depthwise.usesBatchedPlanes(batch: 4))
    }

    func testGradCheck() {
        var d = TestData(seed: 5)
        let x = d.normal([3, 10, 5, 5]), w = d.normal([6, 5, 3, 3]), b = d.normal([6])
        gradCheck("batched-plane conv2d", [x, w, b]) { t in
            XCTAssertTrue(Conv2dGeometry(inChannels: 10, outChannels: 6, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2, padH: 1, padW: 1,
                                         groups: 2, inH: 5, inW: 5).usesBatchedPlanes(batch: 3))
            return Tensor.conv2d(t[0], weight: t[1], bias: t[2], stride: (2, 2), padding: (1, 1), groups: 2).squared().sum()
        }
    }
}
