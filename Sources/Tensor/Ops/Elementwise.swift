import Foundation

// Element-wise ops. Binary ops broadcast (NumPy rules); their backward returns gradients in the
// output's shape and the tape sums them down to each input's shape in one place (Autograd.swift).

enum BinaryKind { case add, sub, mul, div
    /// out = a (broadcast copy; b only supplies the output shape)
    case first
}

/// Strided walk over a broadcast: dims are coalesced, then each output row runs a tight inner loop
/// whose input strides are 0 or 1.
struct BroadcastPlan {
    var outShape: [Int]
    var aStrides: [Int]
    var bStrides: [Int]

    init(_ a: [Int], _ b: [Int], out: [Int]) {
        let n = out.count
        func padded(_ s: [Int]) -> [Int] {
            let full = [Int](repeating: 1, count: n - s.count) + s
            var st = Shape.strides(full)
            for i in 0..<n where full[i] == 1 && out[i] != 1 { st[i] = 0 }
            return st
        }
        var shp = out, sa = padded(a), sb = padded(b)
        // drop size-1 dims, then merge neighbours that are jointly contiguous
        var i = 0
        while i < shp.count {
            if shp[i] == 1 && shp.count > 1 { shp.remove(at: i); sa.remove(at: i); sb.remove(at: i) } else { i += 1 }
        }
        i = shp.count - 2
        while i >= 0 {
            if sa[i] == sa[i + 1] * shp[i + 1] && sb[i] == sb[i + 1] * shp[i + 1] {
                shp[i] *= shp[i + 1]; sa[i] = sa[i + 1]; sb[i] = sb[i + 1]
                shp.remove(at: i + 1); sa.remove(at: i + 1); sb.remove(at: i + 1)
            }
            i -= 1
        }
        if shp.isEmpty { shp = [1]; sa = [0]; sb = [0] }
        outShape = shp; aStrides = sa; bStrides = sb
    }

    var inner: Int { outShape.last! }
    var rows: Int { outShape.dropLast().reduce(1, *) }

    /// Offsets of row `r` into a and b.
    @inline(__always)
    func offsets(row r: Int) -> (Int, Int) {
        var rem = r, oa = 0, ob = 0
        var d = outShape.count - 2
        while d >= 0 {
            let idx = rem % outShape[d]
            rem /= outShape[d]
            oa += idx * aStrides[d]; ob += idx * bStrides[d]
            d -= 1
        }
        return (oa, ob)
    }
}

@inline(__always)
private func binaryLoop(_ kind: BinaryKind, _ o: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ sa: Int,
                        _ b: UnsafePointer<Float>, _ sb: Int, _ n: Int) {
    // Specialised on the stride pattern so each loop vectorizes.
    if kind == .first {
        if sa == 1 { o.update(from: a, count: n) } else { o.update(repeating: a[0], count: n) }
        return
    }
    switch (kind, sa, sb) {
    case (.add, 1, 1): for i in 0..<n { o[i] = a[i] + b[i] }
    case (.add, 1, 0): let s = b[0]; for i in 0..<n { o[i] = a[i] + s }
    case (.add, 0, 1): let s = a[0]; for i in 0..<n { o[i] = s + b[i] }
    case (.sub, 1, 1): for i in 0..<n { o[i] = a[i] - b[i] }
    case (.sub, 1, 0): let s = b[0]; for i in 0..<n { o[i] = a[i] - s }
    case (.sub, 0, 1): let s = a[0]; for i in 0..<n { o[i] = s - b[i] }
    case (.mul, 1, 1): for i in 0..<n { o[i] = a[i] * b[i] }
    case (.mul, 1, 0): let s = b[0]; for i in 0..<n { o[i] = a[i] * s }
    case (.mul, 0, 1): let s = a[0]; for i in 0..<n { o[i] = s * b[i] }
    case (.div, 1, 1): for i in 0..<n { o[i] = a[i] / b[i] }
    case (.div, 1, 0): let s = 1 / b[0]; for i in 0..<n { o[i] = a[i] * s }
    case (.div, 0, 1): let s = a[0]; for i in 0..<n { o[i] = s / b[i] }
    default:
        let x = a[0], y = b[0]
        let v: Float
        switch kind { case .add: v = x + y; case .sub: v = x - y; case .mul: v = x * y; case .div: v = x / y; case .first: v = x }
        for i in 0..<n { o[i] = v }
    }
}

func binaryKernel(_ kind: BinaryKind, _ a: Tensor, _ b: Tensor, op: String) -> Tensor {
    guard let outShape = Shape.broadcast(a.shape, b.shape) else {
        preconditionFailure("\(op): shapes \(a.shape) and \(b.shape) do not broadcast")
    }
    return binaryKernel(kind, a, bShape: b.shape, b.storage.pointer, outShape: outShape)
}

