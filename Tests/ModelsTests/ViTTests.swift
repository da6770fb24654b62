import Foundation
@testable import Models
import Tensor
import XCTest
import TestSupport

final class ViTTests: XCTestCase {
    /// The fixtures' `vit_tiny` configuration (manifest.json `mindcv_kwargs`).
    static let tinyConfig = ViTConfig(imageSize: 32, patchSize: 8, embedDim: 32, depth: 2, heads: 4, mlpRatio: 4, qkvBias: true)

    func tiny(_ options: ModelOptions = ModelOptions(numClasses: 7)) -> ViT { ViT(config: Self.tinyConfig, options: options) }

    func testFixtureViTTiny() throws {
        let m = tiny()
        try checkFixture("vit_tiny", model: m)
        try reportFixtureMargins("vit_tiny", model: m)
    }

    func testFixtureViTTinyFanIn() throws {
        let m = tiny()
        try checkFixture("vit_tiny_fanin", model: m)
        try reportFixtureMargins("vit_tiny_fanin", model: m)
    }

    func testCanonicalNamesAndShapes() {
        let m = tiny()
        let shapes = Dictionary(uniqueKeysWithValues: m.namedParameters().map { ($0.name, $0.parameter.shape) })
        XCTAssertEqual(shapes["pos_embed"], [1, 17, 32])
        XCTAssertEqual(shapes["patch_embed.proj.weight"], [32, 3, 8, 8])
        XCTAssertEqual(shapes["blocks.1.attn.qkv.weight"], [96, 32])
        XCTAssertEqual(m.trainableParameterCount, 32455)
        XCTAssertEqual(Self.tinyConfig.parameterCount(numClasses: 7), 32455)
    }

    /// docs/models.md §0 totals and the ViT model-card rule (head excluded), from the built registry
    /// models (weights left uninitialised) and from the closed form.
    func testParameterCounts() throws {
        let expected: [(String, ViTConfig, Int, Int)] = [
            ("vit_b_16_224", .b16(), 86_567_656, 85_798_656), ("vit_b_16_384", .b16(imageSize: 384), 86_859_496, 86_090_496),
            ("vit_l_16_224", .l16(), 304_326_632, 303_301_632), ("vit_l_16_384", .l16(imageSize: 384), 304_715_752, 303_690_752),
            ("vit_b_32_224", .b32(), 88_224_232, 87_455_232), ("vit_b_32_384", .b32(imageSize: 384), 88_297_192, 87_528_192),
            ("vit_l_32_224", .l32(), 306_535_400, 305_510_400),
        ]
        for (name, c, total, noHead) in expected {
            XCTAssertEqual(c.parameterCount(), total, name)
            XCTAssertEqual(c.parameterCount(numClasses: 0), noHead, name)
            let e = try ModelRegistry.entry(name)
            XCTAssertEqual(e.countingRule, .headExcluded)
            XCTAssertEqual(e.defaultImageSize, c.imageSize)
            XCTAssertEqual(e.dataConfig.inputSize, [3, c.imageSize, c.imageSize])
            let built = Initializer.withoutInitialization { e.build(ModelOptions()) }
            XCTAssertEqual(built.trainableParameterCount, total, name)
            XCTAssertEqual(ParameterCounts(model: built, classifierName: "head").withoutHead, noHead, name)
        }
        // closed-form per-block count of §1: 12·D² + 13·D
        var rng = RandomGenerator(seed: 0)
        XCTAssertEqual(ViTBlock(dim: 768, heads: 12, mlpRatio: 4, qkvBias: true, eps: 1e-7, gelu: .tanh, projDrop: 0,
                                attnDrop: 0, dropPath: 0, state: ModelState(), generator: &rng).trainableParameterCount,
                       12 * 768 * 768 + 13 * 768)
        for opts in [ModelOptions(numClasses: 0, inChannels: 1, imageSize: 48), ModelOptions(numClasses: 5, imageSize: 64)] {
            let c = ViTConfig(patchSize: 16, embedDim: 48, depth: 3, heads: 3)
            XCTAssertEqual(ViT(config: c, options: opts).trainableParameterCount,
                           c.parameterCount(numClasses: opts.numClasses, inChannels: opts.inChannels, imageSize: opts.imageSize))
        }
    }
    func testHeadResetFeaturesAndNoWeightDecay() {
        let m = tiny()
        var g = RandomGenerator(seed: 5)
        let x = Tensor.randn([3, 3, 32, 32], generator: &g)
        m.eval()
        let f = withNoGrad { m.forwardFeatures(x) }
        XCTAssertEqual(f.shape, [3, 32])
        XCTAssertEqual(withNoGrad { m.forwardHead(f, preLogits: true) }.shape, [3, 32])
        XCTAssertEqual(withNoGrad { m(x) }.shape, [3, 7])
        m.resetClassifier(numClasses: 4)
        XCTAssertEqual(withNoGrad { m(x) }.shape, [3, 4])
        m.resetClassifier(numClasses: 0)
        XCTAssertEqual(withNoGrad { m(x) }.shape, [3, 32])
        XCTAssertEqual(m.noWeightDecay, ["pos_embed", "cls_token"])
    }

    /// Position table sized for the requested image size; drop-path linspace(0, rate, depth).
    func testOptions() {
        let m = ViT(config: Self.tinyConfig, options: ModelOptions(numClasses: 2, inChannels: 1, imageSize: 48, dropPathRate: 0.3))
        XCTAssertEqual(m.posEmbed.shape, [1, 37, 32])
        XCTAssertEqual(m.patchEmbed.weight.shape, [32, 1, 8, 8])
        XCTAssertEqual(m.blocks.map { $0.dropPath.p }, [0, 0.3])
        var g = RandomGenerator(seed: 1)
        XCTAssertEqual(withNoGrad { m(Tensor.randn([1, 1, 48, 48], generator: &g)) }.shape, [1, 2])
    }

    /// MindCV's init: Xavier-uniform Dense weights with zero bias; patch conv Xavier on [D, C·p·p].
    func testInitialisation() {
        let m = ViT(config: ViTConfig(patchSize: 16, embedDim: 64, depth: 1, heads: 4), options: ModelOptions(numClasses: 10))
        let p = Dictionary(uniqueKeysWithValues: m.namedParameters().map { ($0.name, $0.parameter.value) })
        let qkvBound = (6 / Float(64 + 192)).squareRoot()
        XCTAssertLessThanOrEqual(maxAbs(p["blocks.0.attn.qkv.weight"]!), qkvBound)
        XCTAssertGreaterThan(maxAbs(p["blocks.0.attn.qkv.weight"]!), 0.95 * qkvBound)
        XCTAssertEqual(maxAbs(p["blocks.0.attn.qkv.bias"]!), 0)
        let convBound = (6 / Float(3 * 256 + 64)).squareRoot()
        XCTAssertLessThanOrEqual(maxAbs(p["patch_embed.proj.weight"]!), convBound)
        XCTAssertGreaterThan(maxAbs(p["patch_embed.proj.weight"]!), 0.95 * convBound)
        XCTAssertLessThanOrEqual(maxAbs(p["cls_token"]!), 0.04)
    }
}
