import CBLAS
import Foundation
import XCTest
@testable import Tensor
import TestSupport

/// Kernel-level checks: broadcast plans, parallel paths at sizes above the grain, BLAS threading.
final class KernelTests: XCTestCase {
    func testBroadcastPlanCoalescing() {
        // [N,C,H,W] with [C,1,1]: H and W merge; N and C cannot (b is broadcast along N only)
        let p = BroadcastPlan([2, 3, 4, 5], [3, 1, 1], out: [2, 3, 4, 5])
        XCTAssertEqual(p.outShape, [2, 3, 20])
        XCTAssertEqual(p.aStrides, [60, 20, 1])
        XCTAssertEqual(p.bStrides, [0, 1, 0])
        XCTAssertEqual(p.rows, 6)
        XCTAssertEqual(p.offsets(row: 4).1, 1, "row 4 is n=1, c=1")
        // same shapes collapse to one run
        let q = BroadcastPlan([2, 3, 4], [2, 3, 4], out: [2, 3, 4])
        XCTAssertEqual(q.outShape, [24])
        // size-1 dims everywhere and rank 0
        let r = BroadcastPlan([1, 1], [], out: [1, 1])
        XCTAssertEqual(r.outShape, [1])
        let s = BroadcastPlan([], [], out: [])
        XCTAssertEqual(s.outShape, [1])
        XCTAssertEqual(s.rows, 1)
        let t = BroadcastPlan([1, 3, 1], [2, 1, 4], out: [2, 3, 4])
        XCTAssertEqual(t.outShape, [2, 3, 4])
        XCTAssertEqual(t.aStrides, [0, 1, 0])
        XCTAssertEqual(t.bStrides, [4, 0, 1])
    }

    func testEmptyTensors() {
        let e = Tensor.zeros([0, 3])
        XCTAssertEqual((e + Tensor.ones([3])).shape, [0, 3])
        XCTAssertEqual(e.expanded(to: [2, 0, 3]).count, 0)
    }

    func testLargeElementwiseMatchesScalarFormulas() {
        // above the parallel grain (two chunks), odd length (vector tails)
        var d = TestData(seed: 9)
        let n = 200_003
        let x = d.normal([n], std: 3)
        let ys: [(String, Tensor, (Double) -> Double, Double)] = [
            ("exp", x.exp(), { Foundation.exp($0) }, 1e-6),
            ("tanh", x.tanh(), { Foundation.tanh($0) }, 1e-6),
            ("sigmoid", x.sigmoid(), { 1 / (1 + Foundation.exp(-$0)) }, 1e-6),
            ("gelu", x.gelu(), { 0.5 * $0 * (1 + Foundation.tanh(0.7978845608028654 * ($0 + 0.044715 * $0 * $0 * $0))) }, 2e-6),
            ("gelu erf", x.gelu(approximate: .none), { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }, 2e-6),
            ("relu", x.relu(), { max($0, 0) }, 0),
            ("affine", x.affine(scale: 2, shift: -1), { 2 * $0 - 1 }, 1e-6),
        ]
        for (name, y, f, tol) in ys {
            var worst: Double = 0
            for i in 0..<n {
                let ref = f(Double(x.storage.pointer[i]))
                worst = max(worst, abs(Double(y.storage.pointer[i]) - ref) / max(1, abs(ref)))
            }
            XCTAssertLessThanOrEqual(worst, tol, name)
        }
    }

    func testGELUExtremesStayFinite() {
        // far tails: no inf·0 = NaN in the backward, exact limits forward
        for form in [GELUApproximation.tanh, .none] {
            var x = Tensor(shape: [8], [-1e4, -100, -30, -10, 10, 30, 100, 1e4])
            x.requiresGrad = true
            let y = x.gelu(approximate: form)
            y.sum().backward()
            let ys = y.scalars, gs = x.grad!.scalars
            XCTAssertTrue(ys.allSatisfy { $0.isFinite } && gs.allSatisfy { $0.isFinite }, "\(form): \(ys) \(gs)")
            for i in 0..<4 { XCTAssertEqual(ys[i], 0, accuracy: 1e-6); XCTAssertEqual(gs[i], 0, accuracy: 1e-6) }
            for i in 4..<8 { XCTAssertEqual(ys[i], x.scalars[i], accuracy: 1e-3); XCTAssertEqual(gs[i], 1, accuracy: 1e-5) }
        }
    }

