import Foundation
import Models
import Tensor
import XCTest
@testable import Trainer

/// The `numerics` recipe key and its effect on the model and the evaluation data config
/// (docs/numerics.md).
final class NumericsRecipeTests: XCTestCase {
    func testRecipeKeyAndInferenceSession() throws {
        XCTAssertNil(try Recipe.parse(yaml: "model: pit_ti\n", source: "t.yaml").numerics)
        XCTAssertEqual(try Recipe.parse(yaml: "model: pit_ti\nnumerics: timm\n", source: "t.yaml").numerics, "timm")
        XCTAssertEqual(try Recipe.parse(yaml: "model: pit_ti\n", source: "t.yaml", overrides: ["--numerics", "mindcv"]).numerics, "mindcv")
        XCTAssertThrowsError(try Recipe.parse(yaml: "model: pit_ti\nnumerics: tf\n", source: "t.yaml")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("numerics") && text.contains("mindcv, timm"), text)
        }

        // Without a checkpoint the session builds the model fresh: enough to see the choice.
        let timm = try InferenceSession(modelName: "pit_ti", checkpoint: nil, numerics: .timm, randomWeights: true)
        XCTAssertEqual(timm.entry.dataConfig.cropPct, 0.9)
        XCTAssertEqual((timm.model as? PiT)?.config.gelu, GELUApproximation.none)
        let named = try InferenceSession(modelName: "pit_ti_224", checkpoint: nil, randomWeights: true)
        XCTAssertEqual(named.entry.numerics, .timm)
        XCTAssertEqual((named.model as? PiT)?.config.gelu, GELUApproximation.none)
        let mindcv = try InferenceSession(modelName: "pit_ti_224", checkpoint: nil, numerics: .mindcv, randomWeights: true)
        XCTAssertEqual(mindcv.entry.dataConfig.cropPct, 0.875)
        XCTAssertEqual((mindcv.model as? PiT)?.config.gelu, GELUApproximation.tanh)
    }
}
