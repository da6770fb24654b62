import Foundation
import XCTest
import Tensor
import TestSupport
import DataPipeline

/// The JPEG and PNG decoders under the mutation fuzzer (docs/fuzzing.md): every input decodes to a
/// consistent image or throws a `DataError` naming the input.
final class ImageDecodeFuzzTests: XCTestCase {
    func seeds() throws -> [[UInt8]] {
        let image = syntheticImage(width: 9, height: 7, seed: 4)
        let gray = (0..<(9 * 7)).map { UInt8($0 * 3 % 256) }
        var rgba: [UInt8] = []
        for (i, v) in image.pixels.enumerated() { rgba.append(v); if i % 3 == 2 { rgba.append(UInt8(i % 256)) } }
        return try MutationFuzzer.corpus("image").map(\.bytes) + [
            try ImageEncoder.jpeg(image, quality: 80),
            try ImageEncoder.jpeg(pixels: gray, width: 9, height: 7, channels: 1),
            try ImageEncoder.jpeg(pixels: rgba, width: 9, height: 7, channels: 4),
            try ImageEncoder.png(image),
            try ImageEncoder.png(pixels: rgba, width: 9, height: 7, channels: 4),
            try ImageEncoder.png(pixels: gray, width: 9, height: 7, channels: 1),
        ]
    }

    func testMutatedImagesDecodeConsistentlyOrThrowNamedErrors() throws {
        // A small pixel limit keeps mutated sizes from allocating gigabytes (the limit itself is tested).
        let decoder = ImageDecoder(maxPixels: 1 << 20)
        let r = MutationFuzzer(seed: 5).run(corpus: try seeds(), refusing: DataError.self, { bytes, label in
            let image = try decoder.decode(bytes, path: "fuzz")
            XCTAssertGreaterThan(image.width, 0, label)
            XCTAssertGreaterThan(image.height, 0, label)
            XCTAssertLessThanOrEqual(image.width * image.height, 1 << 20, label)
            XCTAssertEqual(image.pixels.count, image.width * image.height * 3, label)
        }, refused: { error, label in
            XCTAssertEqual(error.path, "fuzz", "\(label): \(error)")
        })
        XCTAssertGreaterThan(r.inputs, 11)
        XCTAssertGreaterThan(r.accepted, 0)
        XCTAssertGreaterThan(r.refused, 0)
    }

    /// The corpus's once-dangerous files end in the documented errors.
    func testCorpusFilesAreRefusedByName() throws {
        let decoder = ImageDecoder()
        for (name, bytes) in try MutationFuzzer.corpus("image") where !name.hasPrefix("valid") {
            XCTAssertThrowsError(try decoder.decode(bytes, path: name), name) { e in
                XCTAssertEqual((e as? DataError)?.path, name, "\(e)")
            }
        }
        let bomb = try MutationFuzzer.corpus("image").first { $0.name.hasPrefix("bomb") }
        XCTAssertThrowsError(try decoder.decode(try XCTUnwrap(bomb).bytes, path: "bomb")) { e in
            XCTAssertEqual(e as? DataError, .imageTooLarge(path: "bomb", width: 100_000, height: 100_000))
        }
    }
}
