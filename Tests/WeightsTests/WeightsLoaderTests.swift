import Foundation
@testable import Models
import Tensor
import TestSupport
import Trainer
import XCTest

/// Format recognition, bad files, the registry path (`zoo validate/predict/train --ckpt_path x.ckpt`),
/// `zoo export`, and the pretrained-weights cache.
final class WeightsLoaderTests: XCTestCase {
    var temp: DataTempFolder!
    var folder: URL { URL(fileURLWithPath: temp.path) }

    override func setUpWithError() throws { temp = try DataTempFolder("weights") }
    override func tearDown() { temp.cleanup() }

    func write(_ name: String, _ data: Data) throws -> String {
        let p = folder.appendingPathComponent(name).path
        try data.write(to: URL(fileURLWithPath: p))
        return p
    }

    func assertError(_ body: @autoclosure () throws -> Any, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            for p in parts { XCTAssertTrue("\(error)".contains(p), "'\(error)' lacks '\(p)'", file: file, line: line) }
        }
    }

    func testBadFilesGiveClearErrors() throws {
        let good = try Data(contentsOf: URL(fileURLWithPath: FixtureModels.ckptPath("pit_tiny")))
        let model = FixtureModels.model("pit_tiny")
        let keys = FixtureModels.keys(model)
        // Truncated in the middle of an entry: the error names the file, the entry and the byte.
        let truncated = try write("truncated.ckpt", good.prefix(good.count / 2))
        assertError(try MindSporeCheckpointFile(path: truncated), contains: [truncated, "entry '0.blocks.", "truncated"])
        // Cut inside a tensor's content, at an entry boundary plus a few bytes.
        let cut = try write("cut.ckpt", good.prefix(good.count - 3))
        assertError(try MindSporeCheckpointFile(path: cut), contains: [cut, "head.bias", "truncated"])
        // Zero-filled.
        let zeros = try write("zeros.ckpt", Data(count: 4096))
        assertError(try loadWeights(path: zeros, modelName: "pit_ti"), contains: [zeros, "00 00 00"])
        assertError(try MindSporeCheckpointFile(path: zeros), contains: [zeros, "0x00"])
        // Encrypted (AES-GCM magic).
        let encrypted = try write("encrypted.ckpt", Data([0xD8, 0x5E, 0x3A, 0x7F]) + good.prefix(100))
        assertError(try loadWeights(path: encrypted, modelName: "pit_ti"), contains: [encrypted, "encrypted", "AES-GCM"])
        // Wrong family: a ViT file for a PiT model names every missing tensor.
        let vit = try MindSporeCheckpointFile(path: FixtureModels.ckptPath("vit_tiny"))
        XCTAssertThrowsError(try MindCVImport.stateDict(from: vit, family: "pit", expected: keys)) { error in
            guard case .missing(let p, let missing) = error as? WeightsError else { return XCTFail("\(error)") }
            XCTAssertEqual(p, FixtureModels.ckptPath("vit_tiny"))
            XCTAssertTrue(missing.contains("transformers.0.blocks.0.attn.qkv.weight (from transformers.0.blocks.0.attn.q.weight, transformers.0.blocks.0.attn.k.weight, transformers.0.blocks.0.attn.v.weight)"), "\(missing)")
            XCTAssertTrue(missing.contains("transformers.1.pool.fc.weight"), "\(missing)")
            XCTAssertGreaterThan(missing.count, 40)
        }
        // The registry path says the same for a registered model.
        assertError(try loadWeights(path: FixtureModels.ckptPath("vit_tiny"), modelName: "pit_ti"), contains: ["lacks", "transformers.1.pool.fc.weight", "another model or family"])
        // A .ckpt without a model name.
        assertError(try loadWeights(path: FixtureModels.ckptPath("vit_tiny"), modelName: nil), contains: ["--model"])
        // Old MindCV ViT layout.
        let old = try MindSporeCheckpointWriter.serialize([.init(tag: "backbone.transformer.layers.0.0.fn.norm.gamma", tensor: Tensor(shape: [2], [1, 1]))])
        assertError(try MindCVImport.stateDict(from: try MindSporeCheckpointFile(data: old, path: "old.ckpt"), family: "vit", expected: ["norm.weight"]),
                    contains: ["old.ckpt", "old layout"])
        // A length that lies about the content.
        var lying = try MindSporeCheckpointWriter.serialize([.init(tag: "head.bias", tensor: Tensor(shape: [3], [1, 2, 3]))])
        lying[lying.count - 13] = 4   // tensor_content length 12 → 4: the rest reads as other fields
        assertError(try MindSporeCheckpointFile(data: lying, path: "lying.ckpt"), contains: ["lying.ckpt", "head.bias", "needs 12 bytes"])
    }

    /// `CheckpointInfo` (what validate, predict and train use) reads `.ckpt` files by content, whatever
    /// the extension; safetensors keep working.
    func testCheckpointInfoReadsBothFormats() throws {
        let ptTi = try XCTUnwrap(ModelRegistry.create("pit_ti", options: ModelOptions(numClasses: 7)))
        let keys = FixtureModels.keys(ptTi)
        let state = ptTi.stateDict()
        let ckpt = folder.appendingPathComponent("weights.bin").path
        try MindSporeCheckpointWriter.write(try MindCVExport.entries(state, keys: keys, family: "pit"), to: ckpt)
        XCTAssertEqual(try WeightsFormat.detect(path: ckpt), .mindsporeCheckpoint)
        let info = try CheckpointInfo(path: ckpt, modelName: "pit_ti")
        XCTAssertEqual(Set(info.weights.keys), Set(keys))
        for k in keys { XCTAssertEqual(bitPatterns(try XCTUnwrap(info.weights[k])), bitPatterns(try XCTUnwrap(state[k])), k) }
        let session = try InferenceSession(modelName: "pit_ti", checkpoint: ckpt)
        XCTAssertEqual(session.numClasses, 7)
        let st = folder.appendingPathComponent("weights.ckpt").path   // safetensors under a .ckpt name
        try SafeTensorsFile.write(state, to: st)
        XCTAssertEqual(try WeightsFormat.detect(path: st), .safetensors)
        XCTAssertEqual(Set(try CheckpointInfo(path: st, modelName: "pit_ti").weights.keys), Set(keys))
    }

    /// `zoo export` to MindCV and back, and to safetensors: bit-identical to the model it read.
    func testZooExport() throws {
        let zoo = try XCTUnwrap(BuiltExecutables.zoo, "zoo is not built")
        let model = try ModelRegistry.create("visformer_tiny", options: ModelOptions(numClasses: 5, seed: 3))
        let source = folder.appendingPathComponent("src.safetensors").path
        try SafeTensorsFile.write(model.stateDict(), to: source)
        let ckpt = folder.appendingPathComponent("out.ckpt").path
        let back = folder.appendingPathComponent("back.safetensors").path
        for args in [["--ckpt_path", source, "--format", "mindcv", "--output", ckpt],
                     ["--ckpt_path", ckpt, "--format", "safetensors", "--output", back]] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: zoo)
            p.arguments = ["export", "--model", "visformer_tiny"] + args
            let err = Pipe()
            p.standardError = err
            p.standardOutput = Pipe()
            try p.run()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
        }
        let file = try MindSporeCheckpointFile(path: ckpt)
        XCTAssertNotNil(file.entry("stem.1.moving_variance"))
        XCTAssertNotNil(file.entry("stage1.0.norm2.gamma"))
        let reread = try SafeTensorsFile(path: back).tensors
        let original = model.stateDict()
        XCTAssertEqual(Set(reread.keys), Set(original.keys))
        for (k, v) in original { XCTAssertEqual(bitPatterns(try XCTUnwrap(reread[k])), bitPatterns(v), k) }
    }

    /// The pretrained cache: a `file://` mirror is copied into `VITZOO_HOME` once; a bad download
    /// is refused and not cached; an unreachable host names the URL and where to put the file.
    func testPretrainedCache() throws {
        let mirror = folder.appendingPathComponent("mirror")
        try FileManager.default.createDirectory(at: mirror.appendingPathComponent("pit"), withIntermediateDirectories: true)
        let published = mirror.appendingPathComponent("pit/pit_ti-e647a593.ckpt").path
        try FileManager.default.copyItem(atPath: FixtureModels.ckptPath("pit_tiny"), toPath: published)
        let home = folder.appendingPathComponent("home").path
        let base = "file://" + mirror.path + "/"
        let env = ["VITZOO_HOME": home, "VITZOO_WEIGHTS_URL": base]
        XCTAssertEqual(try PretrainedWeights.url(for: "pit_ti", environment: env), base + "pit/pit_ti-e647a593.ckpt")
        let cached = try PretrainedWeights.localFile(for: "pit_ti", environment: env)
        XCTAssertEqual(cached, home + "/weights/pit_ti-e647a593.ckpt")
        XCTAssertEqual(FileManager.default.contents(atPath: cached), FileManager.default.contents(atPath: published))
        try FileManager.default.removeItem(atPath: published)
        XCTAssertEqual(try PretrainedWeights.localFile(for: "pit_ti", environment: env), cached)   // from the cache now
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: home + "/weights"), ["pit_ti-e647a593.ckpt"])

        // A download that is not a checkpoint (an error page) is refused and nothing is cached.
        try FileManager.default.createDirectory(at: mirror.appendingPathComponent("vit"), withIntermediateDirectories: true)
        try Data("<html>not found</html>".utf8).write(to: mirror.appendingPathComponent("vit/vit_b_32_224-4a1c9d8e.ckpt"))
        assertError(try PretrainedWeights.localFile(for: "vit_b_32_224", environment: env), contains: ["vit_b_32_224-4a1c9d8e.ckpt", "not a usable checkpoint"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: home + "/weights/vit_b_32_224-4a1c9d8e.ckpt"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: home + "/weights").count, 1)

        // Offline: the message names the URL and the cache path.
        let offline = ["VITZOO_HOME": home, "VITZOO_WEIGHTS_URL": "http://127.0.0.1:9/"]
        assertError(try PretrainedWeights.localFile(for: "pvt_tiny", environment: offline),
                    contains: ["http://127.0.0.1:9/pvt/pvt_tiny-6abb953d.ckpt", home + "/weights/pvt_tiny-6abb953d.ckpt"])
        assertError(try PretrainedWeights.localFile(for: "vit_b_16_224", environment: env), contains: ["no published"])
    }
}
