import CPNG
import CTurboJPEG
import Tensor
import TestSupport
import XCTest
@testable import DataPipeline
import Trainer

final class DataDecodeTests: XCTestCase {
    let decoder = ImageDecoder()

    /// 8x8-aligned flat colour blocks survive JPEG (quality 100) almost exactly.
    func testJPEGDecodesKnownColours() throws {
        let colours: [(UInt8, UInt8, UInt8)] = [(200, 30, 40), (20, 180, 60), (30, 40, 220), (128, 128, 128)]
        let image = RGBImage(width: 32, height: 32) { p in
            for y in 0..<32 {
                for x in 0..<32 {
                    let c = colours[(y / 16) * 2 + x / 16]
                    p[(y * 32 + x) * 3] = c.0; p[(y * 32 + x) * 3 + 1] = c.1; p[(y * 32 + x) * 3 + 2] = c.2
                }
            }
        }
        let jpeg = try ImageEncoder.jpeg(image, quality: 100)
        XCTAssertEqual(ImageDecoder.Format(signature: jpeg), .jpeg)
        let decoded = try decoder.decode(jpeg)
        XCTAssertEqual(decoded.width, 32)
        XCTAssertEqual(decoded.height, 32)
        // Block centres (away from chroma-subsampling edges).
        for (i, c) in colours.enumerated() {
            let px = decoded[(i % 2) * 16 + 8, (i / 2) * 16 + 8]
            XCTAssertEqual(Int(px.0), Int(c.0), accuracy: 3)
            XCTAssertEqual(Int(px.1), Int(c.1), accuracy: 3)
            XCTAssertEqual(Int(px.2), Int(c.2), accuracy: 3)
        }
    }

    func testGrayscaleJPEGBecomesRGB() throws {
        let gray = (0..<(16 * 16)).map { UInt8(($0 % 16) * 16) }
        let jpeg = try ImageEncoder.jpeg(pixels: gray, width: 16, height: 16, channels: 1, quality: 100)
        let decoded = try decoder.decode(jpeg)
        XCTAssertEqual(decoded.pixels.count, 16 * 16 * 3)
        for i in 0..<(16 * 16) {
            XCTAssertEqual(decoded.pixels[3 * i], decoded.pixels[3 * i + 1])
            XCTAssertEqual(decoded.pixels[3 * i], decoded.pixels[3 * i + 2])
            XCTAssertEqual(Int(decoded.pixels[3 * i]), Int(gray[i]), accuracy: 4)
        }
    }

    /// CMYK (Adobe, inverted values) converts with R = C'·K'/255.
    func testCMYKJPEGBecomesRGB() throws {
        let cmyk: [UInt8] = (0..<(16 * 16)).flatMap { _ in [UInt8(255), 128, 64, 200] }
        let jpeg = try ImageEncoder.jpeg(pixels: cmyk, width: 16, height: 16, channels: 4, quality: 100)
        let decoded = try decoder.decode(jpeg)
        let px = decoded[8, 8]
        XCTAssertEqual(Int(px.0), 255 * 200 / 255, accuracy: 3)
        XCTAssertEqual(Int(px.1), 128 * 200 / 255, accuracy: 3)
        XCTAssertEqual(Int(px.2), 64 * 200 / 255, accuracy: 3)
    }

    func testPNGDecodesExactly() throws {
        let image = syntheticImage(width: 23, height: 17)
        let decoded = try decoder.decode(try ImageEncoder.png(image))
        XCTAssertEqual(decoded, image)
    }

    func testGrayAndAlphaPNGsBecomeRGB() throws {
        let w = 9, h = 7
        let gray = (0..<(w * h)).map { UInt8($0 * 3) }
        let fromGray = try decoder.decode(try ImageEncoder.png(pixels: gray, width: w, height: h, channels: 1))
        XCTAssertEqual(fromGray.pixels, gray.flatMap { [$0, $0, $0] })

        let grayAlpha = gray.flatMap { [$0, UInt8(255 - $0)] }
        let fromGrayAlpha = try decoder.decode(try ImageEncoder.png(pixels: grayAlpha, width: w, height: h, channels: 2))
        XCTAssertEqual(fromGrayAlpha.pixels, gray.flatMap { [$0, $0, $0] }, "alpha is dropped, not composited")

        var rgba: [UInt8] = [], rgb: [UInt8] = []
        for i in 0..<(w * h) {
            let r = UInt8(i), g = UInt8(2 * i), b = UInt8(255 - i)
            let a: UInt8 = i % 2 == 0 ? 0 : 128
            rgba += [r, g, b, a]
            rgb += [r, g, b]
        }
        let fromRGBA = try decoder.decode(try ImageEncoder.png(pixels: rgba, width: w, height: h, channels: 4))
        XCTAssertEqual(fromRGBA.pixels, rgb)
    }

