// Branch-free scalar approximations written so that loops calling them vectorize (they are
// `@inlinable`, so loops in other modules inline and vectorize them too): only arithmetic,
// min/max selects and bit casts. No libm calls and no `rounded()`: on the baseline x86-64 target
// (SSE2) `roundeven` is a library call, which stops the loop vectorizer, so rounding to the nearest
// integer uses the 1.5·2²³ shifter instead.

/// e^x, relative error below 2e-7 (Cephes expf: range reduction by ln 2, degree-6 polynomial on
/// r ∈ [−ln2/2, ln2/2], 2^k assembled from exponent bits). Flushes to 0 below about −87.7 (expf goes
/// subnormal there), gives +inf from 88.38 (expf: 88.72); NaN stays NaN.
///
/// The edges cost no selects: x is clamped to [−88, 88.7228], so k = round(x·log₂e) ∈ [−127, 128],
/// and the exponent field k + 127 is 0 (the float 0) at the bottom and 255 (+inf) at the top.
/// The clamps are written `lo > x ? lo : x` so that they compile to one maxps/minps each and keep NaN.
@inlinable @inline(__always)
public func fastExp(_ x: Float) -> Float {
    let lo: Float = -88, hi: Float = 88.722_8
    let x1 = lo > x ? lo : x
    let xc = hi < x1 ? hi : x1
    // k = round(x·log2 e): adding 1.5·2²³ pushes the fraction out of the mantissa, so the low
    // mantissa bits of `shifted` hold k (two's complement around 0x4B40_0000).
    let shifted = xc * 1.442_695_04 + 12_582_912
    let k = shifted - 12_582_912
    // r = x − k·ln2, with ln2 split in two parts so that k·ln2_hi is exact
    let r = (xc - k * 0.693_359_375) + k * 2.121_944_4e-4
    var p: Float = 1.987_569_1e-4
    p = p * r + 1.398_199_9e-3
    p = p * r + 8.333_452e-3
    p = p * r + 4.166_579_6e-2
    p = p * r + 1.666_666_5e-1
    p = p * r + 5e-1
    let e = p * (r * r) + r + 1
    let bits = (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23
    return e * Float(bitPattern: bits)
}

/// tanh(x), relative error about 2e-7: the Cephes odd polynomial for |x| < 0.625 (where
/// 1 − e^{−2|x|} would cancel), 1 − 2/(e^{2|x|} + 1) above. Both branches are computed and one
/// selected, so loops stay vectorizable.
@inlinable @inline(__always)
public func fastTanh(_ x: Float) -> Float {
    let a = min(abs(x), 9)
    let e = fastExp(2 * a)
    let large = 1 - 2 / (e + 1)
    let s = a * a
    var p: Float = -5.704_988_7e-3
    p = p * s + 2.063_908_9e-2
    p = p * s - 5.373_971_6e-2
    p = p * s + 1.333_144_2e-1
    p = p * s - 3.333_328_2e-1
    let small = a + a * s * p
    let t = a < 0.625 ? small : large
    return x < 0 ? -t : t
}

@inlinable @inline(__always)
public func fastSigmoid(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }

/// erf(x) as an odd rational minimax fit x·P(x²)/Q(x²) on [−4, 4] (clamped outside, where erf is
/// ±1 in Float): no exp, one division; absolute error below 5e-7, relative below 3e-7 near 0.
/// The engine's one erf (`verf` is the same fit on 16 lanes), used by the exact-GELU kernels.
@inlinable @inline(__always)
public func fastErf(_ a: Float) -> Float {
    let x = min(max(a, -4), 4)
    let x2 = x * x
    var p: Float = -2.726_142_258_013_06e-10
    p = p * x2 + 2.770_681_424_959_02e-08
    p = p * x2 - 2.101_024_020_825_08e-06
    p = p * x2 - 5.692_506_394_623_46e-05
    p = p * x2 - 7.349_906_303_268_55e-04
    p = p * x2 - 2.954_599_808_540_25e-03
    p = p * x2 - 1.609_603_332_624_15e-02
    var q: Float = -1.456_607_184_649_96e-05
    q = q * x2 - 2.133_740_552_789_05e-04
    q = q * x2 - 1.682_826_974_382_03e-03
    q = q * x2 - 7.373_329_167_204_68e-03
    q = q * x2 - 1.426_473_905_141_89e-02
    return x * p / q
}

// MARK: - Reductions with explicit SIMD accumulators
//
// A plain `for i { s += x[i] }` does not vectorize: Swift emits strict IEEE adds, and LLVM may not
// reassociate them. These helpers keep 16 (or 32) partial sums in SIMD registers instead.

typealias Vec = SIMD16<Float>

@inline(__always) func vload(_ p: UnsafePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}
@inline(__always) func vload(_ p: UnsafeMutablePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}
@inline(__always) func vstore(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
}

/// Copies `n` floats between buffers that do not overlap, inline: rows of a few dozen floats (the
/// direct convolution's plane rows) cost a call and a size dispatch each through memmove. From 16
/// floats on, vectors, the last one ending flush with the row (it may rewrite a few floats).
@inline(__always) func copyRow(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    if n < 16 {
        for i in 0..<n { dst[i] = src[i] }
        return
    }
    var i = 0
    while i + 16 <= n { vstore(vload(src + i), dst + i); i += 16 }
    if i < n { vstore(vload(src + n - 16), dst + n - 16) }
}

/// Sets `rows` rows of `n` floats, `stride` apart, to the vector `v` (a linear layer's bias before
/// its product accumulates onto it).
@inline(__always) func fillRows(_ dst: UnsafeMutablePointer<Float>, rows: Int, stride: Int, with v: UnsafePointer<Float>, _ n: Int) {
    for r in 0..<rows { copyRow(dst + r * stride, v, n) }
}

/// acc[j] += Σ_r src[r·n + j] over `rows` contiguous rows of `n` floats (a bias gradient).
@inline(__always) func accumulateRows(_ src: UnsafePointer<Float>, rows: Int, _ n: Int, into acc: UnsafeMutablePointer<Float>) {
    for r in 0..<rows { let row = src + r * n; for j in 0..<n { acc[j] += row[j] } }
}

/// The sum of `copies` per-thread partial buffers of `count` floats, `stride` apart from `first`,
/// added in thread order (so the result does not depend on which thread finished first), as a
/// tensor of `shape`.
func sumOfPartials(_ first: UnsafePointer<Float>, copies: Int, stride: Int, count: Int, shape: [Int]) -> Tensor {
    let t = Tensor.zeros(shape), pt = t.storage.pointer
    for c in 0..<copies { let src = first + c * stride; for j in 0..<count { pt[j] += src[j] } }
    return t
}

/// Block length for the SIMD accumulators: each lane sums at most 1024/16 = 64 terms in Float
/// before the block total is added in Double, so long reductions keep ~1e-7 relative accuracy.
let reductionBlock = 1024

/// Σ p[0..<n].
@inline(__always)
func vsum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    if n <= reductionBlock { return vsumBlock(p, n) }
    var total: Double = 0
    var i = 0
    while i < n { let m = Swift.min(reductionBlock, n - i); total += Double(vsumBlock(p + i, m)); i += m }
    return Float(total)
}

