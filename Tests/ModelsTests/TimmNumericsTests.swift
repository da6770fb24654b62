import Foundation
@testable import Models
import Tensor
import XCTest
import TestSupport

/// timm numerics (docs/numerics.md): the tiny fixture weights run with timm's definitions give timm's
/// own eval logits (Tests/Fixtures/timm_numerics.json), and measurably not MindCV's.
final class TimmNumericsTests: XCTestCase {
    /// timm's logits of a case and their relative gap to MindCV's.
    static func timmLogits(_ caseName: String) throws -> (logits: Tensor, gap: Double) {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("timm_numerics.json")))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let entry = try XCTUnwrap(root[caseName] as? [String: Any], "no case \(caseName) in timm_numerics.json")
        let rows = try XCTUnwrap(entry["logits_eval_timm"] as? [[Double]])
        let gap = try XCTUnwrap(entry["rel_gap_to_mindcv"] as? Double)
        return (Tensor(shape: [rows.count, rows[0].count], doubles: rows.flatMap { $0 }), gap)
    }

    /// Loads the fixture's weights into `model`, returns its eval logits and the fixture's (MindCV) logits.
    static func evalLogits(_ caseName: String, model: any Classifier) throws -> (ours: Tensor, mindcv: Tensor) {
        let st = try SafeTensorsFile(path: Fixtures.path("\(caseName).safetensors"))
        var weights: [String: Tensor] = [:]
        for (k, v) in st.tensors {
            if k.hasPrefix("param.") { weights[String(k.dropFirst(6))] = v }
            if k.hasPrefix("buffer.") { weights[String(k.dropFirst(7))] = v.copy() }
        }
        try model.load(stateDict: weights, source: "\(caseName).safetensors")
        model.eval()
        let input = try XCTUnwrap(st.tensors["input"])
        return (withNoGrad { model(input) }, try XCTUnwrap(st.tensors["logits_eval"]))
    }

    func check(_ caseName: String, _ model: any Classifier, file: StaticString = #filePath, line: UInt = #line) throws {
        let (expected, gap) = try Self.timmLogits(caseName)
        let (logits, mindcv) = try Self.evalLogits(caseName, model: model)
        let err = maxAbsDiff(logits, expected) / maxAbs(expected)
        XCTAssertLessThanOrEqual(err, 1e-5, "\(caseName): timm logits differ by \(err) of the largest", file: file, line: line)
        // Where the two numerics differ measurably, the switch matters: MindCV's logits miss the tolerance.
        if gap >= 1e-4 {
            XCTAssertGreaterThan(maxAbsDiff(mindcv, expected) / maxAbs(expected), 1e-5, "\(caseName)", file: file, line: line)
        }
        print(String(format: "%@: timm numerics max rel err %.2e (MindCV's numerics: %.2e)", caseName, err,
                     maxAbsDiff(mindcv, expected) / maxAbs(expected)))
    }

    func testPiT() throws {
        for c in ["pit_tiny", "pit_tiny_fanin"] {
            try check(c, PiT(config: PiTTests.tinyConfig.with(numerics: .timm), options: ModelOptions(numClasses: 7)))
        }
    }

    func testViT() throws {
        for c in ["vit_tiny", "vit_tiny_fanin"] {
            try check(c, ViT(config: ViTTests.tinyConfig.with(numerics: .timm), options: ModelOptions(numClasses: 7)))
        }
    }

    func testConViT() throws {
        for (c, config) in [("convit_tiny_g14", ConViTTests.g14), ("convit_tiny_g14_fanin", ConViTTests.g14),
                            ("convit_tiny_g8", ConViTTests.g8), ("convit_tiny_g8_fanin", ConViTTests.g8)] {
            try check(c, ConViT(config: config.with(numerics: .timm), options: ModelOptions(numClasses: 7)))
        }
    }

    func testVisformer() throws {
        for c in ["visformer_tiny", "visformer_tiny_fanin"] {
            try check(c, Visformer(config: VisformerTests.v1FixtureConfig().with(numerics: .timm), options: ModelOptions(numClasses: 7)))
        }
    }

    /// PVT v1 is not in timm: its `timm` numerics are the original code's (docs/numerics.md §1), with
    /// no reference logits to compare, so the switch itself is pinned here.
    func testPVTOriginalCodeNumerics() {
        let c = PVTConfig.tiny.with(numerics: .timm)
        XCTAssertEqual(c.gelu, GELUApproximation.none)
        XCTAssertEqual([c.patchEmbedNormEps, c.srNormEps, c.norm1Eps, c.norm2Eps, c.finalNormEps], [1e-5, 1e-5, 1e-6, 1e-6, 1e-6])
        XCTAssertEqual(PVTConfig.tiny.with(numerics: .mindcv), PVTConfig.tiny)
        let m = PVTConfig.tiny
        XCTAssertEqual([m.patchEmbedNormEps, m.srNormEps, m.norm1Eps, m.norm2Eps, m.finalNormEps], [1e-5, 1e-7, 1e-5, 1e-6, 1e-6])
        let pvt = PyramidVisionTransformer(config: PVTTests.fixtureConfig().with(numerics: .timm), options: ModelOptions(numClasses: 7))
        XCTAssertEqual(pvt.stages[0].blocks[0].attn.norm?.eps, 1e-5)
        XCTAssertEqual(pvt.stages[0].blocks[0].norm1.eps, 1e-6)
        XCTAssertEqual(try ModelRegistry.entry("pvt_tiny", numerics: .timm).dataConfig.cropPct, 0.875)
    }

    /// timm's names resolve to the same architectures with timm numerics and data config; the
    /// registered names keep MindCV's unless `numerics` says otherwise.
    func testTimmNamesAndNumericsOption() throws {
        let e = try ModelRegistry.entry("pit_ti_224")
        XCTAssertEqual(e.name, "pit_ti_224")
        XCTAssertEqual(e.family, "pit")
        XCTAssertEqual(e.numerics, .timm)
        XCTAssertEqual(e.dataConfig.cropPct, 0.9)
        XCTAssertEqual(e.dataConfig.interpolation, "bicubic")
        let small = ModelOptions(numClasses: 3, imageSize: 32)
        let pit = try XCTUnwrap(try ModelRegistry.create("pit_ti_224", options: small) as? PiT)
        XCTAssertEqual(pit.config.gelu, GELUApproximation.none)
        XCTAssertEqual(pit.trainableParameterCount, PiTConfig.ti.parameterCount(numClasses: 3, imageSize: 32))
        XCTAssertEqual((try ModelRegistry.create("pit_ti", options: small) as? PiT)?.config.gelu, .tanh)
        var timm = small
        timm.numerics = .timm
        XCTAssertEqual((try ModelRegistry.create("pit_ti", options: timm) as? PiT)?.config.gelu, GELUApproximation.none)
        XCTAssertEqual(try ModelRegistry.entry("pit_ti", numerics: .timm).dataConfig.cropPct, 0.9)
        XCTAssertEqual(try ModelRegistry.entry("pit_ti").dataConfig.cropPct, 0.875)
        // An explicit choice wins over the name's, also when re-fixed on a timm entry.
        for e in [try ModelRegistry.entry("pit_ti_224", numerics: .mindcv), try ModelRegistry.entry("pit_ti_224").with(numerics: .mindcv)] {
            XCTAssertEqual(e.dataConfig.cropPct, 0.875)
            XCTAssertEqual((e.build(small) as? PiT)?.config.gelu, .tanh)
        }

        let vit = try ModelRegistry.entry("vit_base_patch32_384")
        XCTAssertEqual(vit.dataConfig.inputSize, [3, 384, 384])
        XCTAssertEqual(vit.dataConfig.mean, [0.5, 0.5, 0.5])
        XCTAssertEqual(vit.dataConfig.cropPct, 1)
        let built = try XCTUnwrap(Initializer.withoutInitialization { try? ModelRegistry.create("vit_large_patch16_224") } as? ViT)
        XCTAssertEqual(built.config.layerNormEps, 1e-6)
        XCTAssertEqual(built.config.embedDim, 1024)
        // Every timm name maps onto a registered one.
        for (timmName, name) in ModelRegistry.timmNames { XCTAssertNoThrow(try ModelRegistry.entry(name), timmName) }

        let vis = try XCTUnwrap(try ModelRegistry.create("visformer_tiny_v2", options: ModelOptions(numClasses: 3, imageSize: 32, numerics: .timm))
                                as? Visformer)
        XCTAssertEqual(vis.config.qkScaleExponent, -0.25)
        XCTAssertEqual(try Numerics(parsing: "TIMM"), .timm)
        XCTAssertThrowsError(try Numerics(parsing: "tf")) { e in
            XCTAssertEqual("\(e)", "unknown numerics 'tf'; valid: 'mindcv', 'timm'")
        }
    }
}
