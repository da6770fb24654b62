/// Resampling filters for resizes and affine warps (MindCV's `interpolation` key).
///
/// `nearest`, `bilinear` and `bicubic` follow OpenCV (what MindSpore runs): half-pixel centres,
/// replicated borders, no antialiasing, and bicubic is the a = −0.75 cubic. `area`, `pilCubic` and
/// `antialias` widen the filter when downscaling (PIL-style): a box, the a = −0.5 cubic and Lanczos-3.
public enum Interpolation: String, Sendable, CaseIterable {
    case nearest, bilinear, bicubic, area, pilCubic = "pilcubic", antialias

    /// Parses MindCV's spelling, case-insensitively: `bilinear` (alias `linear`), `nearest`, `bicubic`,
    /// `area`, `pilcubic`, `antialias`. Anything else means `bilinear`, as in MindCV.
    public init(mindcv name: String) {
        let key = name.lowercased()
        if key == "linear" { self = .bilinear; return }
        self = Interpolation(rawValue: key) ?? .bilinear
    }

    /// The 1-D kernel used by separable resizes.
    var kernel: ResampleKernel {
        switch self {
        case .nearest: return .nearest
        case .bilinear: return .triangle(antialias: false)
        case .bicubic: return .cubic(a: -0.75, antialias: false)
        case .area: return .box
        case .pilCubic: return .cubic(a: -0.5, antialias: true)
        case .antialias: return .lanczos3
        }
    }

    /// The 2-D point filter used by affine warps (which never antialias).
    var warpFilter: WarpFilter {
        switch self {
        case .nearest: return .nearest
        case .bilinear, .area, .antialias: return .bilinear
        case .bicubic: return .bicubic(a: -0.75)
        case .pilCubic: return .bicubic(a: -0.5)
        }
    }
}

enum WarpFilter {
    case nearest, bilinear, bicubic(a: Float)
}

enum ResampleKernel {
    case nearest
    case triangle(antialias: Bool)
    case cubic(a: Double, antialias: Bool)
    case box
    case lanczos3

    var support: Double {
        switch self {
        case .nearest: return 0.5
        case .triangle: return 1
        case .cubic: return 2
        case .box: return 0.5
        case .lanczos3: return 3
        }
    }

    var antialias: Bool {
        switch self {
        case .nearest: return false
        case .triangle(let aa), .cubic(_, let aa): return aa
        case .box, .lanczos3: return true
        }
    }

    func weight(_ x: Double) -> Double {
        switch self {
        case .nearest, .box:
            return (x >= -0.5 && x < 0.5) ? 1 : 0
        case .triangle:
            let t = abs(x)
            return t < 1 ? 1 - t : 0
        case .cubic(let a, _):
            return cubicWeight(x, a: a)
        case .lanczos3:
            let t = abs(x)
            if t >= 3 { return 0 }
            if t < 1e-12 { return 1 }
            let px = Double.pi * t
            return 3 * sin(px) * sin(px / 3) / (px * px)
        }
    }
}

/// Keys' cubic convolution kernel with parameter `a` (OpenCV −0.75, PIL −0.5).
@inline(__always)
func cubicWeight(_ x: Double, a: Double) -> Double {
    let t = abs(x)
    if t <= 1 { return ((a + 2) * t - (a + 3)) * t * t + 1 }
    if t < 2 { return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a }
    return 0
}

@inline(__always)
func cubicWeightF(_ x: Float, a: Float) -> Float {
    let t = abs(x)
    if t <= 1 { return ((a + 2) * t - (a + 3)) * t * t + 1 }
    if t < 2 { return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a }
    return 0
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
