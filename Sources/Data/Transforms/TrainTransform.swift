import Tensor

/// MindCV's ImageNet training transform (docs/training.md §6.3), per image:
/// 1. decode (done by the dataset) + `RandomResizedCrop` to `imageSize x imageSize`;
/// 2. horizontal flip with probability `hflip`, then vertical flip with probability `vflip`;
/// 3. the `autoAugment` policy if one is set, otherwise colour jitter — never both;
/// 4. normalisation with `mean`/`std` (0–255 scale) and HWC → CHW;
/// 5. random erasing (if `re_prob` > 0) on the normalised tensor.
/// Batch-level Mixup/CutMix is separate (`MixupCutmix`), applied by the loader.
public struct TrainTransform: ImageTransform {
    public let crop: RandomResizedCrop
    public let hflip: Double
    public let vflip: Double
    /// Applied only when `autoAugment` is nil (MindCV ignores `color_jitter` when a policy is set).
    public let colorJitter: ColorJitter?
    public let autoAugment: AutoAugmentPolicy?
    public let erasing: RandomErasing?
    public let normalization: Normalization

    public var outputHeight: Int { crop.size }
    public var outputWidth: Int { crop.size }

    /// Builds the transform from MindCV's keys (defaults are MindCV's `config.py` defaults).
    /// - Parameters:
    ///   - imageSize: `image_resize`.
    ///   - scale, ratio: `scale`, `ratio` (see `MindCVDefaults.range` to parse the YAML lists).
    ///   - interpolation: `interpolation`, also used by the policy's geometric ops.
    ///   - hflip, vflip: flip probabilities.
    ///   - colorJitter: `color_jitter` as 1, 3 or 4 numbers, or nil/`[0]` for none.
    ///   - autoAugment: `auto_augment` policy string or nil (see `AutoAugmentPolicy`).
    ///   - reProb, reValue, reScale, reRatio, reMaxAttempts: random erasing.
    ///   - mean, std: normalisation on the 0–255 scale.
    public init(imageSize: Int = 224,
                scale: ClosedRange<Double> = 0.08...1.0,
                ratio: ClosedRange<Double> = 0.75...1.333,
                interpolation: Interpolation = .bilinear,
                hflip: Double = 0.5,
                vflip: Double = 0,
                colorJitter: [Double]? = [0.4],
                autoAugment: String? = nil,
                reProb: Double = 0,
                reValue: ErasingValue = .constant(0),
                reScale: ClosedRange<Double> = 0.02...0.33,
                reRatio: ClosedRange<Double> = 0.3...3.3,
                reMaxAttempts: Int = 10,
                mean: [Double] = MindCVDefaults.mean,
                std: [Double] = MindCVDefaults.std) throws(DataError) {
        crop = try RandomResizedCrop(size: imageSize, scale: scale, ratio: ratio, interpolation: interpolation)
        guard (0...1).contains(hflip) else { throw .invalidConfig(key: "hflip", reason: "must be in [0, 1], got \(hflip)") }
        guard (0...1).contains(vflip) else { throw .invalidConfig(key: "vflip", reason: "must be in [0, 1], got \(vflip)") }
        self.hflip = hflip
        self.vflip = vflip
        normalization = try Normalization(mean: mean, std: std)
        if let policy = autoAugment, !policy.isEmpty, policy.lowercased() != "none" {
            self.autoAugment = try AutoAugmentPolicy(policy, interpolation: interpolation, fill: normalization.fillColor)
            self.colorJitter = nil
        } else {
            self.autoAugment = nil
            if let values = colorJitter {
                let jitter = try ColorJitter(mindcv: values)
                self.colorJitter = jitter.isIdentity ? nil : jitter
            } else {
                self.colorJitter = nil
            }
        }
        erasing = reProb > 0
            ? try RandomErasing(probability: reProb, scale: reScale, ratio: reRatio, value: reValue, maxAttempts: reMaxAttempts)
            : nil
    }