/// The kernel proper: `b` is given as a pointer to a buffer of shape `bShape` (unused for `.first`).
func binaryKernel(_ kind: BinaryKind, _ a: Tensor, bShape: [Int], _ bPointer: UnsafeMutablePointer<Float>,
                  outShape: [Int]) -> Tensor {
    let out = Tensor(uninitializedShape: outShape)
    if out.count == 0 { return out }
    let plan = BroadcastPlan(a.shape, bShape, out: outShape)
    let inner = plan.inner, rows = plan.rows
    let sa = plan.aStrides.last!, sb = plan.bStrides.last!
    let pa = a.storage.pointer.sendable, pb = bPointer.sendable, po = out.storage.pointer.sendable
    if rows == 1 {
        Parallel.forRange(inner) { r in
            binaryLoop(kind, po + r.lowerBound, UnsafePointer(pa + r.lowerBound * sa), sa,
                       UnsafePointer(pb + r.lowerBound * sb), sb, r.count)
        }
    } else {
        Parallel.forRange(rows, grain: max(1, 32_768 / inner)) { rr in
            for r in rr {
                let (oa, ob) = plan.offsets(row: r)
                binaryLoop(kind, po + r * inner, UnsafePointer(pa + oa), sa, UnsafePointer(pb + ob), sb, inner)
            }
        }
    }
    return out
}

extension Tensor {
    /// Broadcasts to `target` (NumPy rules; copies). The gradient is summed back to this shape.
    public func expanded(to target: [Int]) -> Tensor {
        if target == shape { return self }
        precondition(Shape.broadcast(shape, target) == target, "cannot expand \(shape) to \(target)")
        let out = binaryKernel(.first, self, bShape: target, storage.pointer, outShape: target)
        return Tensor.record("expand", out, inputs: [self]) { g in [g] }
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        record("add", binaryKernel(.add, a, b, op: "add"), inputs: [a, b]) { g in [g, g] }
    }
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let bd = b.node != nil
        return record("sub", binaryKernel(.sub, a, b, op: "sub"), inputs: [a, b]) { g in [g, bd ? -g : nil] }
    }
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let ad = a.node != nil, bd = b.node != nil
        return record("mul", binaryKernel(.mul, a, b, op: "mul"), inputs: [a, b]) { g in
            [ad ? g * b.detached() : nil, bd ? g * a.detached() : nil]
        }
    }
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let ad = a.node != nil, bd = b.node != nil
        let out = binaryKernel(.div, a, b, op: "div")
        return record("div", out, inputs: [a, b]) { g in
            let gb = g / b.detached()
            return [ad ? gb : nil, bd ? -(gb * out.detached()) : nil]
        }
    }
    public static prefix func - (a: Tensor) -> Tensor { a.scaled(-1) }

    public static func + (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1, shift: s) }
    public static func + (s: Float, a: Tensor) -> Tensor { a.affine(scale: 1, shift: s) }
    public static func - (a: Tensor, s: Float) -> Tensor { a.affine(scale: 1, shift: -s) }
    public static func - (s: Float, a: Tensor) -> Tensor { a.affine(scale: -1, shift: s) }
    public static func * (a: Tensor, s: Float) -> Tensor { a.scaled(s) }
    public static func * (s: Float, a: Tensor) -> Tensor { a.scaled(s) }
    public static func / (a: Tensor, s: Float) -> Tensor { a.scaled(1 / s) }
    public static func / (s: Float, a: Tensor) -> Tensor { Tensor(s) / a }

    public func scaled(_ s: Float) -> Tensor { affine(scale: s, shift: 0) }

    /// x·scale + shift.
    public func affine(scale: Float, shift: Float) -> Tensor {
        let out = unaryMap(self) { x, o, n in for i in 0..<n { o[i] = x[i] * scale + shift } }
        return Tensor.record("affine", out, inputs: [self], attributes: ["scale": .float(scale), "shift": .float(shift)]) { g in [g.scaled(scale)] }
    }
}

/// Applies a vectorizable loop `body(src, dst, n)` over chunks of `x`, in parallel when large.
@inline(__always)
func unaryMap(_ x: Tensor, _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
    let out = Tensor(uninitializedShape: x.shape)
    let px = x.storage.pointer.sendable, po = out.storage.pointer.sendable
    Parallel.forRange(x.count) { r in body(UnsafePointer(px + r.lowerBound), po + r.lowerBound, r.count) }
    return out
}

