import Tensor
import TestSupport
import XCTest
@testable import DataPipeline
import Trainer

final class DataTransformTests: XCTestCase {
    // MARK: Resize

    func testResizeKnownValues() {
        let two = RGBImage(width: 2, height: 1, pixels: [0, 0, 0, 255, 255, 255])
        XCTAssertEqual(two.resized(width: 4, height: 1, interpolation: .bilinear).pixels.enumerated().filter { $0.offset % 3 == 0 }.map(\.element),
                       [0, 64, 191, 255])
        let four = RGBImage(width: 4, height: 1, pixels: [10, 10, 10, 20, 20, 20, 100, 100, 100, 200, 200, 200])
        XCTAssertEqual(four.resized(width: 2, height: 1, interpolation: .bilinear).pixels, [15, 15, 15, 150, 150, 150])
        XCTAssertEqual(four.resized(width: 2, height: 1, interpolation: .area).pixels, [15, 15, 15, 150, 150, 150])
        XCTAssertEqual(four.resized(width: 2, height: 1, interpolation: .nearest).pixels, [10, 10, 10, 100, 100, 100])
        let six = RGBImage(width: 6, height: 1, pixels: [0, 30, 60, 90, 120, 150].flatMap { [UInt8($0), UInt8($0), UInt8($0)] })
        XCTAssertEqual(six.resized(width: 2, height: 1, interpolation: .area).pixels, [30, 30, 30, 120, 120, 120])
    }

    func testResizeKeepsConstantImagesAndGeometry() {
        let flat = RGBImage(width: 37, height: 23, fill: (12, 200, 99))
        for interpolation in Interpolation.allCases {
            for (w, h) in [(224, 224), (5, 9), (37, 23), (100, 11)] {
                let out = flat.resized(width: w, height: h, interpolation: interpolation)
                XCTAssertEqual(out.width, w)
                XCTAssertEqual(out.height, h)
                XCTAssertEqual(out, RGBImage(width: w, height: h, fill: (12, 200, 99)), "\(interpolation) \(w)x\(h)")
            }
        }
    }

    func testResizedCropEqualsCropThenResize() {
        let image = syntheticImage(width: 60, height: 45)
        let rect = PixelRect(x: 7, y: 5, width: 31, height: 22)
        for interpolation in Interpolation.allCases {
            XCTAssertEqual(image.resizedCrop(rect, width: 24, height: 24, interpolation: interpolation),
                           image.cropped(to: rect).resized(width: 24, height: 24, interpolation: interpolation), "\(interpolation)")
        }
    }

    func testInterpolationNames() {
        XCTAssertEqual(Interpolation(mindcv: "BICUBIC"), .bicubic)
        XCTAssertEqual(Interpolation(mindcv: "linear"), .bilinear)
        XCTAssertEqual(Interpolation(mindcv: "pilcubic"), .pilCubic)
        XCTAssertEqual(Interpolation(mindcv: "whatever"), .bilinear)
    }

    // MARK: Geometry

    func testFlips() {
        let image = syntheticImage(width: 5, height: 3)
        let h = image.flippedHorizontally(), v = image.flippedVertically()
        for y in 0..<3 {
            for x in 0..<5 {
                XCTAssertTrue(h[x, y] == image[4 - x, y])
                XCTAssertTrue(v[x, y] == image[x, 2 - y])
            }
        }
        XCTAssertEqual(h.flippedHorizontally(), image)
    }

    func testRotateQuarterTurnIsAPermutation() {
        let n = 8
        let image = syntheticImage(width: n, height: n)
        for interpolation in [Interpolation.nearest, .bilinear, .bicubic] {
            let r = image.rotated(degrees: 90, interpolation: interpolation, fill: (0, 0, 0))
            for y in 0..<n {
                for x in 0..<n {
                    XCTAssertTrue(r[x, y] == image[n - 1 - y, x], "\(interpolation) at \(x),\(y)")  // counter-clockwise
                }
            }
        }
    }