    func testLongReductionsAreAccurate() {
        // 3·10⁶ terms: blocked SIMD accumulation (Double between blocks), split across threads
        let n = 3_000_000
        XCTAssertEqual(Tensor.ones([n]).sum().item, Float(n))
        XCTAssertEqual(Tensor.full([n], 0.1).mean().item, 0.1, accuracy: 3e-7)
        var d = TestData(seed: 77)
        let x = d.normal([n])
        var ref: Double = 0
        for i in 0..<n { ref += Double(x.storage.pointer[i]) }
        XCTAssertEqual(Double(x.sum().item), ref, accuracy: 1e-2)
        // a softmax row of 10⁵ near-equal logits sums to 1
        let row = Tensor.full([1, 100_000], 3).softmax()
        XCTAssertEqual(Double(row.sum().item), 1, accuracy: 1e-5)
        XCTAssertEqual(row.scalars[123], 1e-5, accuracy: 1e-10)
    }

    func testLayerNormLargeMatchesReference() {
        // many rows (parallel forward, chunked backward partial sums) against a Double reference
        var d = TestData(seed: 4)
        let rows = 3000, c = 77
        var x = d.normal([rows, c]).affine(scale: 3, shift: 2)
        var w = d.normal([c]), b = d.normal([c])
        x.requiresGrad = true; w.requiresGrad = true; b.requiresGrad = true
        let y = Tensor.layerNorm(x, weight: w, bias: b, eps: 1e-6)
        let g = d.normal([rows, c])
        y.backward(gradient: g)
        var dwRef = [Double](repeating: 0, count: c), dbRef = [Double](repeating: 0, count: c)
        var worstY: Double = 0, worstDx: Double = 0
        let px = x.storage.pointer, pg = g.storage.pointer, pw = w.storage.pointer
        for r in 0..<rows {
            let row = (0..<c).map { Double(px[r * c + $0]) }
            let m = row.reduce(0, +) / Double(c)
            let v = row.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(c)
            let rs = 1 / (v + 1e-6).squareRoot()
            var sg: Double = 0, sgx: Double = 0
            for k in 0..<c {
                let xh = (row[k] - m) * rs
                let yr = xh * Double(pw[k]) + Double(b.storage.pointer[k])
                worstY = max(worstY, abs(Double(y.storage.pointer[r * c + k]) - yr))
                let gk = Double(pg[r * c + k])
                dwRef[k] += gk * xh; dbRef[k] += gk
                sg += gk * Double(pw[k]); sgx += gk * Double(pw[k]) * xh
            }
            for k in 0..<c {
                let xh = (row[k] - m) * rs
                let dx = rs * (Double(pg[r * c + k]) * Double(pw[k]) - sg / Double(c) - xh * sgx / Double(c))
                worstDx = max(worstDx, abs(Double(x.grad!.storage.pointer[r * c + k]) - dx))
            }
        }
        XCTAssertLessThan(worstY, 2e-5)
        XCTAssertLessThan(worstDx, 2e-5)
        for k in 0..<c {
            XCTAssertEqual(Double(w.grad!.scalars[k]), dwRef[k], accuracy: 2e-3)
            XCTAssertEqual(Double(b.grad!.scalars[k]), dbRef[k], accuracy: 2e-3)
        }
    }

    func testLargeTransposeAndSum() {
        var d = TestData(seed: 12)
        let x = d.normal([3, 70, 50])
        let t = x.permuted([2, 0, 1])
        for (i, j, k) in [(0, 0, 0), (2, 69, 49), (1, 33, 7)] {
            XCTAssertEqual(t.storage.pointer[(k * 3 + i) * 70 + j], x.storage.pointer[(i * 70 + j) * 50 + k])
        }
        let s = x.sum(axes: [0, 2])
        var ref: Double = 0
        for i in 0..<3 { for k in 0..<50 { ref += Double(x.storage.pointer[(i * 70 + 5) * 50 + k]) } }
        XCTAssertEqual(Double(s.scalars[5]), ref, accuracy: 1e-4)
    }

