#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import Tensor
import Models
import DataPipeline
import TestSupport

/// Issue 12 through the built `zoo`: each row a hostile user found ends in a clear message naming
/// what is at fault (or a correct, complete report), never a signal, a hang or a silent wrong number.
final class HostileInputCLITests: XCTestCase {
    var folder: DataTempFolder!
    /// pit_ti weights for 2 classes at 32 px.
    var weights: String { folder.path + "/pit_ti_2.safetensors" }

    override func setUpWithError() throws {
        folder = try DataTempFolder("hostile-cli")
        try makeImageFolder(folder, split: "train", classes: ["a", "b"], perClass: 2, size: (24, 24))
        try makeImageFolder(folder, split: "val", classes: ["a", "b"], perClass: 2, size: (24, 24))
        let model = try ModelRegistry.create("pit_ti", options: ModelOptions(numClasses: 2, imageSize: 32))
        try SafeTensorsFile.write(model.stateDict(), to: weights)
    }

    override func tearDown() { folder.cleanup() }

    func zoo(_ arguments: [String], timeout: TimeInterval = 120) throws -> (status: Int32, output: String) {
        let r = try BuiltExecutables.runZoo(arguments, timeout: timeout)
        XCTAssertFalse(r.timedOut, "zoo \(arguments.joined(separator: " ")) did not finish in \(timeout) s")
        XCTAssertTrue(r.status == 0 || r.status == 1 || r.status == 64, "exit \(r.status) (a signal?) for \(arguments): \(r.output)")
        XCTAssertFalse(r.output.contains("Fatal error"), r.output)
        return (r.status, r.output)
    }