    func testTranslateAndShearGeometry() {
        let image = syntheticImage(width: 12, height: 10)
        let fill: (UInt8, UInt8, UInt8) = (1, 2, 3)
        let shifted = image.warped(AffineMatrix(a: 1, b: 0, c: 3, d: 0, e: 1, f: 0), interpolation: .bilinear, fill: fill)
        for y in 0..<10 {
            for x in 0..<12 {
                XCTAssertTrue(shifted[x, y] == (x + 3 < 12 ? image[x + 3, y] : fill))
            }
        }
        let s = 0.5
        let sheared = image.warped(AffineMatrix(a: 1, b: s, c: 0, d: 0, e: 1, f: 0), interpolation: .nearest, fill: fill)
        for y in 0..<10 {
            for x in 0..<12 {
                let sx = Int((Double(x) + 0.5 + s * (Double(y) + 0.5)).rounded(.down))
                XCTAssertTrue(sheared[x, y] == (sx < 12 ? image[sx, y] : fill), "x' = x + s·y at \(x),\(y)")
            }
        }
    }

    func testRandomResizedCropGeometry() throws {
        let crop = try RandomResizedCrop(size: 32, scale: 0.08...1.0, ratio: 0.75...1.333, interpolation: .bicubic)
        var rng = RandomGenerator(seed: 3)
        for _ in 0..<500 {
            let w = 20 + rng.nextInt(below: 200), h = 20 + rng.nextInt(below: 200)
            let r = crop.cropRect(width: w, height: h, rng: &rng)
            XCTAssertTrue(r.x >= 0 && r.y >= 0 && r.width >= 1 && r.height >= 1 && r.x + r.width <= w && r.y + r.height <= h, "\(r) in \(w)x\(h)")
        }
        // Impossible aspect: falls back to the whole image narrowed to the ratio bound, centred.
        let strict = try RandomResizedCrop(size: 8, scale: 0.9...1.0, ratio: 0.75...1.333)
        XCTAssertEqual(strict.cropRect(width: 1000, height: 10, rng: &rng), PixelRect(x: (1000 - 13) / 2, y: 0, width: 13, height: 10))
        XCTAssertEqual(strict.cropRect(width: 10, height: 1000, rng: &rng), PixelRect(x: 0, y: (1000 - 13) / 2, width: 10, height: 13))
        let out = crop.apply(syntheticImage(width: 50, height: 40), rng: &rng)
        XCTAssertEqual(out.width, 32)
        XCTAssertEqual(out.height, 32)
    }

    // MARK: Pixel ops

    func testPixelOps() {
        let image = syntheticImage(width: 16, height: 12)
        var inverted = image
        inverted.invert()
        XCTAssertEqual(inverted.pixels, image.pixels.map { 255 - $0 })
        var twice = inverted
        twice.invert()
        XCTAssertEqual(twice, image)

        var posterized = image
        posterized.posterize(bits: 3)
        XCTAssertEqual(posterized.pixels, image.pixels.map { $0 & 0b1110_0000 })
        var unchanged = image
        unchanged.posterize(bits: 8)
        XCTAssertEqual(unchanged, image)

        var solarized = image
        solarized.solarize(threshold: 100)
        XCTAssertEqual(solarized.pixels, image.pixels.map { $0 < 100 ? $0 : 255 - $0 })

        var stretched = image
        stretched.autocontrast()
        for c in 0..<3 {
            let channel = stride(from: c, to: stretched.pixels.count, by: 3).map { stretched.pixels[$0] }
            XCTAssertEqual(channel.min(), 0)
            XCTAssertEqual(channel.max(), 255)
        }

        var two = RGBImage(width: 32, height: 16) { p in
            for i in 0..<(32 * 16 * 3) { p[i] = i < 32 * 8 * 3 ? 10 : 50 }
        }
        two.equalize()
        XCTAssertEqual(Set(two.pixels), [0, 255], "PIL equalize of a two-level image")
        var tiny = RGBImage(width: 2, height: 2, pixels: [10, 10, 10, 10, 10, 10, 50, 50, 50, 50, 50, 50])
        tiny.equalize()
        XCTAssertEqual(Set(tiny.pixels), [10, 50], "PIL: too few pixels per level (step 0) leaves the image alone")

        for f in [0.0, 0.3, 1.0, 1.7] {
            var a = image, b = image, c = image, d = image
            a.enhanceColor(f); b.enhanceContrast(f); c.enhanceBrightness(f); d.enhanceSharpness(f)
            if f == 1 {
                XCTAssertEqual(a, image); XCTAssertEqual(b, image); XCTAssertEqual(c, image); XCTAssertEqual(d, image)
            }
            if f == 0 {
                XCTAssertTrue(c.pixels.allSatisfy { $0 == 0 })
                XCTAssertEqual(Set(b.pixels).count, 1)
                for i in 0..<(16 * 12) { XCTAssertTrue(a.pixels[3 * i] == a.pixels[3 * i + 1] && a.pixels[3 * i] == a.pixels[3 * i + 2]) }
            }
        }
        var blurred = RGBImage(width: 9, height: 9, fill: (77, 77, 77))
        blurred.gaussianBlur3x3(sigma: 1.2)
        XCTAssertEqual(blurred, RGBImage(width: 9, height: 9, fill: (77, 77, 77)))
    }