@inline(__always)
func vsumBlock(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0 = Vec(), a1 = Vec()
    var i = 0
    while i + 32 <= n { a0 += vload(p + i); a1 += vload(p + i + 16); i += 32 }
    if i + 16 <= n { a0 += vload(p + i); i += 16 }
    var s = (a0 + a1).sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

@inline(__always)
func vmax(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float { vmax(UnsafePointer(p), n) }
@inline(__always)
func vsum(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Float { vsum(UnsafePointer(p), n) }

/// max p[0..<n] (−inf when n = 0; NaNs are skipped). Compare-and-replace rather than
/// `pointwiseMax`, which the compiler leaves as a slow generic call.
@inline(__always)
func vmax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var m0 = Vec(repeating: -.infinity), m1 = m0
    var i = 0
    while i + 32 <= n {
        let a = vload(p + i), b = vload(p + i + 16)
        m0.replace(with: a, where: a .> m0)
        m1.replace(with: b, where: b .> m1)
        i += 32
    }
    if i + 16 <= n { let a = vload(p + i); m0.replace(with: a, where: a .> m0); i += 16 }
    m0.replace(with: m1, where: m1 .> m0)
    var m = m0[0]
    for j in 1..<16 where m0[j] > m { m = m0[j] }
    while i < n { if p[i] > m { m = p[i] }; i += 1 }
    return m
}

/// Σ a[i]·b[i].
@inline(__always)
func vdot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    if n <= reductionBlock { return vdotBlock(a, b, n) }
    var total: Double = 0
    var i = 0
    while i < n { let m = Swift.min(reductionBlock, n - i); total += Double(vdotBlock(a + i, b + i, m)); i += m }
    return Float(total)
}

@inline(__always)
func vdotBlock(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0 = Vec(), a1 = Vec()
    var i = 0
    while i + 32 <= n {
        a0 += vload(a + i) * vload(b + i)
        a1 += vload(a + i + 16) * vload(b + i + 16)
        i += 32
    }
    if i + 16 <= n { a0 += vload(a + i) * vload(b + i); i += 16 }
    var s = (a0 + a1).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// Σ (p[i] − c)².
@inline(__always)
func vsumSquaredDeviation(_ p: UnsafePointer<Float>, _ n: Int, _ c: Float) -> Float {
    if n <= reductionBlock { return vsumSquaredDeviationBlock(p, n, c) }
    var total: Double = 0
    var i = 0
    while i < n { let m = Swift.min(reductionBlock, n - i); total += Double(vsumSquaredDeviationBlock(p + i, m, c)); i += m }
    return Float(total)
}

@inline(__always)
func vsumSquaredDeviationBlock(_ p: UnsafePointer<Float>, _ n: Int, _ c: Float) -> Float {
    let cv = Vec(repeating: c)
    var a0 = Vec(), a1 = Vec()
    var i = 0
    while i + 32 <= n {
        let d0 = vload(p + i) - cv, d1 = vload(p + i + 16) - cv
        a0 += d0 * d0; a1 += d1 * d1
        i += 32
    }
    if i + 16 <= n { let d = vload(p + i) - cv; a0 += d * d; i += 16 }
    var s = (a0 + a1).sum()
    while i < n { let d = p[i] - c; s += d * d; i += 1 }
    return s
}

/// Σ g[i]·(x[i] − c) (BatchNorm backward), blocked like `vsum`.
@inline(__always)
func vdotCentered(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int, _ c: Float) -> Float {
    let cv = Vec(repeating: c)
    var total: Double = 0
    var i = 0
    while i + 16 <= n {
        var acc = Vec()
        let end = Swift.min(n, i + reductionBlock)
        while i + 16 <= end { acc += vload(g + i) * (vload(x + i) - cv); i += 16 }
        total += Double(acc.sum())
    }
    var s: Float = 0
    while i < n { s += g[i] * (x[i] - c); i += 1 }
    return Float(total + Double(s))
}

// MARK: - 16-lane versions for the hot loops
//
// The same formulas on SIMD16<Float>. Written out, they run ~30% faster than the auto-vectorized
// scalar loops on the baseline x86-64 target (four independent SSE chains per step instead of one),
// and they let a loop fuse a reduction (softmax's Σ e^x) into the exp pass.

/// fastExp on 16 lanes (same clamps and bit assembly), its multiply-adds fused (`vfma`): one
/// rounding instead of two, so the lanes may differ from `fastExp` in the last bit.
///
/// `@_transparent` (mandatory inlining), not `@inline(__always)`: with the latter the optimizer
/// still left out-of-line calls in geluTanhBackward, the erf-GELU kernels, expShiftedSum and
/// attention, and a SIMD16 crosses a call as four xmm registers re-packed on each side.
@_transparent
func vexp(_ x: Vec) -> Vec {
    var xc = x
    let lo = Vec(repeating: -88), hi = Vec(repeating: 88.722_8)
    xc.replace(with: lo, where: lo .> xc)
    xc.replace(with: hi, where: hi .< xc)
    let shifted = vfma(xc, 1.442_695_04, 12_582_912)
    let k = shifted - 12_582_912
    let r = vfma(k, 2.121_944_4e-4, vfma(k, -0.693_359_375, xc))
    var p = vfma(r, 1.987_569_1e-4, 1.398_199_9e-3)
    p = vfma(p, r, 8.333_452e-3)
    p = vfma(p, r, 4.166_579_6e-2)
    p = vfma(p, r, 1.666_666_5e-1)
    p = vfma(p, r, 5e-1)
    let e = vfma(p, r * r, r) + 1
    let bits = (unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return e * unsafeBitCast(bits, to: Vec.self)
}

/// a·b + c with one rounding. Swift does not contract `a * b + c` into a fused multiply-add (it
/// compiles to a multiply and an add); `addingProduct` does, one instruction on AVX2 and AVX-512.
@_transparent
func vfma(_ a: Vec, _ b: Vec, _ c: Vec) -> Vec { c.addingProduct(a, b) }
@_transparent
func vfma(_ a: Vec, _ b: Float, _ c: Float) -> Vec { Vec(repeating: c).addingProduct(a, Vec(repeating: b)) }
@_transparent
func vfma(_ a: Vec, _ b: Vec, _ c: Float) -> Vec { Vec(repeating: c).addingProduct(a, b) }
@_transparent
func vfma(_ a: Vec, _ b: Float, _ c: Vec) -> Vec { c.addingProduct(a, Vec(repeating: b)) }

/// fastErf on 16 lanes (same fit and clamps, fused multiply-adds); transparent like `vexp`.
@_transparent
func verf(_ a: Vec) -> Vec {
    var x = a
    let lo = Vec(repeating: -4), hi = Vec(repeating: 4)
    x.replace(with: lo, where: lo .> x)
    x.replace(with: hi, where: hi .< x)
    let x2 = x * x
    var p = vfma(x2, -2.726_142_258_013_06e-10, 2.770_681_424_959_02e-08)
    p = vfma(p, x2, -2.101_024_020_825_08e-06)
    p = vfma(p, x2, -5.692_506_394_623_46e-05)
    p = vfma(p, x2, -7.349_906_303_268_55e-04)
    p = vfma(p, x2, -2.954_599_808_540_25e-03)
    p = vfma(p, x2, -1.609_603_332_624_15e-02)
    var q = vfma(x2, -1.456_607_184_649_96e-05, -2.133_740_552_789_05e-04)
    q = vfma(q, x2, -1.682_826_974_382_03e-03)
    q = vfma(q, x2, -7.373_329_167_204_68e-03)
    q = vfma(q, x2, -1.426_473_905_141_89e-02)
    return x * p / q
}

// GELU kernels over a range (both forms, forward and backward), vector body + scalar tail.
// tanh form: y = x·σ(2u), u = √(2/π)(x + 0.044715x³); the exponent −2u is capped at 80 so that
// e·r² stays finite (0, not inf·0) for very negative x. erf form: y = x·Φ(x), y′ = Φ(x) + x·φ(x).

@inline(__always) func geluTanhScalar(_ v: Float) -> Float {
    let a = -1.595_769_1 * (v + 0.044_715 * v * v * v)
    return v / (1 + fastExp(a > 80 ? 80 : a))
}
@inline(__always) func geluTanhGradScalar(_ v: Float, _ g: Float) -> Float {
    let a = -1.595_769_1 * (v + 0.044_715 * v * v * v)
    let e = fastExp(a > 80 ? 80 : a)
    let r = 1 / (1 + e)
    // (e·r)·r first: v·e alone overflows for very negative v
    return g * (r + (e * r) * r * (v * (1.595_769_1 * (1 + 0.134_145 * v * v))))
}
@inline(__always) func geluErfScalar(_ v: Float) -> Float { 0.5 * v * (1 + fastErf(v * 0.707_106_78)) }
@inline(__always) func geluErfGradScalar(_ v: Float, _ g: Float) -> Float {
    g * (0.5 * (1 + fastErf(v * 0.707_106_78)) + v * 0.398_942_28 * fastExp(-0.5 * v * v))
}

/// e = exp(−2u) of the tanh form, u = √(2/π)(v + 0.044715v³), the exponent capped at 80.
@_transparent
func vGeluTanhExp(_ v: Vec) -> Vec {
    var a = v * vfma(v * v, -0.071_354_815, -1.595_769_1)  // −1.5957691·(v + 0.044715v³)
    a.replace(with: Vec(repeating: 80), where: a .> 80)
    return vexp(a)
}

/// gelu′(v) of the tanh form from e = `vGeluTanhExp(v)` and r = 1 / (1 + e).
@_transparent
func vGeluTanhSlope(_ v: Vec, e: Vec, r: Vec) -> Vec {
    let du2 = vfma(v * v, 0.214_064_45, 1.595_769_1)  // 1.5957691·(1 + 0.134145v²)
    return vfma((e * r) * r, v * du2, r)
}

func geluTanhForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n {
        let v = vload(x + i)
        vstore(v / (1 + vGeluTanhExp(v)), y + i)
        i += 16
    }
    while i < n { y[i] = geluTanhScalar(x[i]); i += 1 }
}

func geluTanhBackward(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n {
        let v = vload(x + i)
        let e = vGeluTanhExp(v)
        vstore(vload(g + i) * vGeluTanhSlope(v, e: e, r: 1 / (1 + e)), dx + i)
        i += 16
    }
    while i < n { dx[i] = geluTanhGradScalar(x[i], g[i]); i += 1 }
}

func geluErfForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n {
        let v = vload(x + i)
        vstore(0.5 * v * (1 + verf(v * 0.707_106_78)), y + i)
        i += 16
    }
    while i < n { y[i] = geluErfScalar(x[i]); i += 1 }
}

/// gelu′(v) of the erf form, Φ(v) + v·φ(v), from erf(v/√2).
@_transparent
func vGeluErfSlope(_ v: Vec, erf: Vec) -> Vec {
    0.5 * (1 + erf) + v * (0.398_942_28 * vexp(-0.5 * v * v))
}

func geluErfBackward(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n {
        let v = vload(x + i)
        vstore(vload(g + i) * vGeluErfSlope(v, erf: verf(v * 0.707_106_78)), dx + i)
        i += 16
    }
    while i < n { dx[i] = geluErfGradScalar(x[i], g[i]); i += 1 }
}

/// GELU's value and its input gradient in one pass (one exp per element instead of two):
/// y = gelu(x) and dx = g·gelu′(x), bit for bit what `geluTanhForward` and `geluTanhBackward` give.
/// `dx` may be `g` (each element is read before it is written); `y` must not overlap `x`.
func geluTanhForwardBackward(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                             _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n {
        let v = vload(x + i)
        let e = vGeluTanhExp(v)
        let d = 1 + e
        vstore(v / d, y + i)
        vstore(vload(g + i) * vGeluTanhSlope(v, e: e, r: 1 / d), dx + i)
        i += 16
    }
    while i < n {
        let v = x[i]
        y[i] = geluTanhScalar(v)
        dx[i] = geluTanhGradScalar(v, g[i])
        i += 1
    }
}

/// The exact-erf counterpart of `geluTanhForwardBackward` (same aliasing rules).
func geluErfForwardBackward(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                            _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n {
        let v = vload(x + i)
        let erf = verf(v * 0.707_106_78)
        vstore(0.5 * v * (1 + erf), y + i)
        vstore(vload(g + i) * vGeluErfSlope(v, erf: erf), dx + i)
        i += 16
    }
    while i < n {
        let v = x[i]
        y[i] = geluErfScalar(v)
        dx[i] = geluErfGradScalar(v, g[i])
        i += 1
    }
}

extension GELUApproximation {
    /// y = gelu(x) over `n` floats on the calling thread (`y` may be `x`).
    @inline(__always)
    func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        switch self {
        case .tanh: geluTanhForward(x, y, n)
        case .none: geluErfForward(x, y, n)
        }
    }

    /// y = gelu(x) and dx = g·gelu′(x) in one pass (`geluTanhForwardBackward`'s aliasing rules).
    @inline(__always)
    func forwardBackward(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                         _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        switch self {
        case .tanh: geluTanhForwardBackward(x, g, y, dx, n)
        case .none: geluErfForwardBackward(x, g, y, dx, n)
        }
    }
}

/// y[i] = e^{x[i] − shift}; returns Σ y (x and y may be the same buffer). Blocked like `vsum`.
@inline(__always)
func expShiftedSum(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
    let sv = Vec(repeating: shift)
    var total: Double = 0
    var i = 0
    while i + 16 <= n {
        var acc = Vec()
        let end = Swift.min(n, i + reductionBlock)
        while i + 16 <= end {
            let e = vexp(vload(x + i) - sv)
            vstore(e, y + i)
            acc += e
            i += 16
        }
        total += Double(acc.sum())
    }
    if i < n {
        // the row's tail (< 16) as one padded vector: −inf lanes give e = 0
        let m = n - i
        var t = Vec(repeating: -.infinity)
        for j in 0..<m { t[j] = x[i + j] }
        let e = vexp(t - sv)
        for j in 0..<m { y[i + j] = e[j] }
        total += Double(e.sum())
    }
    return Float(total)
}

/// y[i] = e^{x[i]}.
func expForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n { vstore(vexp(vload(x + i)), y + i); i += 16 }
    while i < n { y[i] = fastExp(x[i]); i += 1 }
}
