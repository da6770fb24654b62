import TestSupport
import XCTest
@testable import Tensor

/// Tape behaviour: accumulation, no-grad scopes, detaching, leaves, zeroing, retained graphs.
final class AutogradTests: XCTestCase {
    func leaf(_ shape: [Int], _ values: [Float]) -> Tensor {
        var t = Tensor(shape: shape, values)
        t.requiresGrad = true
        return t
    }

    func testGradientAccumulatesAcrossUses() {
        let x = leaf([2], [1, 2])
        // y = x·x + 3x + x  → dy/dx = 2x + 4
        let y = (x * x + x * 3 + x).sum()
        y.backward()
        assertClose(x.grad!, [6, 8], "accumulate over three uses")
    }

    func testGradientAccumulatesAcrossBackwardCalls() {
        let x = leaf([3], [1, 2, 3])
        (x * 2).sum().backward()
        (x * x).sum().backward()
        assertClose(x.grad!, [4, 6, 8], "2 + 2x")
        x.zeroGrad()
        XCTAssertNil(x.grad)
        (x * 5).sum().backward()
        assertClose(x.grad!, [5, 5, 5], "after zeroGrad")
    }

    func testHeldGradientIsAValue() {
        // a gradient read out before the next backward keeps its values (copy-on-write)
        let x = leaf([2], [1, 1])
        x.sum().backward()
        let first = x.grad!
        (x * 3).sum().backward()
        assertClose(first, [1, 1], "held copy unchanged")
        assertClose(x.grad!, [4, 4], "accumulated")
    }

    func testLeafGradientsDoNotShareStorage() {
        // add hands the same gradient buffer to both inputs; each leaf must own its own
        let a = leaf([2], [1, 2]), b = leaf([2], [3, 4])
        (a + b).backward(gradient: Tensor(shape: [2], [1, 1]))
        XCTAssertFalse(a.grad!.storage === b.grad!.storage)
        // and in-place writes to one (as an optimizer may do) leave the other alone
        a.grad!.assign(Tensor(shape: [2], [9, 9]))
        assertClose(b.grad!, [1, 1], "b unaffected")
        let seed = Tensor(shape: [2, 1], [5, 6])
        let c = leaf([2], [0, 0])
        c.reshaped([2, 1]).backward(gradient: seed)
        XCTAssertFalse(c.grad!.storage === seed.storage, "leaf gradient must not alias the seed")
    }

    func testNoGradRecordsNothing() {
        let x = leaf([2], [1, 2])
        let y = withNoGrad { (x * x).exp().sum() }
        XCTAssertNil(y.node)
        XCTAssertFalse(y.requiresGrad)
        XCTAssertTrue(GradMode.isEnabled)
        withNoGrad {
            XCTAssertFalse(GradMode.isEnabled)
            let z = Tensor.linear(x.reshaped([1, 2]), weight: x.reshaped([1, 2]), bias: nil)
            XCTAssertNil(z.node)
        }
        // nested scopes restore
        withNoGrad { withNoGrad {}; XCTAssertFalse(GradMode.isEnabled) }
        XCTAssertTrue(GradMode.isEnabled)
        // an op recorded outside still works
        (x * 2).sum().backward()
        assertClose(x.grad!, [2, 2], "")
    }

    func testDetachedStopsGradient() {
        let x = leaf([2], [1, 2])
        let y = (x * x.detached()).sum()  // d/dx = x (the detached factor is a constant)
        y.backward()
        assertClose(x.grad!, [1, 2], "detached factor")
        XCTAssertNil(x.detached().node)
        let z = x.detached() * 3
        XCTAssertNil(z.node, "ops on constants only are not recorded")
    }

    func testRequiresGradFlag() {
        var x = Tensor(shape: [2], [1, 2])
        XCTAssertFalse(x.requiresGrad)
        XCTAssertNil((x * 2).node)
        x.requiresGrad = true
        XCTAssertTrue(x.requiresGrad)
        let y = x * 2
        XCTAssertTrue(y.requiresGrad)
        XCTAssertNil(x.grad)
        y.sum().backward()
        assertClose(x.grad!, [2, 2], "")
        x.requiresGrad = false
        XCTAssertNil(x.grad)
        XCTAssertNil((x * 2).node)
    }

    func testOnlyInputsOnTheTapeGetGradients() {
        let w = leaf([2, 2], [1, 2, 3, 4])
        let x = Tensor(shape: [1, 2], [1, 1])  // data, not on the tape
        let y = Tensor.linear(x, weight: w, bias: nil).sum()
        y.backward()
        assertClose(w.grad!, [1, 1, 1, 1], "dW")
    }

    func testBroadcastGradientsAreSummedToInputShapes() {
        let b = leaf([3], [1, 2, 3])
        let s = leaf([], [2])
        let x = Tensor.ones([4, 3])
        ((x * b) * s).sum().backward()
        assertClose(b.grad!, [8, 8, 8], "row bias")
        XCTAssertEqual(s.grad!.shape, [])
        assertClose(s.grad!, [24], "rank-0 scale")
    }

    func testRetainGraph() {
        let x = leaf([2], [1, 2])
        let y = (x * x).sum()
        y.backward(retainGraph: true)
        y.backward()
        assertClose(x.grad!, [4, 8], "twice through a retained graph")
    }