    func testColorJitter() throws {
        XCTAssertTrue(try ColorJitter(mindcv: [0]).isIdentity)
        XCTAssertThrowsError(try ColorJitter(mindcv: [0.1, 0.2]))
        XCTAssertThrowsError(try ColorJitter(brightness: -1))
        let jitter = try ColorJitter(mindcv: [0.4, 0.4, 0.4, 0.1])
        XCTAssertEqual(jitter.brightness, 0.6...1.4)
        XCTAssertEqual(jitter.hue, -0.1...0.1)
        let image = syntheticImage(width: 20, height: 20)
        var rng = RandomGenerator(seed: 5)
        var changed = 0
        for _ in 0..<10 {
            var out = image
            jitter.apply(to: &out, rng: &rng)
            XCTAssertEqual(out.pixels.count, image.pixels.count)
            if out != image { changed += 1 }
        }
        XCTAssertGreaterThan(changed, 5)
        var gray = RGBImage(width: 4, height: 4, fill: (90, 90, 90))
        ColorJitter.adjustHue(&gray, 0.3)
        XCTAssertEqual(gray, RGBImage(width: 4, height: 4, fill: (90, 90, 90)), "hue leaves grays alone")
        var red = RGBImage(width: 1, height: 1, pixels: [255, 0, 0])
        ColorJitter.adjustHue(&red, 1.0 / 3.0)
        XCTAssertEqual(red.pixels, [0, 255, 0], "a third of a turn maps red to green")
    }

    // MARK: Auto-augment