    func testConcurrentSingleThreadedGEMMsMatchSequential() {
        // Attention runs one OpenBLAS-single-threaded sgemm per (batch, head) on each worker
        // thread. Many small heads, repeated: results must equal the sequential composition.
        var d = TestData(seed: 31)
        let q = d.normal([8, 4, 50, 32]), k = d.normal([8, 4, 50, 32]), v = d.normal([8, 4, 50, 32])
        let reference = withNoGrad { Tensor.matmul((Tensor.matmul(q, k, transposeB: true) * 0.2).softmax(), v) }
        for _ in 0..<5 {
            let y = Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: 0.2)
            XCTAssertLessThan(maxAbsDiff(y, reference), 1e-5)
        }
        XCTAssertEqual(BLASRuntime.threads, Int(openblas_get_num_threads()), "thread count restored")
    }

    func testMatmulLargeAgainstNaive() {
        // shapes above OpenBLAS's threading threshold, batched × matrix folding, transposes
        var d = TestData(seed: 2)
        let a = d.normal([2, 70, 90]), b = d.normal([90, 60])
        let y = Tensor.matmul(a, b)
        var worst: Float = 0
        for bi in 0..<2 {
            for i in stride(from: 0, to: 70, by: 7) {
                for j in stride(from: 0, to: 60, by: 11) {
                    var s: Double = 0
                    for k in 0..<90 { s += Double(a.storage.pointer[(bi * 70 + i) * 90 + k]) * Double(b.storage.pointer[k * 60 + j]) }
                    worst = max(worst, abs(y.storage.pointer[(bi * 70 + i) * 60 + j] - Float(s)))
                }
            }
        }
        XCTAssertLessThan(worst, 1e-3)
        let yt = Tensor.matmul(a, b.transposed(), transposeB: true)
        XCTAssertEqual(maxAbsDiff(y, yt), 0, accuracy: 1e-4)
    }

    func testBufferPoolReuse() {
        let n = 100_000
        var p1: UnsafeMutablePointer<Float>?
        do {
            let a = Storage(count: n)
            p1 = a.pointer
        }
        let b = Storage(count: n)
        XCTAssertEqual(b.pointer, p1, "a released large buffer is reused for the same size")
        XCTAssertEqual(Int(bitPattern: b.pointer) % 64, 0, "64-byte aligned")
    }

    func testBufferPoolBestFitWithBoundedWaste() {
        let pool = BufferPool()
        let (big, bigCap) = pool.acquire(100_000)
        let (small, smallCap) = pool.acquire(30_000)
        pool.release(big, capacity: bigCap)
        pool.release(small, capacity: smallCap)
        XCTAssertEqual(pool.current, BufferPool.Statistics(liveBytes: 0, cachedBytes: (bigCap + smallCap) * 4))
        // 60,000 floats fit the cached 100,000-float buffer (less than twice the request): reused.
        let (a, aCap) = pool.acquire(60_000)
        XCTAssertEqual(a, big)
        XCTAssertEqual(aCap, bigCap)
        // 20,000 floats take the smallest buffer that holds them (the 30,000 one), not a larger one.
        let (b, _) = pool.acquire(20_000)
        XCTAssertEqual(b, small)
        // 40,000 floats: nothing cached; a fresh buffer.
        pool.release(a, capacity: aCap)
        let (c, cCap) = pool.acquire(40_000)
        XCTAssertNotEqual(c, big, "a buffer more than twice the request is not used")
        XCTAssertEqual(pool.peakStatistics.footprintBytes, (bigCap + smallCap + cCap) * 4)
        XCTAssertEqual(pool.highestLiveBytes, (bigCap + smallCap) * 4)
        pool.drain()
        XCTAssertEqual(pool.current.cachedBytes, 0)
    }

    func testRandomGeneratorIsDeterministic() {
        var a = RandomGenerator(seed: 3), b = RandomGenerator(seed: 3)
        for _ in 0..<10 { XCTAssertEqual(a.next(), b.next()) }
        var c = RandomGenerator(seed: 4)
        XCTAssertNotEqual(a.next(), c.next())
        let encoded = try! JSONEncoder().encode(a)
        var restored = try! JSONDecoder().decode(RandomGenerator.self, from: encoded)
        XCTAssertEqual(restored.next(), a.next())
        var n = RandomGenerator(seed: 10)
        var s: Double = 0, s2: Double = 0
        for _ in 0..<20_000 { let v = Double(n.nextNormal()); s += v; s2 += v * v }
        XCTAssertEqual(s / 20_000, 0, accuracy: 0.03)
        XCTAssertEqual(s2 / 20_000, 1, accuracy: 0.05)
    }
}