    func testBackwardOnLeafAndDiamond() {
        let x = leaf([], [3])
        x.backward()
        XCTAssertEqual(x.grad!.item, 1)
        x.zeroGrad()
        // diamond: a = 2x, b = a·a, c = a + b → dc/dx = 2 + 2·a·2 = 2 + 8x
        let a = x * 2
        let c = a + a * a
        c.backward()
        XCTAssertEqual(x.grad!.item, 2 + 8 * 3)
    }

    func testDeepChainDoesNotOverflowTheStack() {
        let x = leaf([1], [1])
        var y = x
        for _ in 0..<20_000 { y = y * 1.0001 }
        y.sum().backward()
        XCTAssertEqual(Double(x.grad!.item), Foundation.pow(1.0001, 20_000), accuracy: 1e-2)
    }

    func testCopyOnWrite() {
        let a = Tensor(shape: [3], [1, 2, 3])
        var b = a
        b.withUnsafeMutableBuffer { $0[0] = 10 }
        assertClose(a, [1, 2, 3], "original untouched")
        assertClose(b, [10, 2, 3], "copy written")
        let r = a.reshaped([3, 1])
        XCTAssertTrue(r.storage === a.storage, "reshape shares storage")
    }

    func testBatchNormRunningStatistics() {
        // running = (1 − 0.1)·running + 0.1·stat with the unbiased variance, per channel
        var d = TestData(seed: 8)
        let x = d.normal([4, 2, 3, 3]).affine(scale: 2, shift: 1)
        let rm = Tensor(shape: [2], [0.5, -0.5]), rv = Tensor(shape: [2], [2, 3])
        let w = Tensor.ones([2]), b = Tensor.zeros([2])
        var means: [Double] = [], vars: [Double] = []
        for ch in 0..<2 {
            var vals: [Double] = []
            for n in 0..<4 { for k in 0..<9 { vals.append(Double(x.storage.pointer[(n * 2 + ch) * 9 + k])) } }
            let m = vals.reduce(0, +) / Double(vals.count)
            means.append(m)
            vars.append(vals.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(vals.count - 1))
        }
        _ = Tensor.batchNorm(x, weight: w, bias: b, runningMean: rm, runningVar: rv, training: true)
        XCTAssertEqual(Double(rm.scalars[0]), 0.9 * 0.5 + 0.1 * means[0], accuracy: 1e-6)
        XCTAssertEqual(Double(rm.scalars[1]), 0.9 * -0.5 + 0.1 * means[1], accuracy: 1e-6)
        XCTAssertEqual(Double(rv.scalars[0]), 0.9 * 2 + 0.1 * vars[0], accuracy: 1e-5)
        XCTAssertEqual(Double(rv.scalars[1]), 0.9 * 3 + 0.1 * vars[1], accuracy: 1e-5)
        // a second step applies the formula again; eval mode and no-grad eval leave them alone
        let rm1 = rm.scalars
        _ = Tensor.batchNorm(x, weight: w, bias: b, runningMean: rm, runningVar: rv, training: true, momentum: 0.5)
        XCTAssertEqual(Double(rm.scalars[0]), 0.5 * Double(rm1[0]) + 0.5 * means[0], accuracy: 1e-6)
        let frozen = rm.scalars + rv.scalars
        _ = withNoGrad { Tensor.batchNorm(x, weight: w, bias: b, runningMean: rm, runningVar: rv, training: false) }
        XCTAssertEqual(rm.scalars + rv.scalars, frozen)
        // [N, C] input
        let x2 = Tensor(shape: [3, 2], [1, 10, 2, 20, 3, 60])
        let rm2 = Tensor.zeros([2]), rv2 = Tensor.ones([2])
        _ = Tensor.batchNorm(x2, weight: w, bias: b, runningMean: rm2, runningVar: rv2, training: true)
        assertClose(rm2, [0.2, 3], tol: 1e-6, "[N,C] running mean")
        assertClose(rv2, [0.9 + 0.1 * 1, 0.9 + 0.1 * 700], tol: 1e-5, "[N,C] running var (unbiased)")
    }

    func testDropoutMasksAndModes() {
        let x = Tensor.ones([1000])
        var g1 = RandomGenerator(seed: 5), g2 = RandomGenerator(seed: 5)
        let a = x.dropout(0.25, training: true, generator: &g1), b = x.dropout(0.25, training: true, generator: &g2)
        XCTAssertEqual(a.scalars, b.scalars, "same seed, same mask")
        let kept = a.scalars.filter { $0 != 0 }
        XCTAssertTrue(kept.allSatisfy { abs($0 - 1 / 0.75) < 1e-6 })
        XCTAssertEqual(Double(kept.count) / 1000, 0.75, accuracy: 0.05)
        var g3 = RandomGenerator(seed: 5)
        XCTAssertEqual(x.dropout(0.25, training: false, generator: &g3).scalars, x.scalars)
        XCTAssertEqual(g3, RandomGenerator(seed: 5), "eval mode draws nothing")
        let y = Tensor.ones([8, 2, 3])
        var g4 = RandomGenerator(seed: 1)
        let p = y.dropPath(0.5, training: true, generator: &g4)
        for s in 0..<8 {
            let v = Array(p.scalars[(s * 6)..<(s * 6 + 6)])
            XCTAssertTrue(v.allSatisfy { $0 == v[0] } && (v[0] == 0 || v[0] == 2), "drop-path is per sample")
        }
    }
}
