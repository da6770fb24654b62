// Branch-free scalar approximations written so that loops calling them vectorize (no libm calls,
// only arithmetic, min/max selects, roundeven and bit casts).

/// e^x, relative error below 2e-7 over the float range (Cephes expf: range reduction by ln 2,
/// degree-6 polynomial, exponent assembled from bits). Saturates instead of producing inf below/above
/// the float range, except that inputs above 88.7 give inf as expf does.
@inline(__always)
public func fastExp(_ x: Float) -> Float {
    let xc = min(max(x, -87.33654), 88.72283)
    let k = (xc * 1.442_695_04).rounded(.toNearestOrEven)
    // x - k·ln2 in two parts for accuracy
    let r = (xc - k * 0.693_359_375) + k * 2.121_944_4e-4
    var p: Float = 1.987_569_1e-4
    p = p * r + 1.398_199_9e-3
    p = p * r + 8.333_452e-3
    p = p * r + 4.166_579_6e-2
    p = p * r + 1.666_666_5e-1
    p = p * r + 5e-1
    let e = p * (r * r) + r + 1
    let bits = UInt32(bitPattern: Int32(k) &+ 127) << 23
    let out = e * Float(bitPattern: bits)
    return x > 88.72283 ? Float.infinity : out
}

/// tanh(x) through e^{-2|x|}, absolute error about 1e-7.
@inline(__always)
public func fastTanh(_ x: Float) -> Float {
    let a = min(abs(x), 9)
    let e = fastExp(-2 * a)
    let t = (1 - e) / (1 + e)
    return x < 0 ? -t : t
}

/// erf(x) (Abramowitz–Stegun 7.1.26 refined: |error| < 1.5e-7).
@inline(__always)
public func fastErf(_ x: Float) -> Float {
    let a = abs(x)
    let t = 1 / (1 + 0.327_591_1 * a)
    var y: Float = 1.061_405_429
    y = y * t - 1.453_152_027
    y = y * t + 1.421_413_741
    y = y * t - 0.284_496_736
    y = y * t + 0.254_829_592
    let r = 1 - y * t * fastExp(-a * a)
    return x < 0 ? -r : r
}

@inline(__always)
public func fastSigmoid(_ x: Float) -> Float { 1 / (1 + fastExp(-x)) }
