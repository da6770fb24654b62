import Foundation
import XCTest
@testable import Tensor
import TestSupport

/// Forward results against values computed by hand (or by the defining formula in Double).
final class ForwardTests: XCTestCase {
    func testBinaryBroadcastValues() {
        let a = Tensor(shape: [2, 3], [1, 2, 3, 4, 5, 6])
        assertClose(a + Tensor(shape: [3], [10, 20, 30]), [11, 22, 33, 14, 25, 36], "row")
        assertClose(a - Tensor(shape: [2, 1], [1, 2]), [0, 1, 2, 2, 3, 4], "column")
        assertClose(a * Tensor(2), [2, 4, 6, 8, 10, 12], "rank-0")
        assertClose(Tensor(12) / a, [12, 6, 4, 3, 2.4, 2], "rank-0 numerator")
        assertClose(Tensor(shape: [2, 1], [1, 2]) * Tensor(shape: [1, 3], [1, 10, 100]), [1, 10, 100, 2, 20, 200], "outer")
        let s = Tensor(3) + Tensor(4)
        XCTAssertEqual(s.shape, [])
        XCTAssertEqual(s.item, 7)
        let one = Tensor(shape: [1, 1], [5]) * Tensor(shape: [1], [2])
        XCTAssertEqual(one.shape, [1, 1]); XCTAssertEqual(one.item, 10)
        // [C,1,1] against [N,C,H,W]
        let img = Tensor(shape: [1, 2, 1, 2], [1, 2, 3, 4])
        assertClose(img * Tensor(shape: [2, 1, 1], [10, 100]), [10, 20, 300, 400], "channel scale")
        // [B,1,C] against [B,N,C]
        let tok = Tensor(shape: [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8])
        assertClose(tok + Tensor(shape: [2, 1, 2], [0, 10, 100, 1000]), [1, 12, 3, 14, 105, 1006, 107, 1008], "token broadcast")
        // expanded
        let e = Tensor(shape: [2, 1], [1, 2]).expanded(to: [2, 2, 3])
        XCTAssertEqual(e.shape, [2, 2, 3])
        assertClose(e, [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2], "expanded")
        assertClose(Tensor(7).expanded(to: [3]), [7, 7, 7], "expand rank 0")
    }

    func testLargeBroadcastMatchesNaive() {
        // exercises the parallel row path and coalescing: [N,C,H,W] + [C,1,1], [B,N,C] * [B,1,C]
        var d = TestData(seed: 5)
        let x = d.normal([4, 16, 33, 31]), c = d.normal([16, 1, 1])
        let y = x + c
        let px = x.storage.pointer, pc = c.storage.pointer, py = y.storage.pointer
        var bad = 0
        for i in 0..<x.count where py[i] != px[i] + pc[(i / (33 * 31)) % 16] { bad += 1 }
        XCTAssertEqual(bad, 0)
        let t = d.normal([3, 200, 96]), r = d.normal([3, 1, 96])
        let z = t * r
        let pt = t.storage.pointer, pr = r.storage.pointer, pz = z.storage.pointer
        bad = 0
        for i in 0..<t.count where pz[i] != pt[i] * pr[(i / (200 * 96)) * 96 + i % 96] { bad += 1 }
        XCTAssertEqual(bad, 0)
    }

    func testUnaryValues() {
        let x = Tensor(shape: [4], [-2, -0.5, 0.5, 3])
        assertClose(x.relu(), [0, 0, 0.5, 3], "relu")
        assertClose(x.exp(), [Float(Foundation.exp(-2.0)), Float(Foundation.exp(-0.5)), Float(Foundation.exp(0.5)), Float(Foundation.exp(3.0))], tol: 1e-6, "exp")
        assertClose(x.tanh(), [-2, -0.5, 0.5, 3].map { Float(Foundation.tanh(Double($0))) }, tol: 1e-6, "tanh")
        assertClose(x.sigmoid(), [-2, -0.5, 0.5, 3].map { Float(1 / (1 + Foundation.exp(-Double($0)))) }, tol: 1e-6, "sigmoid")
        let p = Tensor(shape: [3], [0.25, 1, 4])
        assertClose(p.sqrt(), [0.5, 1, 2], "sqrt")
        assertClose(p.rsqrt(), [2, 1, 0.5], "rsqrt")
        assertClose(p.log(), [Float(Foundation.log(0.25)), 0, Float(Foundation.log(4.0))], "log")
    }