/// Applies `body(a, b, dst, n)` over two same-shaped tensors.
@inline(__always)
func zipMap(_ a: Tensor, _ b: Tensor, _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
    precondition(a.shape == b.shape, "zipMap shapes \(a.shape) vs \(b.shape)")
    let out = Tensor(uninitializedShape: a.shape)
    let pa = a.storage.pointer.sendable, pb = b.storage.pointer.sendable, po = out.storage.pointer.sendable
    Parallel.forRange(a.count) { r in
        body(UnsafePointer(pa + r.lowerBound), UnsafePointer(pb + r.lowerBound), po + r.lowerBound, r.count)
    }
    return out
}

/// Which GELU: MindCV (and the fixtures) use the tanh approximation; timm uses the exact erf form.
public enum GELUApproximation: String, Sendable, Codable {
    case tanh
    case none
}

extension Tensor {
    public func exp() -> Tensor {
        let out = unaryMap(self) { x, o, n in expForward(x, o, n) }
        return Tensor.record("exp", out, inputs: [self]) { g in [g * out.detached()] }
    }

    public func log() -> Tensor {
        let out = unaryMap(self) { x, o, n in for i in 0..<n { o[i] = Foundation.log(x[i]) } }
        let x = detached()
        return Tensor.record("log", out, inputs: [self]) { g in [g / x] }
    }

    public func sqrt() -> Tensor {
        let out = unaryMap(self) { x, o, n in for i in 0..<n { o[i] = x[i].squareRoot() } }
        return Tensor.record("sqrt", out, inputs: [self]) { g in
            [zipMap(g, out.detached()) { g, y, o, n in for i in 0..<n { o[i] = 0.5 * g[i] / y[i] } }]
        }
    }

    public func rsqrt() -> Tensor {
        let out = unaryMap(self) { x, o, n in for i in 0..<n { o[i] = 1 / x[i].squareRoot() } }
        return Tensor.record("rsqrt", out, inputs: [self]) { g in
            // d/dx x^{-1/2} = -1/2 · y³
            [zipMap(g, out.detached()) { g, y, o, n in for i in 0..<n { o[i] = -0.5 * g[i] * y[i] * y[i] * y[i] } }]
        }
    }

    public func tanh() -> Tensor {
        let out = unaryMap(self) { x, o, n in for i in 0..<n { o[i] = fastTanh(x[i]) } }
        return Tensor.record("tanh", out, inputs: [self]) { g in
            [zipMap(g, out.detached()) { g, y, o, n in for i in 0..<n { o[i] = g[i] * (1 - y[i] * y[i]) } }]
        }
    }

    public func sigmoid() -> Tensor {
        let out = unaryMap(self) { x, o, n in for i in 0..<n { o[i] = fastSigmoid(x[i]) } }
        return Tensor.record("sigmoid", out, inputs: [self]) { g in
            [zipMap(g, out.detached()) { g, y, o, n in for i in 0..<n { o[i] = g[i] * y[i] * (1 - y[i]) } }]
        }
    }

    public func relu() -> Tensor {
        let out = unaryMap(self) { x, o, n in for i in 0..<n { o[i] = Swift.max(x[i], 0) } }
        return Tensor.record("relu", out, inputs: [self]) { g in
            [zipMap(g, out.detached()) { g, y, o, n in for i in 0..<n { o[i] = y[i] > 0 ? g[i] : 0 } }]
        }
    }

    public func squared() -> Tensor { self * self }

    /// GELU, fused forward and backward. `.tanh`: 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) (MindCV);
    /// `.none`: x·Φ(x) with the exact erf (timm).
    ///
    /// The tanh form is evaluated as x·σ(2u), u = √(2/π)(x + 0.044715x³), which is the same function
    /// (½(1 + tanh u) = σ(2u)) at one exp and one division per element, and has no cancellation for
    /// negative x. Backward: σ(2u) + x·σ(2u)(1 − σ(2u))·2u′ with σ(1 − σ) = e/(1 + e)², e = e^{−2u}.
    /// The erf form uses a rational erf (absolute error < 5e-7, no exp) forward and adds the
    /// Gaussian density backward. Kernels in VectorMath.swift.
    public func gelu(approximate: GELUApproximation = .tanh) -> Tensor {
        let x = detached()
        switch approximate {
        case .tanh:
            let out = unaryMap(self) { x, o, n in geluTanhForward(x, o, n) }
            return Tensor.record("gelu_tanh", out, inputs: [self]) { g in
                [zipMap(g, x) { g, x, o, n in geluTanhBackward(x, g, o, n) }]
            }
        case .none:
            let out = unaryMap(self) { x, o, n in geluErfForward(x, o, n) }
            return Tensor.record("gelu_erf", out, inputs: [self]) { g in
                [zipMap(g, x) { g, x, o, n in geluErfBackward(x, g, o, n) }]
            }
        }
    }
}
