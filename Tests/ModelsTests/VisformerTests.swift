import Foundation
import Models
import Tensor
import XCTest
import TestSupport

final class VisformerTests: XCTestCase {
    /// The v1 fixtures' configuration (manifest.json `mindcv_kwargs`).
    static func v1FixtureConfig() -> VisformerConfig {
        VisformerConfig(imageSize: 64, numClasses: 7, initChannels: 8, embedDim: 24, depths: [0, 2, 1, 1], numHeads: [2, 2, 2, 2])
    }

    static func v2FixtureConfig() -> VisformerConfig {
        VisformerConfig(imageSize: 64, numClasses: 7, initChannels: 8, embedDim: 32, depths: [1, 1, 2, 1], numHeads: [1, 2, 2, 4],
                        qkScaleExponent: -0.5)
    }

    func testFixtureVisformerTiny() throws {
        try checkFixture("visformer_tiny", model: Visformer(config: Self.v1FixtureConfig()))
    }

    func testFixtureVisformerTinyFanIn() throws {
        try checkFixture("visformer_tiny_fanin", model: Visformer(config: Self.v1FixtureConfig()))
    }

    func testFixtureVisformerTinyV2() throws {
        try checkFixture("visformer_tiny_v2", model: Visformer(config: Self.v2FixtureConfig()))
    }

    func testFixtureVisformerTinyV2FanIn() throws {
        try checkFixture("visformer_tiny_v2_fanin", model: Visformer(config: Self.v2FixtureConfig()))
    }

    /// docs/models.md §0–§1: trainable parameters (head included) and trainable + BN running statistics.
    func testParameterCountsOfPresets() throws {
        let expected: [String: (Int, Int)] = [
            "visformer_tiny": (10_321_368, 10_334_072), "visformer_tiny_v2": (9_371_056, 9_383_392),
            "visformer_small": (40_219_592, 40_245_000), "visformer_small_v2": (23_492_168, 23_518_344),
        ]
        for (name, (trainable, stored)) in expected {
            let entry = try ModelRegistry.entry(name)
            XCTAssertEqual(entry.countingRule, .withBufferStatistics)
            XCTAssertEqual(entry.dataConfig.cropPct, 0.875)
            let model = entry.build(ModelOptions())
            XCTAssertEqual(model.trainableParameterCount, trainable, name)
            XCTAssertEqual(model.storedParameterCount, stored, name)
            let counts = ParameterCounts(model: model, classifierName: entry.dataConfig.classifier)
            XCTAssertEqual(counts.count(for: entry.countingRule), stored, name)
            let names = Set(model.namedParameters().map { $0.name })
            XCTAssertTrue(names.contains(entry.dataConfig.firstConv + ".weight"), name)
        }
    }

    func testNamesShapesAndScale() {
        let v1 = Visformer(config: Self.v1FixtureConfig())
        XCTAssertEqual(v1.namedParameters().count, 48)
        XCTAssertEqual(v1.namedBuffers().count, 22)
        XCTAssertEqual(v1.trainableParameterCount, 47867)
        let s1 = Dictionary(uniqueKeysWithValues: v1.namedParameters().map { ($0.name, $0.parameter.shape) })
        XCTAssertEqual(s1["patch_embed1.proj.weight"], [12, 8, 4, 4])
        XCTAssertEqual(s1["pos_embed1"], [1, 12, 8, 8])
        XCTAssertEqual(s1["stage1.0.mlp.conv2.weight"], [24, 3, 3, 3])
        XCTAssertEqual(s1["stage3.0.attn.qkv.weight"], [144, 48, 1, 1])
        XCTAssertNil(s1["stage1.0.norm1.weight"])
        XCTAssertEqual(v1.noWeightDecay, ["pos_embed1", "pos_embed2", "pos_embed3"])
        let v2 = Visformer(config: Self.v2FixtureConfig())
        XCTAssertEqual(v2.namedParameters().count, 61)
        XCTAssertEqual(v2.namedBuffers().count, 28)
        XCTAssertEqual(v2.trainableParameterCount, 93991)
        XCTAssertEqual(v2.noWeightDecay, ["pos_embed0", "pos_embed1", "pos_embed2", "pos_embed3"])
        // v1: hd^-0.25 on q and k = 1/√hd; v2: hd^-0.5 on each = 1/hd.
        XCTAssertEqual(VisformerAttentionScale.of(v1, stage: 3), 1 / Float(24).squareRoot(), accuracy: 1e-7)
        XCTAssertEqual(VisformerAttentionScale.of(v2, stage: 3), 1 / 16, accuracy: 1e-7)
    }

