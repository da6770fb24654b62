import Tensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Random crop of random area and aspect ratio, resized to `size x size` (MindSpore/torchvision
/// `RandomResizedCrop`, docs/training.md §6.4).
///
/// Up to 10 attempts: area fraction s ~ U(scale), r = exp(U(log ratio)), w = round(√(H·W·s·r)),
/// h = round(w / r), accepted when 1 ≤ w ≤ W and 1 ≤ h ≤ H, at a uniformly random position. Otherwise the
/// whole image, narrowed to the violated aspect bound, centred.
public struct RandomResizedCrop: Sendable, Equatable {
    /// Output side length (`image_resize`).
    public let size: Int
    /// Area-fraction range (`scale`).
    public let scale: ClosedRange<Double>
    /// Aspect-ratio (w/h) range (`ratio`).
    public let ratio: ClosedRange<Double>
    public let interpolation: Interpolation
    /// Tries before the centred fallback.
    public let attempts: Int

    public init(size: Int, scale: ClosedRange<Double> = 0.08...1.0, ratio: ClosedRange<Double> = 0.75...1.333,
                interpolation: Interpolation = .bilinear, attempts: Int = 10) throws(DataError) {
        guard size > 0 else { throw .invalidConfig(key: "image_resize", reason: "must be > 0, got \(size)") }
        guard scale.lowerBound > 0, scale.upperBound <= 1 else {
            throw .invalidConfig(key: "scale", reason: "area fractions must lie in (0, 1], got \(scale)")
        }
        guard ratio.lowerBound > 0 else { throw .invalidConfig(key: "ratio", reason: "aspect ratios must be > 0, got \(ratio)") }
        self.size = size
        self.scale = scale
        self.ratio = ratio
        self.interpolation = interpolation
        self.attempts = max(attempts, 0)
    }

    /// Draws the crop rectangle for a `width x height` image.
    public func cropRect(width: Int, height: Int, rng: inout RandomGenerator) -> PixelRect {
        let area = Double(width * height)
        let logLo = log(ratio.lowerBound), logHi = log(ratio.upperBound)
        for _ in 0..<attempts {
            let s = rng.uniform(scale.lowerBound, scale.upperBound)
            let r = exp(rng.uniform(logLo, logHi))
            let w = max(1, Int((area * s * r).squareRoot().rounded()))
            let h = max(1, Int((Double(w) / r).rounded()))
            if w <= width && h <= height {
                let x = rng.integer(0, through: width - w)
                let y = rng.integer(0, through: height - h)
                return PixelRect(x: x, y: y, width: w, height: h)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.lowerBound {
            h = min(height, max(1, Int((Double(width) / ratio.lowerBound).rounded())))
        } else if inRatio > ratio.upperBound {
            w = min(width, max(1, Int((Double(height) * ratio.upperBound).rounded())))
        }
        return PixelRect(x: (width - w) / 2, y: (height - h) / 2, width: w, height: h)
    }

    /// Crops and resizes.
    public func apply(_ image: RGBImage, rng: inout RandomGenerator) -> RGBImage {
        let rect = cropRect(width: image.width, height: image.height, rng: &rng)
        return image.resizedCrop(rect, width: size, height: size, interpolation: interpolation)
    }
}
