import XCTest
import Tensor
@testable import Models

/// Issue 12 rows 1, 2, 8 and 15: an image size a family cannot run is refused by a named error
/// before any kernel runs (release builds compile `precondition` out), and so is a configuration
/// whose memory cannot fit. Sizes just inside each rule run and give finite logits.
final class InputGeometryTests: XCTestCase {
    func geometry(_ name: String) throws -> InputGeometry {
        try XCTUnwrap(try ModelRegistry.entry(name).geometry, "\(name) has no input geometry")
    }

    func testEveryRegisteredModelHasARuleAndAcceptsItsDefaultSize() throws {
        for entry in ModelRegistry.entries {
            let g = try XCTUnwrap(entry.geometry, entry.name)
            XCTAssertNoThrow(try g.check(model: entry.name, side: entry.defaultImageSize), entry.name)
            XCTAssertNoThrow(try entry.checkConfiguration(ModelOptions(), batchSize: 1, training: false,
                                                          available: (64e9, "test")), entry.name)
        }
    }

    func testMinimumSidesPerFamily() throws {
        XCTAssertEqual(try geometry("pit_ti").minimumSide, 16)
        XCTAssertEqual(try geometry("pit_b").minimumSide, 14)
        XCTAssertEqual(try geometry("vit_b_32_224").minimumSide, 32)
        XCTAssertEqual(try geometry("vit_b_32_224").sideMultiple, 32)
        XCTAssertEqual(try geometry("convit_tiny").minimumSide, 16)
        XCTAssertEqual(try geometry("convit_tiny").sideMultiple, 16)
        XCTAssertEqual(try geometry("pvt_tiny").minimumSide, 32)
        XCTAssertEqual(try geometry("visformer_tiny").minimumSide, 31)
        XCTAssertEqual(try geometry("visformer_tiny_v2").minimumSide, 31)
    }

    /// Rows 1, 2, 15 as reported: each is refused with the minimum in the message.
    func testReportedSizesAreRefused() throws {
        let cases: [(String, Int)] = [("pvt_tiny", 16), ("pvt_tiny", 3), ("pvt_tiny", 31), ("pit_ti", 8), ("pit_ti", 1), ("pit_ti", 15),
                                      ("convit_tiny", 8), ("visformer_tiny", 8), ("visformer_tiny_v2", 30)]
        for (name, side) in cases {
            XCTAssertThrowsError(try ModelRegistry.create(name, options: ModelOptions(numClasses: 3, imageSize: side)), "\(name) at \(side)") { e in
                guard case let .tooSmall(model, s, minimum, _) = e as? InputGeometryError else { return XCTFail("\(e)") }
                XCTAssertEqual(model, name); XCTAssertEqual(s, side)
                XCTAssertTrue("\(e)".contains("at least \(minimum) pixels"), "\(e)")
            }
        }
        // vit_b_32 at 20 px: smaller than one patch; at 40 px: not a whole number of patches.
        XCTAssertThrowsError(try ModelRegistry.entry("vit_b_32_224").checkInput(ModelOptions(imageSize: 20)))
        XCTAssertThrowsError(try ModelRegistry.entry("vit_b_32_224").checkInput(ModelOptions(imageSize: 40))) { e in
            XCTAssertEqual(e as? InputGeometryError, .notAMultiple(model: "vit_b_32_224", side: 40, multiple: 32, nearest: [32, 64]))
        }
        XCTAssertThrowsError(try ModelRegistry.entry("pit_ti").checkInput(ModelOptions(imageSize: 0)))
        XCTAssertThrowsError(try ModelRegistry.entry("pit_ti").checkInput(ModelOptions(imageSize: -5)))
    }

    /// The smallest accepted side, and awkward sides above it, run and give finite logits.
    func testAcceptedEdgeSidesRun() throws {
        let cases: [(String, [Int])] = [("pit_ti", [16, 17, 23]), ("pvt_tiny", [32, 33, 47]), ("convit_tiny", [16, 48]),
                                        ("visformer_tiny", [31, 33]), ("visformer_tiny_v2", [31, 45])]
        for (name, sides) in cases {
            for side in sides {
                let model = try ModelRegistry.create(name, options: ModelOptions(numClasses: 3, imageSize: side))
                model.eval()
                var g = RandomGenerator(seed: 7)
                let x = Tensor(shape: [2, 3, side, side], (0..<(2 * 3 * side * side)).map { _ in g.nextFloat() * 2 - 1 })
                let y = withNoGrad { model(x) }
                XCTAssertEqual(y.shape, [2, 3], "\(name) at \(side)")
                XCTAssertTrue(y.scalars.allSatisfy(\.isFinite), "\(name) at \(side): \(y.scalars)")
            }
        }
    }

    /// Row 8: --image_resize 100000 (and 2000 under a 3 GB limit) is refused with the estimate.
    func testMemoryEstimateRefusesWhatCannotFit() throws {
        let pit = try ModelRegistry.entry("pit_ti")
        XCTAssertThrowsError(try pit.checkConfiguration(ModelOptions(imageSize: 100_000), batchSize: 1, training: false)) { e in
            guard case let .outOfMemory(_, side, _, _, need, have, _) = e as? InputGeometryError else { return XCTFail("\(e)") }
            XCTAssertEqual(side, 100_000)
            XCTAssertGreaterThan(need, have)
            XCTAssertTrue("\(e)".contains("TB") || "\(e)".contains("GB"), "\(e)")
        }
        let limit = (bytes: 3e9, source: "test limit")
        XCTAssertThrowsError(try pit.checkConfiguration(ModelOptions(imageSize: 2000), batchSize: 1, training: true, available: limit))
        // What a real run uses fits easily.
        XCTAssertNoThrow(try pit.checkConfiguration(ModelOptions(imageSize: 224), batchSize: 64, training: true, available: limit))
        XCTAssertNoThrow(try pit.checkConfiguration(ModelOptions(imageSize: 40), batchSize: 256, training: true, available: limit))
        // Training keeps every block's activations, inference one block's: the estimate grows with the batch.
        let small = try XCTUnwrap(pit.memoryEstimate(ModelOptions(imageSize: 224), batchSize: 1, training: true))
        let large = try XCTUnwrap(pit.memoryEstimate(ModelOptions(imageSize: 224), batchSize: 8, training: true))
        let eval = try XCTUnwrap(pit.memoryEstimate(ModelOptions(imageSize: 224), batchSize: 8, training: false))
        XCTAssertEqual(large.activationBytes, 8 * small.activationBytes, accuracy: 1)
        XCTAssertLessThan(eval.totalBytes, large.totalBytes)
        // Weights: within 15% of the real count for a plain ViT (4 copies when training).
        let vit = try ModelRegistry.entry("vit_b_16_224")
        let w = try XCTUnwrap(vit.memoryEstimate(ModelOptions(), batchSize: 1, training: false)).parameterBytes / 4
        XCTAssertEqual(w / 86.6e6, 1, accuracy: 0.15)
    }
}
