import Tensor

/// The image operations of the auto-augment policies (timm / MindCV names).
///
/// Magnitude → argument follows docs/training.md §6.6.3 with x = m/10 (TrivialAugment: x = m/M),
/// except where MindCV's implementation contradicts its intent; here the intent (timm) is implemented:
/// * **Shear** is a shear *factor* `x' = x + s·y` (PIL affine `(1, s, 0, 0, 1, 0)`), ±0.3·x (TA ±0.99·x).
///   MindCV passes the factor to an op that reads it as an angle in degrees, so its shear is ≈ 0.3°.
/// * **Posterize** keeps `a` bits (PIL `posterize(img, a)`), with a = ⌊4x⌋ (Posterize),
///   4 − ⌊4x⌋ (PosterizeIncreasing), ⌊4x⌋ + 4 (PosterizeOriginal), ⌊6x⌋ + 2 (TA). MindCV keeps
///   max(8 − a, 1) bits, which inverts the strength (e.g. `autoaug` keeps 1–3 bits instead of 6–7).
/// * **TrivialAugment translation** is negated with probability ½ like every other signed op
///   (MindCV never negates it, so its images only ever shift one way).
/// Translation is the intended fraction of the image size (±0.45·x; TA ±0.15·x). Rotate, shear and
/// translate fill uncovered pixels with the configured fill colour (MindCV: round(mean)) and use
/// the configured interpolation.
public enum AugmentOp: String, Sendable, CaseIterable {
    case autoContrast = "AutoContrast", equalize = "Equalize", invert = "Invert", rotate = "Rotate"
    case posterize = "Posterize", solarize = "Solarize", color = "Color", contrast = "Contrast"
    case brightness = "Brightness", sharpness = "Sharpness", shearX = "ShearX", shearY = "ShearY"
    case translateX = "TranslateX", translateY = "TranslateY"
    case posterizeIncreasing = "PosterizeIncreasing", solarizeIncreasing = "SolarizeIncreasing"
    case colorIncreasing = "ColorIncreasing", contrastIncreasing = "ContrastIncreasing"
    case brightnessIncreasing = "BrightnessIncreasing", sharpnessIncreasing = "SharpnessIncreasing"
    case posterizeOriginal = "PosterizeOriginal", desaturate = "Desaturate", gaussianBlurRand = "GaussianBlurRand"

    /// RandAugment's and TrivialAugment's 14 ops, in MindCV's order.
    public static let standard: [AugmentOp] = [.autoContrast, .equalize, .invert, .rotate, .posterize, .solarize,
                                               .color, .contrast, .brightness, .sharpness, .shearX, .shearY,
                                               .translateX, .translateY]
    /// The same list with the *Increasing* variants (`inc1`).
    public static let increasing: [AugmentOp] = [.autoContrast, .equalize, .invert, .rotate, .posterizeIncreasing,
                                                 .solarizeIncreasing, .colorIncreasing, .contrastIncreasing,
                                                 .brightnessIncreasing, .sharpnessIncreasing, .shearX, .shearY,
                                                 .translateX, .translateY]
    /// AugMix's ops.
    public static let augMix: [AugmentOp] = [.autoContrast, .colorIncreasing, .contrastIncreasing, .brightnessIncreasing,
                                             .sharpnessIncreasing, .equalize, .rotate, .posterizeIncreasing,
                                             .solarizeIncreasing, .shearX, .shearY, .translateX, .translateY]

    /// RandAugment's `w0` choice weights for the 14 ops of `standard` / `increasing` (same positions).
    static let randAugmentWeights: [Double] = [0.025, 0.005, 0, 0.3, 0.005, 0.005, 0.025, 0.005, 0.005, 0.025,
                                               0.2, 0.2, 0.1, 0.1]
}

/// How a policy turns an op's base magnitude into the argument fraction x.
struct MagnitudeRule: Sendable, Equatable {
    /// Gaussian noise std added to the magnitude (0 = none, ∞ = uniform in [0, M]).
    var std: Double
    /// Upper clip of the magnitude.
    var maximum: Double
    /// x = m / denominator.
    var denominator: Double
    /// TrivialAugment-Wide argument table.
    var wide: Bool