    func testPolicyParsing() throws {
        let ra = try AutoAugmentPolicy("randaug-m9-mstd0.5-inc1")
        XCTAssertEqual(ra.rule, MagnitudeRule(std: 0.5, maximum: 10, denominator: 10, wide: false))
        guard case .randAugment(let ops, let n, let m, let w) = ra.kind else { return XCTFail() }
        XCTAssertEqual(ops, AugmentOp.increasing)
        XCTAssertEqual(n, 2); XCTAssertEqual(m, 9); XCTAssertNil(w)
        guard case .randAugment(let ops0, _, _, _) = try AutoAugmentPolicy("randaug-m9-inc0").kind else { return XCTFail() }
        XCTAssertEqual(ops0, AugmentOp.standard, "inc0 means off (intent)")
        XCTAssertEqual(try AutoAugmentPolicy("autoaug").rule.std, 0, "no mstd → no noise (intent; MindCV uses 0.5)")
        XCTAssertEqual(try AutoAugmentPolicy("autoaug-mstd0.5").rule.std, 0.5)
        XCTAssertEqual(try AutoAugmentPolicy("randaug-m9-mstd101").rule.std, .infinity)
        XCTAssertEqual(try AutoAugmentPolicy("randaug-m12-mmax15").rule.maximum, 15)
        XCTAssertEqual(try AutoAugmentPolicy("trivialaugwide").rule, MagnitudeRule(std: .infinity, maximum: 31, denominator: 31, wide: true))
        for good in ["randaug-m9-n3-w0", "autoaugr-mstd0.5", "3a", "augmix-m5-w4-d2", "trivialaugwide-m20"] {
            XCTAssertNoThrow(try AutoAugmentPolicy(good), good)
        }
        for bad in ["", "randaugment", "randaug-x9", "randaug-m", "randaug-m9-w1", "autoaug-m9", "trivialaugwide-m0", "augmix-w0"] {
            XCTAssertThrowsError(try AutoAugmentPolicy(bad), bad) { error in
                guard case DataError.invalidConfig(let key, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(key, "auto_augment")
            }
        }
    }

    func testEveryOpKeepsGeometryAndIsDeterministic() {
        let image = syntheticImage(width: 30, height: 20)
        let context = AugmentContext(interpolation: .bicubic, fill: (124, 116, 104))
        for op in AugmentOp.allCases {
            for x in [0.0, 0.45, 1.0] {
                for wide in [false, true] {
                    var a = image, b = image
                    var r1 = RandomGenerator(seed: 9), r2 = RandomGenerator(seed: 9)
                    op.apply(to: &a, x: x, wide: wide, context: context, rng: &r1)
                    op.apply(to: &b, x: x, wide: wide, context: context, rng: &r2)
                    XCTAssertEqual(a.width, 30); XCTAssertEqual(a.height, 20)
                    XCTAssertEqual(a, b, "\(op) x=\(x)")
                }
            }
        }
        // Posterize keeps a bits (intent): Posterize at x = 0.9 keeps ⌊3.6⌋ = 3 bits.
        var p = image
        var rng = RandomGenerator(seed: 1)
        AugmentOp.posterize.apply(to: &p, x: 0.9, wide: false, context: context, rng: &rng)
        XCTAssertTrue(p.pixels.allSatisfy { $0 & 0b0001_1111 == 0 })
        // PosterizeOriginal at x = 0.5 keeps 6 bits.
        var q = image
        AugmentOp.posterizeOriginal.apply(to: &q, x: 0.5, wide: false, context: context, rng: &rng)
        XCTAssertEqual(q.pixels, image.pixels.map { $0 & 0b1111_1100 })
    }

    func testPoliciesRun() throws {
        let image = syntheticImage(width: 32, height: 32)
        for name in ["randaug-m9-mstd0.5", "randaug-m9-mstd0.5-inc1", "randaug-m9-w0", "autoaug-mstd0.5", "autoaugr", "3a",
                     "trivialaugwide", "augmix-m3-w3"] {
            let policy = try AutoAugmentPolicy(name, interpolation: .bicubic)
            var rng = RandomGenerator(seed: 11)
            var changed = 0
            for _ in 0..<20 {
                var out = image
                policy.apply(to: &out, rng: &rng)
                XCTAssertEqual(out.pixels.count, image.pixels.count)
                if out != image { changed += 1 }
            }
            XCTAssertGreaterThan(changed, 3, name)
        }
    }

    // MARK: Full transforms

    func testTrainTransformShapeAndRange() throws {
        let mean = MindCVDefaults.mean, std = MindCVDefaults.std
        let transform = try TrainTransform(imageSize: 24, interpolation: .bicubic, vflip: 0.5, autoAugment: "randaug-m9-mstd0.5-inc1",
                                           reProb: 0)
        XCTAssertNil(transform.colorJitter, "colour jitter is off when a policy is set")
        var rng = RandomGenerator(seed: 2)
        let image = syntheticImage(width: 50, height: 37)
        for _ in 0..<20 {
            let t = transform(image, rng: &rng)
            XCTAssertEqual(t.shape, [3, 24, 24])
            let v = t.scalars
            for c in 0..<3 {
                let lo = Float((0 - mean[c]) / std[c]) - 1e-5, hi = Float((255 - mean[c]) / std[c]) + 1e-5
                XCTAssertTrue(v[(c * 576)..<((c + 1) * 576)].allSatisfy { $0 >= lo && $0 <= hi })
            }
        }
        var r1 = RandomGenerator(seed: 8), r2 = RandomGenerator(seed: 8)
        XCTAssertEqual(tensorBits(transform(image, rng: &r1)), tensorBits(transform(image, rng: &r2)))

        let withJitter = try TrainTransform(imageSize: 16, colorJitter: [0.4], reProb: 1, reValue: .random)
        XCTAssertNotNil(withJitter.colorJitter)
        XCTAssertNotNil(withJitter.erasing)
        XCTAssertTrue(withJitter(image, rng: &rng).scalars.allSatisfy(\.isFinite))
        XCTAssertThrowsError(try TrainTransform(hflip: 1.5))
        XCTAssertThrowsError(try TrainTransform(mean: [1, 2]))
        XCTAssertThrowsError(try TrainTransform(autoAugment: "bogus"))
        XCTAssertThrowsError(try MindCVDefaults.range([1.0, 0.5], key: "scale"))
    }

    func testNormalizationIsExact() throws {
        let norm = try Normalization()
        let image = RGBImage(width: 2, height: 1, pixels: [0, 128, 255, 10, 20, 30])
        var out = [Float](repeating: 0, count: 6)
        out.withUnsafeMutableBufferPointer { norm.write(image, into: $0.baseAddress!) }
        let m = MindCVDefaults.mean, s = MindCVDefaults.std
        let expected: [Double] = [(0 - m[0]) / s[0], (10 - m[0]) / s[0], (128 - m[1]) / s[1], (20 - m[1]) / s[1],
                                  (255 - m[2]) / s[2], (30 - m[2]) / s[2]]
        for (a, b) in zip(out, expected) { XCTAssertEqual(Double(a), b, accuracy: 1e-6) }
        XCTAssertTrue(norm.fillColor == (124, 116, 104))
    }

    func testEvalTransformGeometry() throws {
        let eval = try EvalTransform(imageSize: 224, cropPct: 0.875, interpolation: .bicubic)
        XCTAssertEqual(eval.resizeShortSide, 256)
        XCTAssertTrue(eval.resizedSize(width: 500, height: 375) == (341, 256))
        XCTAssertTrue(eval.resizedSize(width: 375, height: 500) == (256, 341))
        XCTAssertEqual(try EvalTransform(imageSize: 224, cropPct: 0.9).resizeShortSide, 248)
        let image = syntheticImage(width: 500, height: 375)
        let expected = image.resized(width: 341, height: 256, interpolation: .bicubic)
            .cropped(to: PixelRect(x: 58, y: 16, width: 224, height: 224))
        XCTAssertEqual(eval.resizedAndCropped(image), expected)
        // crop_pct > 1: the resized image is smaller than the crop and is zero-padded.
        let padded = try EvalTransform(imageSize: 10, cropPct: 2).resizedAndCropped(RGBImage(width: 8, height: 8, fill: (9, 9, 9)))
        XCTAssertEqual(padded.width, 10)
        XCTAssertTrue(padded[0, 0] == (0, 0, 0))
        XCTAssertTrue(padded[5, 5] == (9, 9, 9))
    }

    func testRandomErasing() throws {
        let erasing = try RandomErasing(probability: 1, scale: 0.1...0.2, ratio: 0.5...2, value: .perChannel([7, 8, 9]))
        var rng = RandomGenerator(seed: 4)
        let w = 20, h = 16
        for _ in 0..<50 {
            var chw = [Float](repeating: 0.5, count: 3 * w * h)
            chw.withUnsafeMutableBufferPointer { erasing.apply(to: $0.baseAddress!, width: w, height: h, rng: &rng) }
            let erased = (0..<3).map { c in chw[(c * w * h)..<((c + 1) * w * h)].filter { $0 == Float(7 + c) }.count }
            XCTAssertEqual(erased[0], erased[1]); XCTAssertEqual(erased[1], erased[2])
            XCTAssertTrue(erased[0] == 0 || (erased[0] >= 10 && erased[0] <= 90), "\(erased[0]) px")
            XCTAssertEqual(chw.filter { $0 == 0.5 }.count, 3 * (w * h - erased[0]))
        }
        let never = try RandomErasing(probability: 0)
        XCTAssertNil(never.rectangle(width: 10, height: 10, rng: &rng))
        XCTAssertEqual(try RandomErasing.value(mindcv: "random"), .random)
        XCTAssertEqual(try RandomErasing.value(mindcv: "0"), .constant(0))
        XCTAssertEqual(try RandomErasing.value(mindcv: "[1, 2, 3]"), .perChannel([1, 2, 3]))
        XCTAssertThrowsError(try RandomErasing.value(mindcv: "x"))
    }

    // MARK: Mixup / CutMix

    func testMixup() throws {
        let mix = try MixupCutmix(mixupAlpha: 0.8, cutmixAlpha: 0, numClasses: 5)
        let b = 4, c = 3, hw = 4
        var rng = RandomGenerator(seed: 1)
        var images = Tensor.uniform([b, c, hw, hw], low: -1, high: 1, generator: &rng)
        let original = images.scalars
        let labels = [0, 1, 2, 4]
        let (targets, outcome) = mix.apply(images: &images, labels: labels, rng: &rng)
        XCTAssertEqual(outcome.mode, .mixup)
        let lam = Float(outcome.lambda)
        let sample = c * hw * hw
        let mixed = images.scalars
        for i in 0..<b {
            for k in 0..<sample {
                XCTAssertEqual(mixed[i * sample + k], lam * original[i * sample + k] + (1 - lam) * original[(b - 1 - i) * sample + k], accuracy: 1e-5)
            }
        }
        XCTAssertEqual(targets.shape, [4, 5])
        let t = targets.scalars
        XCTAssertEqual(t[0 * 5 + 0], lam, accuracy: 1e-6)
        XCTAssertEqual(t[0 * 5 + 4], 1 - lam, accuracy: 1e-6)
        for i in 0..<b { XCTAssertEqual(t[(i * 5)..<(i * 5 + 5)].reduce(0, +), 1, accuracy: 1e-5) }
    }

    func testCutmixAndSmoothing() throws {
        let mix = try MixupCutmix(mixupAlpha: 0, cutmixAlpha: 1, labelSmoothing: 0.1, numClasses: 3)
        let b = 3, hw = 16
        var rng = RandomGenerator(seed: 2)
        for _ in 0..<10 {
            var images = Tensor.uniform([b, 3, hw, hw], low: 0, high: 1, generator: &rng)
            let original = images.scalars
            let (targets, outcome) = mix.apply(images: &images, labels: [0, 1, 2], rng: &rng)
            XCTAssertEqual(outcome.mode, .cutmix)
            guard let box = outcome.box else { return XCTFail() }
            XCTAssertEqual(outcome.lambda, 1 - Double(box.width * box.height) / Double(hw * hw), accuracy: 1e-12)
            let after = images.scalars
            let sample = 3 * hw * hw
            for y in 0..<hw {
                for x in 0..<hw {
                    let inside = x >= box.x && x < box.x + box.width && y >= box.y && y < box.y + box.height
                    XCTAssertEqual(after[y * hw + x], inside ? original[2 * sample + y * hw + x] : original[y * hw + x])
                    XCTAssertEqual(after[sample + y * hw + x], original[sample + y * hw + x], "middle sample pairs with itself")
                }
            }
            let t = targets.scalars
            let off: Float = 0.1 / 3, on: Float = 0.9 + off
            XCTAssertEqual(t[0], off + Float(outcome.lambda) * (on - off), accuracy: 1e-6)
            XCTAssertEqual(t[2], off + Float(1 - outcome.lambda) * (on - off), accuracy: 1e-6)
            XCTAssertEqual(t[0..<3].reduce(0, +), 1, accuracy: 1e-5)
        }
        let never = try MixupCutmix(mixupAlpha: 0.8, cutmixAlpha: 1, cutmixProb: 0, numClasses: 2)
        var images = Tensor.zeros([2, 3, 2, 2])
        let (targets, outcome) = never.apply(images: &images, labels: [1, 0], rng: &rng)
        XCTAssertEqual(outcome.mode, .none)
        XCTAssertEqual(targets.scalars, [0, 1, 1, 0])
        XCTAssertThrowsError(try MixupCutmix(mixupAlpha: -1, cutmixAlpha: 0, numClasses: 2))
    }
}