    func testGELUAgainstFormula() {
        let points: [Float] = [-6, -3, -1.5, -1, -0.5, -0.1, -1e-3, 0, 1e-3, 0.1, 0.5, 1, 1.5, 3, 6, 10]
        let x = Tensor(shape: [points.count], points)
        let tanhForm = x.gelu(approximate: .tanh).scalars
        let erfForm = x.gelu(approximate: .none).scalars
        for (i, v) in points.enumerated() {
            let d = Double(v)
            let refTanh = 0.5 * d * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))
            let refErf = 0.5 * d * (1 + Foundation.erf(d / 2.0.squareRoot()))
            XCTAssertEqual(Double(tanhForm[i]), refTanh, accuracy: 2e-6 * max(1, abs(refTanh)), "gelu tanh at \(v)")
            XCTAssertEqual(Double(erfForm[i]), refErf, accuracy: 2e-6 * max(1, abs(refErf)), "gelu erf at \(v)")
        }
        // hand values: GELU_tanh(1) = 0.841192, GELU_erf(1) = 0.841345
        XCTAssertEqual(Tensor(shape: [1], [1]).gelu(approximate: .tanh).item, 0.841_192, accuracy: 1e-5)
        XCTAssertEqual(Tensor(shape: [1], [1]).gelu(approximate: .none).item, 0.841_345, accuracy: 1e-5)
    }

    func testFastMathAccuracySweep() {
        // fastExp over the whole useful range against Foundation.exp (Double)
        var worstExp: Double = 0
        var v: Float = -87
        while v < 88 {
            let ref = Foundation.exp(Double(v))
            worstExp = max(worstExp, abs(Double(fastExp(v)) - ref) / ref)
            v += 0.001_37
        }
        XCTAssertLessThan(worstExp, 3e-7, "fastExp worst relative error")
        XCTAssertEqual(fastExp(0), 1)
        XCTAssertEqual(fastExp(-100), 0)
        XCTAssertEqual(fastExp(-Float.infinity), 0)
        XCTAssertEqual(fastExp(100), .infinity)
        XCTAssertTrue(fastExp(.nan).isNaN)
        var worstTanh: Double = 0, worstErf: Double = 0
        v = -10
        while v < 10 {
            let t = Foundation.tanh(Double(v))
            worstTanh = max(worstTanh, abs(Double(fastTanh(v)) - t) / max(abs(t), 1e-30))
            worstErf = max(worstErf, abs(Double(fastErf(v)) - Foundation.erf(Double(v))))
            v += 0.000_731
        }
        XCTAssertLessThan(worstTanh, 5e-7, "fastTanh worst relative error")
        XCTAssertLessThan(worstErf, 5e-7, "fastErf worst absolute error")
        for v: Float in [1e-6, 1e-3, 0.1, 0.3, 0.49] {
            XCTAssertEqual(Double(fastErf(v)), Foundation.erf(Double(v)), accuracy: 1e-6 * Foundation.erf(Double(v)), "erf relative at \(v)")
        }
        XCTAssertEqual(fastTanh(1e-20), 1e-20)
    }

    func testReductions() {
        let x = Tensor(shape: [2, 3], [1, 5, 3, -4, 2, 0])
        assertClose(x.sum(), [7], "sum")
        assertClose(x.sum(axis: 0), [-3, 7, 3], "sum axis 0")
        assertClose(x.sum(axis: 1), [9, -2], "sum axis 1")
        XCTAssertEqual(x.sum(axis: 1, keepDims: true).shape, [2, 1])
        assertClose(x.mean(axis: 1), [3, -2.0 / 3], "mean axis 1")
        assertClose(x.max(axis: 1), [5, 2], "max axis 1")
        assertClose(x.max(axis: 0), [1, 5, 3], "max axis 0")
        XCTAssertEqual(x.max().item, 5)
        XCTAssertEqual(x.max().shape, [])
        var d = TestData(seed: 3)
        let big = d.normal([3, 1000, 5])
        let s = big.sum(axes: [0, 1])
        for j in 0..<5 {
            var ref: Double = 0
            for i in 0..<3000 { ref += Double(big.storage.pointer[i * 5 + j]) }
            XCTAssertEqual(Double(s.scalars[j]), ref, accuracy: 1e-3)
        }
    }

    func testMovementValues() {
        let x = Tensor(shape: [2, 3], [1, 2, 3, 4, 5, 6])
        assertClose(x.transposed(), [1, 4, 2, 5, 3, 6], "transpose")
        let y = Tensor(shape: [2, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7])
        assertClose(y.permuted([2, 0, 1]), [0, 2, 4, 6, 1, 3, 5, 7], "permute")
        assertClose(x.slice(axis: 1, 1..<3), [2, 3, 5, 6], "slice")
        assertClose(x.select(axis: 0, index: 1), [4, 5, 6], "select")
        XCTAssertEqual(x.select(axis: 1, index: 2).shape, [2])
        assertClose(Tensor.concat([x, Tensor(shape: [2, 1], [9, 9])], axis: 1), [1, 2, 3, 9, 4, 5, 6, 9], "concat")
        assertClose(x.gather([2, 0, 2], axis: 1), [3, 1, 3, 6, 4, 6], "gather")
        XCTAssertEqual(x.reshaped([3, -1]).shape, [3, 2])
        XCTAssertEqual(y.flattened(from: 1).shape, [2, 4])
    }

    func testMatmulValues() {
        let a = Tensor(shape: [2, 3], [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [3, 2], [7, 8, 9, 10, 11, 12])
        assertClose(Tensor.matmul(a, b), [58, 64, 139, 154], "matmul")
        assertClose(Tensor.matmul(a, a, transposeB: true), [14, 32, 32, 77], "a·aᵀ")
        assertClose(Tensor.matmul(a, a, transposeA: true), [17, 22, 27, 22, 29, 36, 27, 36, 45], "aᵀ·a")
        let lin = Tensor.linear(a, weight: Tensor(shape: [1, 3], [1, 0, -1]), bias: Tensor(shape: [1], [10]))
        assertClose(lin, [8, 8], "linear")
        // batched × matrix equals per-batch products
        let ab = Tensor.concat([a.reshaped([1, 2, 3]), a.scaled(2).reshaped([1, 2, 3])], axis: 0)
        assertClose(Tensor.matmul(ab, b), [58, 64, 139, 154, 116, 128, 278, 308], "batched x matrix")
    }

    func testSoftmaxValues() {
        let x = Tensor(shape: [1, 3], [1, 2, 3])
        // e^{-2}, e^{-1}, 1 over their sum
        let e1 = Foundation.exp(-2.0), e2 = Foundation.exp(-1.0), s = e1 + e2 + 1
        assertClose(x.softmax(), [Float(e1 / s), Float(e2 / s), Float(1 / s)], tol: 1e-6, "softmax [1,2,3]")
        assertClose(x.softmax(), [0.090_030_57, 0.244_728_47, 0.665_240_96], tol: 1e-6, "softmax [1,2,3] literal")
        assertClose(x.logSoftmax(), [-2.407_605_96, -1.407_605_96, -0.407_605_96], tol: 1e-6, "logSoftmax [1,2,3]")
        // shift invariance and huge logits
        assertClose(Tensor(shape: [1, 3], [1001, 1002, 1003]).softmax(), [0.090_030_57, 0.244_728_47, 0.665_240_96], tol: 1e-6, "large logits")
        // along axis 0
        let c = Tensor(shape: [2, 2], [0, 1, 0, 3]).softmax(axis: 0)
        assertClose(c, [0.5, Float(1 / (1 + Foundation.exp(2.0))), 0.5, Float(1 / (1 + Foundation.exp(-2.0)))], tol: 1e-6, "axis 0")
    }

    func testSoftmaxLargeRows() {
        // rows longer than one SIMD block and than the parallel grain, values of both signs
        var d = TestData(seed: 11)
        for n in [1, 15, 16, 17, 33, 1000, 20_000] {
            let x = d.normal([3, n], std: 5)
            let y = x.softmax()
            let ly = x.logSoftmax()
            for r in 0..<3 {
                let row = (0..<n).map { Double(x.storage.pointer[r * n + $0]) }
                let m = row.max()!
                let s = row.reduce(0) { $0 + Foundation.exp($1 - m) }
                var worst: Double = 0, total: Double = 0
                for j in 0..<n {
                    let ref = Foundation.exp(row[j] - m) / s
                    worst = max(worst, abs(Double(y.storage.pointer[r * n + j]) - ref))
                    worst = max(worst, abs(Double(ly.storage.pointer[r * n + j]) - (row[j] - m - Foundation.log(s))) * 1e-2)
                    total += Double(y.storage.pointer[r * n + j])
                }
                XCTAssertLessThan(worst, 1e-6, "softmax row of \(n)")
                XCTAssertEqual(total, 1, accuracy: 1e-5)
            }
        }
    }

    func testCrossEntropyValues() {
        // logits [0, 0] label 0: log 2
        let l = Tensor.crossEntropy(logits: Tensor(shape: [1, 2], [0, 0]), labels: [0])
        XCTAssertEqual(l.item, Float(Foundation.log(2.0)), accuracy: 1e-6)
        // logits [1,2,3], label 2 with smoothing 0.3: target [0.1, 0.1, 0.8]
        let lsm = [-2.407_605_96, -1.407_605_96, -0.407_605_96]
        let ce = Tensor.crossEntropy(logits: Tensor(shape: [1, 3], [1, 2, 3]), labels: [2], labelSmoothing: 0.3)
        XCTAssertEqual(Double(ce.item), -(0.1 * lsm[0] + 0.1 * lsm[1] + 0.8 * lsm[2]), accuracy: 1e-6)
        let soft = Tensor.crossEntropy(logits: Tensor(shape: [1, 3], [1, 2, 3]), targets: Tensor(shape: [1, 3], [0.5, 0.5, 0]))
        XCTAssertEqual(Double(soft.item), -(0.5 * lsm[0] + 0.5 * lsm[1]), accuracy: 1e-6)
    }

    func testLayerNormValues() {
        // row [1, 2, 3, 4]: mean 2.5, biased variance 1.25
        let x = Tensor(shape: [1, 4], [1, 2, 3, 4])
        let inv = 1 / (1.25 + 1e-5).squareRoot()
        let ref = [-1.5, -0.5, 0.5, 1.5].map { Float($0 * inv) }
        assertClose(Tensor.layerNorm(x, weight: nil, bias: nil, eps: 1e-5), ref, tol: 1e-6, "plain")
        let w = Tensor(shape: [4], [1, 2, 3, 4]), b = Tensor(shape: [4], [0, 1, 0, -1])
        assertClose(Tensor.layerNorm(x, weight: w, bias: b, eps: 1e-5), (0..<4).map { ref[$0] * [1, 2, 3, 4][$0] + [0, 1, 0, -1][$0] }, tol: 1e-6, "affine")
        // a row with a large offset: the two-pass variance stays exact
        let off = Tensor(shape: [1, 4], [10001, 10002, 10003, 10004])
        assertClose(Tensor.layerNorm(off, weight: nil, bias: nil, eps: 1e-5), ref, tol: 1e-4, "offset row")
    }

    func testBatchNormValues() {
        // [N=2, C=1, 1, 2]: values 1,2,3,4: mean 2.5, biased var 1.25, unbiased 5/3
        let x = Tensor(shape: [2, 1, 1, 2], [1, 2, 3, 4])
        let rm = Tensor.zeros([1]), rv = Tensor.ones([1])
        let y = Tensor.batchNorm(x, weight: Tensor.ones([1]), bias: Tensor.zeros([1]), runningMean: rm, runningVar: rv, training: true)
        let inv = 1 / (1.25 + 1e-5).squareRoot()
        assertClose(y, [-1.5, -0.5, 0.5, 1.5].map { Float($0 * inv) }, tol: 1e-6, "train")
        XCTAssertEqual(rm.item, 0.25, accuracy: 1e-7)
        XCTAssertEqual(rv.item, 0.9 + 0.1 * 5.0 / 3.0, accuracy: 1e-6)
        let e = Tensor.batchNorm(x, weight: Tensor(shape: [1], [2]), bias: Tensor(shape: [1], [1]), runningMean: rm, runningVar: rv, training: false)
        let s = 1 / (rv.item + 1e-5).squareRoot()
        assertClose(e, [1, 2, 3, 4].map { ($0 - 0.25) * s * 2 + 1 }, tol: 1e-6, "eval")
    }

    func testConvValues() {
        // 1×1×3×3 input, 2×2 kernel of ones plus bias 1: sums of each 2×2 window + 1
        let x = Tensor(shape: [1, 1, 3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9])
        let y = Tensor.conv2d(x, weight: Tensor.ones([1, 1, 2, 2]), bias: Tensor(shape: [1], [1]))
        XCTAssertEqual(y.shape, [1, 1, 2, 2])
        assertClose(y, [13, 17, 25, 29], "2x2 ones")
        // padding 1 with a kernel that picks the centre pixel: identity
        var center = [Float](repeating: 0, count: 9); center[4] = 1
        assertClose(Tensor.conv2d(x, weight: Tensor(shape: [1, 1, 3, 3], center), bias: nil, padding: (1, 1)), x.scalars, "identity")
        // stride 2, padding 1, Laplacian-like kernel
        let k: [Float] = [0, 1, 0, 1, -4, 1, 0, 1, 0]
        let z = Tensor.conv2d(x, weight: Tensor(shape: [1, 1, 3, 3], k), bias: nil, stride: (2, 2), padding: (1, 1))
        // centres (0,0),(0,2),(2,0),(2,2): 2+4-4 = 2; 2+6-12 = -4; 4+8-28 = -16; 6+8-36 = -22
        assertClose(z, [2, -4, -16, -22], "stride 2")
        // depthwise with channel multiplier 2 against the grouped reference
        let x2 = Tensor(shape: [1, 2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8])
        let w2 = Tensor(shape: [4, 1, 1, 1], [1, -1, 2, 10])
        assertClose(Tensor.conv2d(x2, weight: w2, bias: nil, groups: 2), [1, 2, 3, 4, -1, -2, -3, -4, 10, 12, 14, 16, 50, 60, 70, 80], "depthwise x2")
    }

    func testConvMatchesDirectReference() {
        var d = TestData(seed: 17)
        let configs: [([Int], Int, (Int, Int), (Int, Int), (Int, Int), Int)] = [
            ([2, 4, 9, 8], 6, (3, 3), (2, 2), (1, 1), 2),
            ([1, 3, 16, 16], 8, (4, 4), (4, 4), (0, 0), 1),
            ([2, 6, 7, 7], 12, (3, 3), (2, 2), (1, 1), 6),
            ([1, 5, 6, 6], 5, (5, 5), (1, 1), (2, 2), 5),
        ]
        for (shape, o, k, s, p, g) in configs {
            let x = d.normal(shape), w = d.normal([o, shape[1] / g, k.0, k.1]), b = d.normal([o])
            let y = Tensor.conv2d(x, weight: w, bias: b, stride: s, padding: p, groups: g)
            let ref = naiveConv(x, w, b, stride: s, padding: p, groups: g)
            XCTAssertEqual(y.shape, ref.shape)
            XCTAssertLessThan(maxAbsDiff(y, ref), 1e-4, "conv \(shape) k\(k) s\(s) p\(p) g\(g)")
        }
    }

    func testPoolingValues() {
        let x = Tensor(shape: [1, 1, 3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9])
        assertClose(Tensor.avgPool2d(x, kernel: (2, 2), stride: (1, 1)), [3, 4, 6, 7], "avg 2x2 s1")
        // padding 1, 3×3 window at the corner: includes 5 zeros (divisor 9) or not (divisor 4)
        assertClose(Tensor.avgPool2d(x, kernel: (3, 3), stride: (2, 2), padding: (1, 1)), [12.0 / 9, 16.0 / 9, 24.0 / 9, 28.0 / 9], "count pad")
        assertClose(Tensor.avgPool2d(x, kernel: (3, 3), stride: (2, 2), padding: (1, 1), countIncludePad: false), [3, 4, 6, 7], "exclude pad")
        // adaptive 3→2: windows [0,2) and [1,3)
        assertClose(Tensor.adaptiveAvgPool2d(x, output: (2, 2)), [3, 4, 6, 7], "adaptive")
        assertClose(Tensor.adaptiveAvgPool2d(x, output: (1, 1)), [5], "global")
        // 5 → 3: [0,2) [1,4) [3,5)
        let r = Tensor(shape: [1, 1, 1, 5], [1, 2, 3, 4, 5])
        assertClose(Tensor.adaptiveAvgPool2d(r, output: (1, 3)), [1.5, 3, 4.5], "uneven")
    }

    func testAttentionKnownMatrices() {
        // q = k = I₂, v = [[1,2],[3,4]], scale 1: probs = softmax([[1,0],[0,1]]) rows
        let q = Tensor(shape: [1, 2, 2], [1, 0, 0, 1])
        let v = Tensor(shape: [1, 2, 2], [1, 2, 3, 4])
        let p = Float(Foundation.exp(1.0) / (Foundation.exp(1.0) + 1)), o = 1 - p
        let y = Tensor.scaledDotProductAttention(query: q, key: q, value: v, scale: 1)
        assertClose(y, [p * 1 + o * 3, p * 2 + o * 4, o * 1 + p * 3, o * 2 + p * 4], tol: 1e-6, "identity q/k")
        // zero scale: uniform attention = mean of values
        let y0 = Tensor.scaledDotProductAttention(query: q, key: q, value: v, scale: 0)
        assertClose(y0, [2, 3, 2, 3], "uniform")
    }

    func testAttentionMatchesComposition() {
        // many heads (parallel, single-threaded BLAS per thread), Nq ≠ Nk, dv ≠ d, against
        // matmul → softmax → matmul on the tape; forward and all three gradients
        var d = TestData(seed: 23)
        let q = d.normal([3, 4, 17, 8]), k = d.normal([3, 4, 29, 8]), v = d.normal([3, 4, 29, 5])
        let seed = d.normal([3, 4, 17, 5])
        func run(_ fused: Bool) -> [Tensor] {
            var qq = q.copy(), kk = k.copy(), vv = v.copy()
            qq.requiresGrad = true; kk.requiresGrad = true; vv.requiresGrad = true
            let y = fused ? Tensor.scaledDotProductAttention(query: qq, key: kk, value: vv, scale: 0.35)
                : Tensor.matmul((Tensor.matmul(qq, kk, transposeB: true) * 0.35).softmax(), vv)
            y.backward(gradient: seed)
            return [y, qq.grad!, kk.grad!, vv.grad!]
        }
        let a = run(true), b = run(false)
        for (i, name) in ["out", "dq", "dk", "dv"].enumerated() {
            XCTAssertLessThan(maxAbsDiff(a[i], b[i]), 2e-5, "attention \(name)")
        }
    }

    func testChannelMajorAttentionEqualsTokenMajorOnTransposes() {
        // Channel-major operands are the token-major ones with the last two axes swapped; output and
        // gradients must be those of the token-major call, transposed (Nq ≠ Nk, dv ≠ d, many heads).
        var d = TestData(seed: 31)
        let q = d.normal([2, 3, 13, 8]), k = d.normal([2, 3, 21, 8]), v = d.normal([2, 3, 21, 6])
        let seed = d.normal([2, 3, 13, 6])
        func run(_ layout: AttentionLayout) -> [Tensor] {
            let flip: (Tensor) -> Tensor = { layout == .tokenMajor ? $0.copy() : $0.transposed().copy() }
            var qq = flip(q), kk = flip(k), vv = flip(v)
            qq.requiresGrad = true; kk.requiresGrad = true; vv.requiresGrad = true
            let y = Tensor.scaledDotProductAttention(query: qq, key: kk, value: vv, scale: 0.4, layout: layout)
            y.backward(gradient: flip(seed))
            return [y, qq.grad!, kk.grad!, vv.grad!].map { layout == .tokenMajor ? $0 : $0.transposed().copy() }
        }
        let a = run(.tokenMajor), b = run(.channelMajor)
        for (i, name) in ["out", "dq", "dk", "dv"].enumerated() {
            XCTAssertEqual(a[i].shape, b[i].shape, name)
            XCTAssertLessThan(maxAbsDiff(a[i], b[i]), 1e-5, "channel-major attention \(name)")
        }
        // no-grad path (per-worker scratch) gives the same output
        let plain = withNoGrad {
            Tensor.scaledDotProductAttention(query: q.transposed().copy(), key: k.transposed().copy(),
                                             value: v.transposed().copy(), scale: 0.4, layout: .channelMajor)
        }
        XCTAssertLessThan(maxAbsDiff(plain.transposed().copy(), a[0]), 1e-5, "channel-major attention without grad")
    }
}

