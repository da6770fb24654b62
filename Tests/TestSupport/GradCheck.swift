import XCTest
import Tensor

/// The generic finite-difference gradient check used for every differentiable op.
///
/// Method. The op's output y = f(x₁, …, xₙ) is projected on a fixed random vector r, L = Σ rᵢ·yᵢ
/// (accumulated in Double), so one backward pass seeded with r gives ∂L/∂x for every input, and
/// each input element needs two forward evaluations: ∂L/∂xⱼ ≈ (L(x + h·eⱼ) − L(x − h·eⱼ)) / 2h,
/// where the divisor uses the perturbations actually representable in Float.
///
/// Why Float32 with h = 1e-2 and a tolerance of 1e-2 relative to the largest gradient:
/// - truncation error of the central difference is h²/6·|L'''| ≈ 2e-5 for the O(1)-scaled smooth
///   functions tested here;
/// - rounding: each yᵢ carries a relative error of a few ulp (~1e-6 after several fused steps),
///   so L is known to about 1e-6·Σ|rᵢyᵢ| ≲ 1e-4 for the sizes used, which divided by 2h = 0.02
///   gives ~5e-3 absolute at worst and ~1e-4 typically, against gradients of order 0.1–10;
/// - a wrong formula (a missing term, a transposed index, a wrong broadcast reduction) gives an
///   error of the order of the gradient itself, 100× the tolerance.
/// Kinks (relu, max) are kept farther than h from the inputs. A Double path would allow a tighter
/// tolerance but would need a second copy of every kernel; the error budget above is ample.
public struct GradCheckResult {
    public var maxError: Double
    public var maxGradient: Double
}

@discardableResult
public func gradCheck(_ name: String, _ inputs: [Tensor], wrt: [Int]? = nil, h: Float = 1e-2, tolerance: Double = 1e-2,
               file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor) -> [GradCheckResult] {
    let (results, failures) = gradientErrors(name, inputs, wrt: wrt, h: h, tolerance: tolerance, f)
    for message in failures { XCTFail(message, file: file, line: line) }
    if ProcessInfo.processInfo.environment["VITZOO_GRADCHECK_VERBOSE"] != nil {
        let worst = results.map { $0.maxError / max($0.maxGradient, 1e-3) }.max() ?? 0
        print(String(format: "gradcheck %-50@ worst error / max|grad| = %.2e", name as NSString, worst))
    }
    return results
}

/// The check itself, without assertions: per checked input the largest error and gradient, and
/// the failure messages.
public func gradientErrors(_ name: String, _ inputs: [Tensor], wrt: [Int]? = nil, h: Float = 1e-2, tolerance: Double = 1e-2,
                    _ f: ([Tensor]) -> Tensor) -> ([GradCheckResult], [String]) {
    var failures: [String] = []
    let checked = wrt ?? Array(inputs.indices)
    // analytic gradients
    var leaves = inputs.map { $0.copy() }
    for i in checked { leaves[i].requiresGrad = true }
    let y = f(leaves)
    var rng = RandomGenerator(seed: 0xC0FFEE)
    let r = Tensor.uniform(y.shape, low: -1, high: 1, generator: &rng)
    if y.node == nil { failures.append("\(name): output is not on the tape") }
    y.backward(gradient: r)

    func projected(_ xs: [Tensor]) -> Double {
        let out = withNoGrad { f(xs) }
        precondition(out.shape == y.shape, "\(name): output shape changed between evaluations")
        var s: Double = 0
        let po = out.storage.pointer, pr = r.storage.pointer
        for i in 0..<out.count { s += Double(po[i]) * Double(pr[i]) }
        return s
    }

    var results: [GradCheckResult] = []
    for i in checked {
        guard let analytic = leaves[i].grad else {
            failures.append("\(name): input \(i) got no gradient")
            continue
        }
        if analytic.shape != inputs[i].shape {
            failures.append("\(name): gradient shape \(analytic.shape) of input \(i) \(inputs[i].shape)")
            continue
        }
        let work = inputs.map { $0.copy() }
        let p = work[i].storage.pointer
        var maxErr: Double = 0, maxGrad: Double = 0, worst = 0
        var numeric = [Double](repeating: 0, count: inputs[i].count)
        for j in 0..<inputs[i].count {
            let orig = p[j]
            let up = orig + h, down = orig - h
            p[j] = up
            let lp = projected(work)
            p[j] = down
            let lm = projected(work)
            p[j] = orig
            numeric[j] = (lp - lm) / (Double(up) - Double(down))
        }
        let pa = analytic.storage.pointer
        for j in 0..<inputs[i].count {
            let a = Double(pa[j])
            maxGrad = max(maxGrad, abs(a), abs(numeric[j]))
            let e = abs(a - numeric[j])
            if e > maxErr { maxErr = e; worst = j }
        }
        let scale = max(maxGrad, 1e-3)
        if !(maxErr <= tolerance * scale) {
            failures.append("\(name): input \(i) \(inputs[i].shape): analytic \(pa[worst]) vs numeric \(numeric[worst]) at \(worst) (max |grad| \(maxGrad))")
        }
        if !(maxGrad > 0) { failures.append("\(name): input \(i) has an all-zero gradient") }
        results.append(GradCheckResult(maxError: maxErr, maxGradient: maxGrad))
    }
    return (results, failures)
}

/// Deterministic test tensors.
public struct TestData {
    public var rng: RandomGenerator
    public init(seed: UInt64 = 42) { rng = RandomGenerator(seed: seed) }

    public mutating func normal(_ shape: [Int], std: Float = 1) -> Tensor { Tensor.randn(shape, std: std, generator: &rng) }
    public mutating func uniform(_ shape: [Int], _ low: Float, _ high: Float) -> Tensor {
        Tensor.uniform(shape, low: low, high: high, generator: &rng)
    }
    /// Values with |x| in [0.1, 1.5] and random sign: at least 10h away from 0 (for relu's kink).
    public mutating func awayFromZero(_ shape: [Int]) -> Tensor {
        let t = uniform(shape, 0.1, 1.5)
        let p = t.storage.pointer
        for i in 0..<t.count where rng.nextFloat() < 0.5 { p[i] = -p[i] }
        return t
    }
    /// A random permutation of evenly spaced values (spacing 0.1 ≫ 2h): distinct, so max is smooth.
    public mutating func distinct(_ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        var v = (0..<n).map { Float($0) * 0.1 - Float(n) * 0.05 }
        for i in stride(from: n - 1, to: 0, by: -1) { v.swapAt(i, rng.nextInt(below: i + 1)) }
        return Tensor(shape: shape, v)
    }
}

public func assertClose(_ t: Tensor, _ expected: [Float], tol: Float = 1e-5, _ msg: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(t.count, expected.count, "\(msg): count", file: file, line: line)
    let v = t.scalars
    for i in 0..<min(v.count, expected.count) {
        let scale = max(1, abs(expected[i]))
        if !(abs(v[i] - expected[i]) <= tol * scale) {
            XCTFail("\(msg): element \(i): got \(v[i]), expected \(expected[i])", file: file, line: line)
            return
        }
    }
}

public func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.count == b.count)
    var m: Float = 0
    for i in 0..<a.count { m = max(m, abs(a.storage.pointer[i] - b.storage.pointer[i])) }
    return m
}

/// Runs `body` with `Parallel.threads` set to `n` (the split paths need more than one thread).
public func withThreads<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
    let saved = Parallel.threads
    Parallel.threads = n
    defer { Parallel.threads = saved }
    return try body()
}