    func testOptionsAndHead() throws {
        var config = Self.v1FixtureConfig()
        config.numClasses = 0
        let m = Visformer(config: config)
        XCTAssertFalse(m.namedParameters().contains { $0.name.hasPrefix("head.") })
        m.eval()
        var g = RandomGenerator(seed: 1)
        let x = Tensor.randn([2, 3, 64, 64], generator: &g)
        XCTAssertEqual(withNoGrad { m(x) }.shape, [2, 48])
        m.resetClassifier(numClasses: 4)
        XCTAssertEqual(withNoGrad { m(x) }.shape, [2, 4])
        XCTAssertEqual(withNoGrad { m.forwardHead(m.forwardFeatures(x), preLogits: true) }.shape, [2, 48])
        let built = try ModelRegistry.create("visformer_tiny_v2", options: ModelOptions(numClasses: 10, inChannels: 1, imageSize: 160,
                                                                                        dropPathRate: 0.1, seed: 5))
        let vis = try XCTUnwrap(built as? Visformer)
        XCTAssertEqual(vis.config.numClasses, 10)
        XCTAssertEqual(vis.posEmbeds[0]?.shape, [1, 48, 40, 40])
        XCTAssertEqual(vis.posEmbeds[3]?.shape, [1, 384, 5, 5])
        XCTAssertEqual(vis.namedParameters().first { $0.name == "stem.0.weight" }?.parameter.shape, [24, 1, 7, 7])
    }
}

enum VisformerAttentionScale {
    static func of(_ m: Visformer, stage: Int) -> Float {
        let hd = m.config.headDim(stage: stage)
        let s = Float(pow(Double(hd), Double(m.config.qkScaleExponent)))
        return s * s
    }
}

final class VisformerGroupedConvTests: XCTestCase {
    /// The MLP's grouped 3×3 conv fast path gives the engine conv2d's logits and gradients (v2 layout:
    /// spatial-conv stages 0 and 1; odd grid sizes exercise the borders).
    func testFastGroupedConvMatchesConv2d() throws {
        for (image, batch) in [(64, 2), (44, 3)] {
            var config = VisformerTests.v2FixtureConfig()
            config.imageSize = image
            config.fastGroupedConv = false
            let reference = Visformer(config: config)
            config.fastGroupedConv = true
            let fast = Visformer(config: config)
            try fast.load(stateDict: reference.stateDict().mapValues { $0.copy() })
            var g = RandomGenerator(seed: 7)
            let x = Tensor.randn([batch, 3, image, image], generator: &g)
            var results: [(Tensor, [String: Tensor])] = []
            for model in [reference, fast] {
                model.train()
                let logits = model(x)
                (logits * logits).sum().backward()
                results.append((logits, Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.parameter.grad!) })))
            }
            XCTAssertLessThanOrEqual(maxAbsDiff(results[0].0, results[1].0), 1e-5 * maxAbs(results[0].0))
            for (name, ref) in results[0].1 where !name.hasPrefix("patch_embed") {
                let got = try XCTUnwrap(results[1].1[name])
                XCTAssertLessThanOrEqual(maxAbsDiff(got, ref), 1e-4 * maxAbs(ref) + 1e-7, "\(name) at \(image)")
            }
        }
    }
}