    /// Steps 1–3: the augmented 8-bit image before normalisation.
    public func augment(_ image: RGBImage, rng: inout RandomGenerator) -> RGBImage {
        var out = crop.apply(image, rng: &rng)
        if hflip > 0, rng.nextDouble() < hflip { out.flipHorizontally() }
        if vflip > 0, rng.nextDouble() < vflip { out.flipVertically() }
        if let autoAugment {
            autoAugment.apply(to: &out, rng: &rng)
        } else if let colorJitter {
            colorJitter.apply(to: &out, rng: &rng)
        }
        return out
    }

    public func apply(_ image: RGBImage, rng: inout RandomGenerator, into output: UnsafeMutablePointer<Float>) {
        let augmented = augment(image, rng: &rng)
        normalization.write(augmented, into: output)
        erasing?.apply(to: output, width: crop.size, height: crop.size, rng: &rng)
    }
}

/// MindCV's evaluation transform (docs/training.md §6.8): resize the shorter side to
/// ⌊imageSize / cropPct⌋ (longer side ⌊long · short′ / short⌋), centre-crop `imageSize x imageSize`
/// (offset ⌊(size − crop) / 2⌋; zero padding if the image is smaller, i.e. `cropPct` > 1),
/// normalise, CHW. Deterministic: `rng` is not used.
public struct EvalTransform: ImageTransform {
    public let imageSize: Int
    public let cropPct: Double
    public let interpolation: Interpolation
    public let normalization: Normalization

    public var outputHeight: Int { imageSize }
    public var outputWidth: Int { imageSize }

    public init(imageSize: Int = 224, cropPct: Double = 0.875, interpolation: Interpolation = .bilinear,
                mean: [Double] = MindCVDefaults.mean, std: [Double] = MindCVDefaults.std) throws(DataError) {
        guard imageSize > 0 else { throw .invalidConfig(key: "image_resize", reason: "must be > 0, got \(imageSize)") }
        guard cropPct > 0, cropPct.isFinite else { throw .invalidConfig(key: "crop_pct", reason: "must be > 0, got \(cropPct)") }
        self.imageSize = imageSize
        self.cropPct = cropPct
        self.interpolation = interpolation
        normalization = try Normalization(mean: mean, std: std)
    }

    /// The shorter side after the resize: ⌊imageSize / cropPct⌋.
    public var resizeShortSide: Int { max(1, Int((Double(imageSize) / cropPct).rounded(.down))) }

    /// Size of a `width x height` image after the short-side resize.
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let s = resizeShortSide
        if width <= height {
            return (s, max(1, height * s / width))
        }
        return (max(1, width * s / height), s)
    }

    /// Resize + centre crop, as an 8-bit image.
    public func resizedAndCropped(_ image: RGBImage) -> RGBImage {
        let (sw, sh) = resizedSize(width: image.width, height: image.height)
        let full = PixelRect(x: 0, y: 0, width: image.width, height: image.height)
        if sw >= imageSize && sh >= imageSize {
            let window = PixelRect(x: (sw - imageSize) / 2, y: (sh - imageSize) / 2, width: imageSize, height: imageSize)
            return Resampler.resample(image, source: full, scaledWidth: sw, scaledHeight: sh, window: window,
                                      kernel: interpolation.kernel)
        }
        // The crop is larger than the resized image along some axis: crop what exists, pad with zeros.
        let cw = min(sw, imageSize), ch = min(sh, imageSize)
        let window = PixelRect(x: (sw - cw) / 2, y: (sh - ch) / 2, width: cw, height: ch)
        let part = Resampler.resample(image, source: full, scaledWidth: sw, scaledHeight: sh, window: window,
                                      kernel: interpolation.kernel)
        var canvas = RGBImage(width: imageSize, height: imageSize)
        let ox = (imageSize - cw) / 2, oy = (imageSize - ch) / 2
        canvas.pixels.withUnsafeMutableBufferPointer { dst in
            part.pixels.withUnsafeBufferPointer { src in
                for y in 0..<ch {
                    (dst.baseAddress! + ((oy + y) * imageSize + ox) * 3).update(from: src.baseAddress! + y * cw * 3, count: cw * 3)
                }
            }
        }
        return canvas
    }

    public func apply(_ image: RGBImage, rng: inout RandomGenerator, into output: UnsafeMutablePointer<Float>) {
        normalization.write(resizedAndCropped(image), into: output)
    }
}