    /// A palette (colour-mapped) PNG written with libpng's own encoder expands to its colours.
    func testPalettePNGBecomesRGB() throws {
        let palette: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
        let indices: [UInt8] = [0, 1, 2, 3, 3, 2, 1, 0]
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = 4
        image.height = 2
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_COLORMAP)
        image.colormap_entries = 4
        var out = [UInt8](repeating: 0, count: 4096)
        var size = out.count
        let ok = out.withUnsafeMutableBytes { buffer in
            png_image_write_to_memory(&image, buffer.baseAddress, &size, 0, indices, 0, palette)
        }
        XCTAssertNotEqual(ok, 0)
        let decoded = try decoder.decode(Array(out.prefix(size)))
        XCTAssertEqual(decoded.pixels, indices.flatMap { Array(palette[(Int($0) * 3)..<(Int($0) * 3 + 3)]) })
    }

    func testTruncatedAndCorruptFilesAreErrorsNamingThePath() throws {
        let image = syntheticImage(width: 64, height: 48)
        let jpeg = try ImageEncoder.jpeg(image, quality: 90)
        let png = try ImageEncoder.png(image)
        for (bytes, kind) in [(Array(jpeg.prefix(jpeg.count / 2)), "jpeg"), (Array(png.prefix(png.count / 2)), "png")] {
            XCTAssertThrowsError(try decoder.decode(bytes, path: "/x/half.\(kind)")) { error in
                guard case DataError.corruptImage(let path, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(path, "/x/half.\(kind)")
                XCTAssertTrue("\(error)".contains("/x/half.\(kind)"))
            }
        }
        XCTAssertThrowsError(try decoder.decode(Array("hello, world".utf8), path: "a.jpg")) { error in
            XCTAssertEqual(error as? DataError, .unsupportedFormat(path: "a.jpg"))
        }
        XCTAssertThrowsError(try decoder.decode([], path: "empty.png"))
        XCTAssertThrowsError(try decoder.decode(contentsOf: "/nonexistent/file.jpg")) { error in
            guard case DataError.unreadable(let path, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "/nonexistent/file.jpg")
        }
    }

    func testDecompressionBombIsRefusedBeforeAllocation() throws {
        let small = ImageDecoder(maxPixels: 100)
        let jpeg = try ImageEncoder.jpeg(syntheticImage(width: 16, height: 16), quality: 80)
        XCTAssertThrowsError(try small.decode(jpeg, path: "big.jpg")) { error in
            XCTAssertEqual(error as? DataError, .imageTooLarge(path: "big.jpg", width: 16, height: 16))
        }
        let png = try ImageEncoder.png(syntheticImage(width: 16, height: 16))
        XCTAssertThrowsError(try small.decode(png, path: "big.png"))
    }

    /// Random corruptions of valid files and random byte strings decode or throw — never crash.
    func testNoByteSequenceCrashes() throws {
        let image = syntheticImage(width: 48, height: 40)
        let seeds = [try ImageEncoder.jpeg(image, quality: 85), try ImageEncoder.png(image),
                     try ImageEncoder.jpeg(pixels: Array(image.pixels.prefix(48 * 40)), width: 48, height: 40, channels: 1)]
        var rng = RandomGenerator(seed: 7)
        var decoded = 0, failed = 0
        for trial in 0..<600 {
            var bytes = seeds[trial % seeds.count]
            switch trial % 4 {
            case 0:  // flip random bytes
                for _ in 0..<(1 + rng.nextInt(below: 8)) { bytes[rng.nextInt(below: bytes.count)] = UInt8(rng.nextInt(below: 256)) }
            case 1:  // truncate
                bytes = Array(bytes.prefix(rng.nextInt(below: bytes.count)))
            case 2:  // corrupt the header region
                for _ in 0..<4 { bytes[rng.nextInt(below: min(bytes.count, 200))] = UInt8(rng.nextInt(below: 256)) }
            default:  // random garbage behind a valid signature
                let head = Array(bytes.prefix(8))
                bytes = head + (0..<rng.nextInt(below: 400)).map { _ in UInt8(rng.nextInt(below: 256)) }
            }
            do {
                let out = try decoder.decode(bytes, path: "fuzz")
                XCTAssertEqual(out.pixels.count, out.width * out.height * 3)
                decoded += 1
            } catch {
                XCTAssertTrue(error.isSampleFailure, "\(error)")
                failed += 1
            }
        }
        XCTAssertEqual(decoded + failed, 600)
        XCTAssertGreaterThan(failed, 100)
    }
}
