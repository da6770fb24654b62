import Tensor

/// Random brightness / contrast / saturation / hue jitter (MindSpore `RandomColorAdjust`, what
/// MindCV's `color_jitter` builds).
///
/// The enabled adjustments run in a random order. Brightness multiplies by b ~ U(max(0, 1−β), 1+β);
/// contrast blends with the mean gray level, saturation with each pixel's gray level, and hue rotates
/// the HSV hue by h ~ U(−η, η) turns. A factor range of exactly [1, 1] (or a hue range [0, 0]) is
/// skipped, so `color_jitter: 0.0` is a no-op. Gray is 0.299 R + 0.587 G + 0.114 B; results are rounded.
public struct ColorJitter: Sendable, Equatable {
    /// Factor ranges (nil = off).
    public let brightness: ClosedRange<Double>?
    public let contrast: ClosedRange<Double>?
    public let saturation: ClosedRange<Double>?
    /// Hue shift range in turns (nil = off), within −0.5…0.5.
    public let hue: ClosedRange<Double>?

    /// Jitter strengths as in torchvision / MindSpore: factor ranges [max(0, 1−s), 1+s], hue [−h, h].
    public init(brightness: Double = 0, contrast: Double = 0, saturation: Double = 0, hue: Double = 0) throws(DataError) {
        for (name, v) in [("brightness", brightness), ("contrast", contrast), ("saturation", saturation)] {
            guard v >= 0, v.isFinite else { throw .invalidConfig(key: "color_jitter", reason: "\(name) must be ≥ 0, got \(v)") }
        }
        guard hue >= 0, hue <= 0.5 else { throw .invalidConfig(key: "color_jitter", reason: "hue must be in [0, 0.5], got \(hue)") }
        func range(_ s: Double) -> ClosedRange<Double>? { s == 0 ? nil : max(0, 1 - s)...(1 + s) }
        self.brightness = range(brightness)
        self.contrast = range(contrast)
        self.saturation = range(saturation)
        self.hue = hue == 0 ? nil : -hue...hue
    }

    /// MindCV's `color_jitter` value: one number c (→ brightness = contrast = saturation = c) or a list
    /// of 3 (brightness, contrast, saturation) or 4 (… , hue) numbers.
    public init(mindcv values: [Double]) throws(DataError) {
        switch values.count {
        case 1: try self.init(brightness: values[0], contrast: values[0], saturation: values[0])
        case 3: try self.init(brightness: values[0], contrast: values[1], saturation: values[2])
        case 4: try self.init(brightness: values[0], contrast: values[1], saturation: values[2], hue: values[3])
        default: throw .invalidConfig(key: "color_jitter", reason: "expected 1, 3 or 4 numbers, got \(values.count)")
        }
    }

    /// True when no adjustment is enabled.
    public var isIdentity: Bool { brightness == nil && contrast == nil && saturation == nil && hue == nil }

    /// Applies the jitter, drawing the order and the factors from `rng`.
    public func apply(to image: inout RGBImage, rng: inout RandomGenerator) {
        guard !isIdentity else { return }
        let order = rng.permutation(4)
        for step in order {
            switch step {
            case 0:
                if let r = brightness { Self.adjustBrightness(&image, rng.uniform(r.lowerBound, r.upperBound)) }
            case 1:
                if let r = contrast { Self.adjustContrast(&image, rng.uniform(r.lowerBound, r.upperBound)) }
            case 2:
                if let r = saturation { Self.adjustSaturation(&image, rng.uniform(r.lowerBound, r.upperBound)) }
            default:
                if let r = hue { Self.adjustHue(&image, rng.uniform(r.lowerBound, r.upperBound)) }
            }
        }
    }

    static func adjustBrightness(_ image: inout RGBImage, _ f: Double) {
        image.applyLookupTable((0..<256).map { clampByte(Float(Double($0) * f)) })
    }

    static func adjustContrast(_ image: inout RGBImage, _ f: Double) {
        let n = image.width * image.height
        guard n > 0 else { return }
        var sum = 0
        image.pixels.withUnsafeBufferPointer { p in
            for i in 0..<n { sum += Int(gray(p[3 * i], p[3 * i + 1], p[3 * i + 2])) }
        }
        let mean = Double(sum) / Double(n)
        image.applyLookupTable((0..<256).map { clampByte(Float(Double($0) * f + mean * (1 - f))) })
    }

    static func adjustSaturation(_ image: inout RGBImage, _ f: Double) {
        let n = image.width * image.height
        let ff = Float(f)
        image.pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                let g = Float(gray(p[3 * i], p[3 * i + 1], p[3 * i + 2])) * (1 - ff)
                p[3 * i] = clampByte(Float(p[3 * i]) * ff + g)
                p[3 * i + 1] = clampByte(Float(p[3 * i + 1]) * ff + g)
                p[3 * i + 2] = clampByte(Float(p[3 * i + 2]) * ff + g)
            }
        }
    }

    static func adjustHue(_ image: inout RGBImage, _ shift: Double) {
        let n = image.width * image.height
        let s = Float(shift)
        image.pixels.withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                let r = Float(p[3 * i]) / 255, g = Float(p[3 * i + 1]) / 255, b = Float(p[3 * i + 2]) / 255
                let maxV = max(r, g, b), minV = min(r, g, b)
                let delta = maxV - minV
                guard delta > 0 else { continue }  // gray: hue undefined, unchanged
                var h: Float
                if maxV == r { h = (g - b) / delta } else if maxV == g { h = 2 + (b - r) / delta } else { h = 4 + (r - g) / delta }
                h = h / 6 + s
                h -= h.rounded(.down)
                let sat = delta / maxV, v = maxV
                let h6 = h * 6
                let sector = min(Int(h6), 5)
                let frac = h6 - Float(sector)
                let pV = v * (1 - sat), qV = v * (1 - sat * frac), tV = v * (1 - sat * (1 - frac))
                let rgb: (Float, Float, Float)
                switch sector {
                case 0: rgb = (v, tV, pV)
                case 1: rgb = (qV, v, pV)
                case 2: rgb = (pV, v, tV)
                case 3: rgb = (pV, qV, v)
                case 4: rgb = (tV, pV, v)
                default: rgb = (v, pV, qV)
                }
                p[3 * i] = clampByte(rgb.0 * 255); p[3 * i + 1] = clampByte(rgb.1 * 255); p[3 * i + 2] = clampByte(rgb.2 * 255)
            }
        }
    }

    /// OpenCV's RGB → gray with rounding: (4899 R + 9617 G + 1868 B + 2¹³) >> 14.
    @inline(__always)
    static func gray(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 {
        UInt8(truncatingIfNeeded: (UInt32(r) &* 4899 &+ UInt32(g) &* 9617 &+ UInt32(b) &* 1868 &+ 8192) >> 14)
    }
}
