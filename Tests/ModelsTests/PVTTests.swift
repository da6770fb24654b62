import Models
import Tensor
import XCTest
import TestSupport

final class PVTTests: XCTestCase {
    /// The fixtures' configuration (manifest.json `mindcv_kwargs`).
    static func fixtureConfig() -> PVTConfig {
        PVTConfig(imageSize: 64, patchSize: 4, embedDims: [8, 16, 24, 32], numHeads: [1, 2, 3, 4],
                  mlpRatios: [8, 8, 4, 4], depths: [1, 2, 1, 2], srRatios: [8, 4, 2, 1], qkvBias: true)
    }

    static func tiny(_ options: ModelOptions = ModelOptions(numClasses: 7)) -> PyramidVisionTransformer {
        PyramidVisionTransformer(config: fixtureConfig(), options: options)
    }

    func testFixturePVTTiny() throws {
        try checkFixture("pvt_tiny", model: Self.tiny())
    }

    func testFixturePVTTinyFanIn() throws {
        try checkFixture("pvt_tiny_fanin", model: Self.tiny())
    }

    /// docs/models.md §0–§1: trainable parameters including the 1000-class head.
    func testParameterCountsOfPresets() throws {
        let expected = ["pvt_tiny": 13_229_288, "pvt_small": 24_485_864, "pvt_medium": 44_208_104, "pvt_large": 61_369_320]
        for (name, count) in expected {
            let entry = try ModelRegistry.entry(name)
            XCTAssertEqual(entry.countingRule, .total)
            XCTAssertEqual(entry.dataConfig.cropPct, 0.9)
            XCTAssertEqual(entry.dataConfig.interpolation, "bicubic")
            let model = Initializer.withoutInitialization { entry.build(ModelOptions()) }
            XCTAssertEqual(model.trainableParameterCount, count, name)
            XCTAssertEqual((model as? PyramidVisionTransformer)?.config.parameterCount(), count, name)
            XCTAssertEqual(model.storedParameterCount, count, name)
            let counts = ParameterCounts(model: model, classifierName: entry.dataConfig.classifier)
            XCTAssertEqual(counts.withoutHead, count - 513_000, name)
            let names = Set(model.namedParameters().map { $0.name })
            XCTAssertTrue(names.contains(entry.dataConfig.firstConv + ".weight"), name)
        }
    }

    /// The closed form agrees with the module tree without a head, with other input channels, at
    /// other sizes and with a bias-free qkv.
    func testClosedFormParameterCount() {
        var config = Self.fixtureConfig()
        for (classes, channels, size, bias) in [(7, 3, 64, true), (0, 1, 96, true), (10, 4, 40, false)] {
            config.qkvBias = bias
            let m = PyramidVisionTransformer(config: config, options: ModelOptions(numClasses: classes, inChannels: channels, imageSize: size))
            XCTAssertEqual(config.parameterCount(numClasses: classes, inChannels: channels, imageSize: size), m.trainableParameterCount,
                           "\(classes) classes, \(channels) channels, \(size) px")
        }
        XCTAssertEqual(Self.fixtureConfig().parameterCount(numClasses: 7), 69303)
    }

    func testNamesAndShapes() {
        let m = Self.tiny()
        let shapes = Dictionary(uniqueKeysWithValues: m.namedParameters().map { ($0.name, $0.parameter.shape) })
        XCTAssertEqual(shapes.count, 125)
        XCTAssertEqual(m.trainableParameterCount, 69303)
        XCTAssertEqual(shapes["pos_embed1"], [1, 256, 8])
        XCTAssertEqual(shapes["pos_embed4"], [1, 5, 32])
        XCTAssertEqual(shapes["cls_token"], [1, 1, 32])
        XCTAssertEqual(shapes["block1.0.attn.sr.weight"], [8, 8, 8, 8])
        XCTAssertEqual(shapes["block2.1.attn.kv.weight"], [32, 16])
        XCTAssertNil(shapes["block4.0.attn.sr.weight"])
        XCTAssertEqual(m.noWeightDecay, ["pos_embed1", "pos_embed2", "pos_embed3", "pos_embed4", "cls_token"])
    }

    func testOptionsHeadAndOtherSizes() throws {
        let m = Self.tiny(ModelOptions(numClasses: 0))
        XCTAssertFalse(m.namedParameters().contains { $0.name.hasPrefix("head.") })
        m.eval()
        var g = RandomGenerator(seed: 1)
        let x = Tensor.randn([2, 3, 64, 64], generator: &g)
        XCTAssertEqual(withNoGrad { m(x) }.shape, [2, 32])
        m.resetClassifier(numClasses: 5)
        XCTAssertEqual(withNoGrad { m(x) }.shape, [2, 5])
        XCTAssertEqual(withNoGrad { m.forwardHead(m.forwardFeatures(x), preLogits: true) }.shape, [2, 32])
        // Other input sizes resize the position tables (and pad like MindSpore's 'same' mode).
        XCTAssertEqual(withNoGrad { m(Tensor.randn([1, 3, 96, 80], generator: &g)) }.shape, [1, 5])
        XCTAssertEqual(withNoGrad { m(Tensor.randn([1, 3, 70, 66], generator: &g)) }.shape, [1, 5])
        // Options reach the model; drop-path rates follow MindCV's indexing.
        let built = try ModelRegistry.create("pvt_small", options: ModelOptions(numClasses: 10, inChannels: 1, imageSize: 256,
                                                                                dropPathRate: 0.3, seed: 3))
        let pvt = try XCTUnwrap(built as? PyramidVisionTransformer)
        XCTAssertEqual(pvt.numClasses, 10)
        XCTAssertEqual(pvt.config.imageSize, 256)
        XCTAssertEqual(pvt.posEmbeds[0].shape, [1, 64 * 64, 64])
        XCTAssertEqual(pvt.patchEmbeds[0].proj.weight.shape, [64, 1, 4, 4])
        XCTAssertEqual(pvt.config.dropPath(stage: 1, block: 0, rate: 0.3), 0.3 * 3 / 15, accuracy: 1e-7)
        XCTAssertEqual(pvt.config.dropPath(stage: 3, block: 2, rate: 0.3), 0.3 * 11 / 15, accuracy: 1e-7)
    }

    /// The bilinear resize is an identity at the same size and follows half_pixel_centers=False.
    func testPositionResize() {
        let m = Self.tiny(ModelOptions(numClasses: 0))
        var g = RandomGenerator(seed: 2)
        withNoGrad { m.posEmbeds[1].value.assign(Tensor.randn([1, 64, 16], generator: &g)) }
        let same = m.positionEmbedding(stage: 1, height: 8, width: 8)
        XCTAssertEqual(same.scalars, m.posEmbeds[1].value.scalars)
        // 8 → 16: even outputs copy input i/2, odd ones average i/2 and i/2+1 (the last repeats).
        let up = m.positionEmbedding(stage: 1, height: 16, width: 16)
        let t = m.posEmbeds[1].value.scalars
        func at(_ y: Int, _ x: Int, _ c: Int, _ w: Int, _ s: [Float]) -> Float { s[(y * w + x) * 16 + c] }
        XCTAssertEqual(at(2, 4, 3, 16, up.scalars), at(1, 2, 3, 8, t), accuracy: 1e-6)
        XCTAssertEqual(at(0, 3, 5, 16, up.scalars), 0.5 * (at(0, 1, 5, 8, t) + at(0, 2, 5, 8, t)), accuracy: 1e-6)
        XCTAssertEqual(at(15, 15, 0, 16, up.scalars), at(7, 7, 0, 8, t), accuracy: 1e-6)
    }
}
