import Tensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seed derivation for the data pipeline. Every random decision is drawn from a `RandomGenerator`
/// seeded by a hash of (run seed, epoch, position, stream), so results never depend on which worker
/// thread did the work or in which order.
public enum DataSeeds {
    /// Independent streams derived from the same (seed, epoch, position).
    public enum Stream: UInt64, Sendable {
        case shuffle = 1, transform = 2, replacement = 3, mixing = 4
    }

    /// splitmix64 finaliser.
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed for (seed, epoch, position) in `stream`.
    public static func seed(_ seed: UInt64, epoch: Int, position: Int, stream: Stream) -> UInt64 {
        var h = mix(seed ^ 0x5DA7_A5EE_D000_0000)
        h = mix(h ^ stream.rawValue)
        h = mix(h ^ UInt64(bitPattern: Int64(epoch)))
        h = mix(h ^ UInt64(bitPattern: Int64(position)))
        return h
    }

    /// A generator for (seed, epoch, position) in `stream`.
    public static func generator(_ seed: UInt64, epoch: Int, position: Int, stream: Stream) -> RandomGenerator {
        RandomGenerator(seed: self.seed(seed, epoch: epoch, position: position, stream: stream))
    }
}

extension RandomGenerator {
    /// Uniform in [lo, hi) (or `lo` when the range is empty).
    @inline(__always)
    mutating func uniform(_ lo: Double, _ hi: Double) -> Double {
        lo + (hi - lo) * nextDouble()
    }

    /// Uniform integer in lo...hi (inclusive).
    @inline(__always)
    mutating func integer(_ lo: Int, through hi: Int) -> Int {
        hi <= lo ? lo : lo + nextInt(below: hi - lo + 1)
    }

    /// Gamma(shape, 1) by Marsaglia–Tsang (boosted for shape < 1).
    mutating func gamma(_ shape: Double) -> Double {
        if shape <= 0 { return 0 }
        if shape < 1 {
            let u = max(nextDouble(), 1e-300)
            return gamma(shape + 1) * pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat {
                x = Double(nextNormal())
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = nextDouble()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if log(max(u, 1e-300)) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
        }
    }

    /// Beta(a, b).
    mutating func beta(_ a: Double, _ b: Double) -> Double {
        let x = gamma(a), y = gamma(b)
        return x + y > 0 ? x / (x + y) : 0.5
    }

    /// Dirichlet(alpha · 1) of dimension `count`.
    mutating func dirichlet(alpha: Double, count: Int) -> [Double] {
        let g = (0..<count).map { _ in gamma(alpha) }
        let s = g.reduce(0, +)
        return s > 0 ? g.map { $0 / s } : [Double](repeating: 1 / Double(count), count: count)
    }

    /// A uniformly random permutation of 0..<n (Fisher–Yates).
    mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                p.swapAt(i, nextInt(below: i + 1))
            }
        }
        return p
    }
}

/// A fast local xoshiro256** stream for bulk noise (random erasing), seeded from a `RandomGenerator`.
struct BulkNoise {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    init(_ rng: inout RandomGenerator) {
        s0 = rng.next(); s1 = rng.next(); s2 = rng.next(); s3 = rng.next()
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Two independent standard normals (Box–Muller).
    @inline(__always)
    mutating func normalPair() -> (Float, Float) {
        let u1 = max(Float(next() >> 40) * (1.0 / 16_777_216.0), 1e-7)
        let u2 = Float(next() >> 40) * (1.0 / 16_777_216.0)
        let r = (-2 * logf(u1)).squareRoot()
        let a = 2 * Float.pi * u2
        return (r * cosf(a), r * sinf(a))
    }
}
