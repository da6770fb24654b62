import Foundation
import XCTest
import DataPipeline
import TestSupport

/// The `zoo` command line: argument errors are clear, name the file, key or model at fault, and
/// suggest the closest valid spelling.
final class CLITests: XCTestCase {
    func zoo(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try BuiltExecutables.runZoo(arguments, environment: environment)
    }

    var recipe: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("recipes/pit/pit_ti_ascend.yaml").path
    }

    func testUnknownRecipeFlagSuggestsTheClosestKey() throws {
        let r = try zoo(["train", "--config", recipe, "--batchsize", "8"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("batchsize") && r.output.contains("batch_size"), r.output)
    }

    func testMissingRecipeFileIsNamed() throws {
        let r = try zoo(["train", "--config", "/nonexistent/recipe.yaml"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("/nonexistent/recipe.yaml"), r.output)
    }

    func testBadValueTypeNamesTheKey() throws {
        let r = try zoo(["train", "--config", recipe, "--batch_size", "many"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("batch_size"), r.output)
    }

    func testMissingDataDirIsNamedBeforeTraining() throws {
        let r = try zoo(["train", "--config", recipe, "--data_dir", "/nonexistent/imagenet"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("/nonexistent/imagenet"), r.output)
    }

    func testUnknownModelSuggestsRegisteredNames() throws {
        let r = try zoo(["validate", "--model", "pit_tiny", "--data_dir", "/tmp"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("pit_ti"), r.output)
    }

    func testValidateRequiresItsOptions() throws {
        let r = try zoo(["validate", "--data_dir", "/tmp"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("--model"), r.output)
    }

    func testPredictNeedsImages() throws {
        let r = try zoo(["predict", "--model", "pit_ti", "--ckpt_path", "/nonexistent.safetensors"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.lowercased().contains("image"), r.output)
    }

    func testListJSONHasTheParameterCounts() throws {
        let r = try zoo(["list", "--json"])
        XCTAssertEqual(r.status, 0, r.output)
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.count, 25)
        let pit = try XCTUnwrap(rows.first { $0["name"] as? String == "pit_ti" })
        XCTAssertEqual(pit["trainable_params"] as? Int, 4_847_272)
        XCTAssertEqual(pit["params_without_head"] as? Int, 4_590_272)
        XCTAssertEqual(rows.first { $0["name"] as? String == "visformer_tiny" }?["stored_params"] as? Int, 10_334_072)
    }
}