/// Direct convolution in Double (reference).
/// conv2d's output, then the gradients of x, the weight and the bias (when given) for the loss
/// Σ y ⊙ seed: what the conv path-parity tests compare between paths.
func convWithGradients(_ x0: Tensor, _ w0: Tensor, _ b0: Tensor?, seed: Tensor, stride: (Int, Int), padding: (Int, Int),
                       groups: Int) -> [Tensor] {
    var x = x0.copy(), w = w0.copy(), b = b0?.copy()
    x.requiresGrad = true; w.requiresGrad = true; b?.requiresGrad = true
    let y = Tensor.conv2d(x, weight: w, bias: b, stride: stride, padding: padding, groups: groups)
    (y * seed).sum().backward()
    return [y, x.grad!, w.grad!] + (b.map { [$0.grad!] } ?? [])
}

func naiveConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride: (Int, Int), padding: (Int, Int), groups: Int) -> Tensor {
    let n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3]
    let o = w.shape[0], kh = w.shape[2], kw = w.shape[3]
    let oh = (h + 2 * padding.0 - kh) / stride.0 + 1, ow = (wd + 2 * padding.1 - kw) / stride.1 + 1
    let cg = c / groups, og = o / groups
    var out = [Float](repeating: 0, count: n * o * oh * ow)
    let px = x.storage.pointer, pw = w.storage.pointer
    for bi in 0..<n {
        for oc in 0..<o {
            let g = oc / og
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var s: Double = b.map { Double($0.storage.pointer[oc]) } ?? 0
                    for ci in 0..<cg {
                        for i in 0..<kh {
                            for j in 0..<kw {
                                let y = oy * stride.0 - padding.0 + i, xx = ox * stride.1 - padding.1 + j
                                if y < 0 || y >= h || xx < 0 || xx >= wd { continue }
                                s += Double(px[((bi * c + g * cg + ci) * h + y) * wd + xx]) * Double(pw[((oc * cg + ci) * kh + i) * kw + j])
                            }
                        }
                    }
                    out[((bi * o + oc) * oh + oy) * ow + ox] = Float(s)
                }
            }
        }
    }
    return Tensor(shape: [n, o, oh, ow], out)
}