    var recipe: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("recipes/pit/pit_ti_ascend.yaml").path
    }

    func validate(_ extra: [String]) throws -> (status: Int32, output: String) {
        try zoo(["validate", "--model", "pit_ti", "--data_dir", folder.path, "--image_resize", "32", "--crop_pct", "1",
                 "--batch_size", "2", "--num_parallel_workers", "1"] + extra)
    }

    /// Row 12: no weights means no score, unless asked for by name.
    func testValidateWithoutWeightsIsRefused() throws {
        let r = try validate([])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("--ckpt_path") && r.output.contains("--random_weights"), r.output)
        let random = try validate(["--random_weights", "--json"])
        XCTAssertEqual(random.status, 0, random.output)
        XCTAssertTrue(random.output.contains("\"images\":4"), random.output)
    }

    /// Row 4: a val folder with more classes than the head is refused, naming both counts.
    func testHeadSmallerThanTheClassFoldersIsRefused() throws {
        try makeImageFolder(folder, split: "val", classes: ["a", "b", "c"], perClass: 2, size: (24, 24))
        let r = try validate(["--ckpt_path", weights])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("3 class folders") && r.output.contains("2 outputs"), r.output)
    }

    /// Row 9: NaN weights are refused naming the tensor, for validate and for predict with --output.
    func testNonFiniteWeightsAreRefused() throws {
        var state = try SafeTensorsFile(path: weights).tensors
        let head = try XCTUnwrap(state["head.weight"])
        state["head.weight"] = Tensor(shape: head.shape, [Float](repeating: .nan, count: head.count))
        let bad = folder.path + "/nan.safetensors"
        try SafeTensorsFile.write(state, to: bad)
        let r = try validate(["--ckpt_path", bad, "--json"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("head.weight") && r.output.contains("NaN"), r.output)
        let out = folder.path + "/preds.json"
        let p = try zoo(["predict", "--model", "pit_ti", "--ckpt_path", bad, "--image_resize", "32", "--output", out,
                         folder.path + "/val/a/img0.jpg"])
        XCTAssertNotEqual(p.status, 0)
        XCTAssertTrue(p.output.contains("head.weight"), p.output)
        XCTAssertFalse(p.output.contains("EncodingError"), p.output)
    }

    /// Row 11: predict refuses what a recipe refuses.
    func testPredictRefusesBadTransformSettings() throws {
        let image = folder.path + "/val/a/img0.jpg"
        for (flag, value, key) in [("--interpolation", "foo", "interpolation"), ("--crop_pct", "5", "crop_pct"),
                                   ("--crop_pct", "1e9", "crop_pct"), ("--crop_pct", "0", "crop_pct")] {
            let r = try zoo(["predict", "--model", "pit_ti", "--ckpt_path", weights, "--image_resize", "32", flag, value, image])
            XCTAssertNotEqual(r.status, 0, "\(flag) \(value)")
            XCTAssertTrue(r.output.contains(key) && r.output.contains(value == "1e9" ? "1000000000" : value), r.output)
        }
        let ok = try zoo(["predict", "--model", "pit_ti", "--ckpt_path", weights, "--image_resize", "32", "--interpolation", "bilinear",
                          "--crop_pct", "0.9", "--topk", "2", image])
        XCTAssertEqual(ok.status, 0, ok.output)
    }

    /// Rows 5 and 13: a truncated PNG is left out and reported; a non-UTF-8 name is read.
    func testValidateReportsUnreadableImagesAndReadsByteNames() throws {
        let png = try ImageEncoder.png(syntheticImage(width: 24, height: 24, seed: 3))
        try folder.write("val/a/truncated.png", Array(png.prefix(40)))
        let name = RawPath(folder.path + "/val/b").appending(Array("x".utf8) + [0xFF] + Array(".png".utf8))
        let fd = name.withCString { open($0!, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = png.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let r = try validate(["--ckpt_path", weights, "--json"])
        XCTAssertEqual(r.status, 0, r.output)
        let line = try XCTUnwrap(r.output.split(separator: "\n").last { $0.hasPrefix("{") })
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(obj["images"] as? Int, 5, "4 images + the non-UTF-8 one; the truncated one left out")
        XCTAssertEqual(obj["skipped"] as? Int, 1)
        XCTAssertEqual((obj["skipped_paths"] as? [String])?.map { ($0 as NSString).lastPathComponent }, ["truncated.png"])
        let text = try validate(["--ckpt_path", weights])
        XCTAssertTrue(text.output.contains("1 unreadable images left out") && text.output.contains("truncated.png"), text.output)
    }

    /// Row 6: a FIFO passed to predict is refused at once.
    func testPredictRefusesAFIFOWithoutBlocking() throws {
        let fifo = folder.path + "/x.png"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let r = try zoo(["predict", "--model", "pit_ti", "--ckpt_path", weights, "--image_resize", "32", fifo], timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("FIFO") && r.output.contains(fifo), r.output)
    }

    func train(_ extra: [String]) throws -> (status: Int32, output: String) {
        try zoo(["train", "--config", recipe, "--data_dir", folder.path, "--ckpt_save_dir", folder.path + "/ckpt",
                 "--batch_size", "2", "--epoch_size", "1", "--num_parallel_workers", "1"] + extra)
    }

    /// Rows 1, 2, 15 and 8: sizes a model cannot run are refused before any kernel runs.
    func testTrainRefusesImpossibleImageSizes() throws {
        let cases: [([String], [String])] = [
            (["--model", "pvt_tiny", "--image_resize", "16"], ["image size 16", "pvt_tiny", "at least 32"]),
            (["--model", "pit_ti", "--image_resize", "8"], ["image size 8", "at least 16"]),
            (["--model", "pit_ti", "--image_resize", "15"], ["image size 15", "at least 16"]),
            (["--model", "convit_tiny", "--image_resize", "8"], ["at least 16"]),
            (["--model", "visformer_tiny", "--image_resize", "8"], ["at least 31"]),
            (["--model", "vit_b_32_224", "--image_resize", "20"], ["at least 32"]),
            (["--model", "pit_ti", "--image_resize", "100000"], ["needs about", "available"]),
        ]
        for (args, expected) in cases {
            let r = try train(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            for e in expected { XCTAssertTrue(r.output.contains(e), "\(args): expected '\(e)' in: \(r.output)") }
        }
    }

    /// Row 7: a recipe nested 5,000 brackets deep is refused with the line, not a stack overflow.
    func testDeeplyNestedRecipeIsRefused() throws {
        let deep = folder.path + "/deep.yaml"
        try ("model: pit_ti\nmean: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "\n")
            .write(toFile: deep, atomically: true, encoding: .utf8)
        let r = try zoo(["train", "--config", deep, "--data_dir", folder.path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("deep.yaml:2") && r.output.contains("nested"), r.output)
    }
}