    func fraction(base: Double, rng: inout RandomGenerator) -> Double {
        var m = base
        if std == .infinity {
            m = rng.uniform(0, base)
        } else if std > 0 {
            m = base + std * Double(rng.nextNormal())
        }
        m = min(max(m, 0), maximum)
        return m / denominator
    }
}

/// Where geometric ops get their resampling filter and background colour.
struct AugmentContext: Sendable {
    var interpolation: Interpolation
    var fill: (UInt8, UInt8, UInt8)
}

extension AugmentOp {
    /// Applies the op with argument fraction `x` (see the table in `AugmentOp`), drawing random signs from `rng`.
    func apply(to image: inout RGBImage, x: Double, wide: Bool, context: AugmentContext, rng: inout RandomGenerator) {
        func signed(_ v: Double) -> Double { rng.nextDouble() < 0.5 ? -v : v }
        func enhance(_ x: Double) -> Double { wide ? 1.99 * x + 0.01 : 1.8 * x + 0.1 }
        func increasing(_ x: Double) -> Double { max(0.1, 1 + signed(0.9 * x)) }
        let w = image.width, h = image.height
        switch self {
        case .autoContrast: image.autocontrast()
        case .equalize: image.equalize()
        case .invert: image.invert()
        case .rotate:
            let degrees = signed((wide ? 135 : 30) * x)
            image = image.rotated(degrees: degrees, interpolation: context.interpolation, fill: context.fill)
        case .posterize: image.posterize(bits: wide ? Int((6 * x).rounded(.down)) + 2 : Int((4 * x).rounded(.down)))
        case .posterizeIncreasing: image.posterize(bits: 4 - Int((4 * x).rounded(.down)))
        case .posterizeOriginal: image.posterize(bits: Int((4 * x).rounded(.down)) + 4)
        case .solarize: image.solarize(threshold: Int((255 * x).rounded(.down)))
        case .solarizeIncreasing: image.solarize(threshold: 255 - Int((255 * x).rounded(.down)))
        case .color: image.enhanceColor(enhance(x))
        case .contrast: image.enhanceContrast(enhance(x))
        case .brightness: image.enhanceBrightness(enhance(x))
        case .sharpness: image.enhanceSharpness(enhance(x))
        case .colorIncreasing: image.enhanceColor(increasing(x))
        case .contrastIncreasing: image.enhanceContrast(increasing(x))
        case .brightnessIncreasing: image.enhanceBrightness(increasing(x))
        case .sharpnessIncreasing: image.enhanceSharpness(increasing(x))
        case .shearX:
            let s = signed((wide ? 0.99 : 0.3) * x)
            image = image.warped(AffineMatrix(a: 1, b: s, c: 0, d: 0, e: 1, f: 0),
                                 interpolation: context.interpolation, fill: context.fill)
        case .shearY:
            let s = signed((wide ? 0.99 : 0.3) * x)
            image = image.warped(AffineMatrix(a: 1, b: 0, c: 0, d: s, e: 1, f: 0),
                                 interpolation: context.interpolation, fill: context.fill)
        case .translateX:
            let dx = signed((wide ? 0.15 : 0.45) * x) * Double(w)
            image = image.warped(AffineMatrix(a: 1, b: 0, c: dx, d: 0, e: 1, f: 0),
                                 interpolation: context.interpolation, fill: context.fill)
        case .translateY:
            let dy = signed((wide ? 0.15 : 0.45) * x) * Double(h)
            image = image.warped(AffineMatrix(a: 1, b: 0, c: 0, d: 0, e: 1, f: dy),
                                 interpolation: context.interpolation, fill: context.fill)
        case .desaturate:
            let level = min(max(0.5 + 0.5 * x, 0.5), 1)
            image.enhanceColor(1 - level)
        case .gaussianBlurRand:
            let level = min(max(x, 0), 1)
            image.gaussianBlur3x3(sigma: rng.uniform(0.1, 2 * level))
        }
    }
}
