import Foundation
@testable import Models
import Tensor
import XCTest
import TestSupport

final class VisformerTests: XCTestCase {
    /// The v1 fixtures' configuration (manifest.json `mindcv_kwargs`).
    static func v1FixtureConfig() -> VisformerConfig {
        VisformerConfig(imageSize: 64, initChannels: 8, embedDim: 24, depths: [0, 2, 1, 1], numHeads: [2, 2, 2, 2])
    }

    static func v2FixtureConfig() -> VisformerConfig {
        VisformerConfig(imageSize: 64, initChannels: 8, embedDim: 32, depths: [1, 1, 2, 1], numHeads: [1, 2, 2, 4],
                        qkScaleExponent: -0.5)
    }

    static func v1(_ options: ModelOptions = ModelOptions(numClasses: 7)) -> Visformer { Visformer(config: v1FixtureConfig(), options: options) }
    static func v2(_ options: ModelOptions = ModelOptions(numClasses: 7)) -> Visformer { Visformer(config: v2FixtureConfig(), options: options) }

    func testFixtureVisformerTiny() throws {
        try checkFixture("visformer_tiny", model: Self.v1())
    }

    func testFixtureVisformerTinyFanIn() throws {
        try checkFixture("visformer_tiny_fanin", model: Self.v1())
    }

    func testFixtureVisformerTinyV2() throws {
        try checkFixture("visformer_tiny_v2", model: Self.v2())
    }

    func testFixtureVisformerTinyV2FanIn() throws {
        try checkFixture("visformer_tiny_v2_fanin", model: Self.v2())
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
            let model = Initializer.withoutInitialization { entry.build(ModelOptions()) }
            XCTAssertEqual(model.trainableParameterCount, trainable, name)
            let config = try XCTUnwrap((model as? Visformer)?.config, name)
            XCTAssertEqual(config.parameterCount(), trainable, name)
            XCTAssertEqual(config.parameterCount() + config.bufferCount, stored, name)
            XCTAssertEqual(model.storedParameterCount, stored, name)
            let counts = ParameterCounts(model: model, classifierName: entry.dataConfig.classifier)
            XCTAssertEqual(counts.count(for: entry.countingRule), stored, name)
            let names = Set(model.namedParameters().map { $0.name })
            XCTAssertTrue(names.contains(entry.dataConfig.firstConv + ".weight"), name)
        }
    }

    /// The closed form agrees with the module tree without a head, with other input channels, at
    /// other sizes, with a qkv bias and without position maps.
    func testClosedFormParameterCount() {
        for var config in [Self.v1FixtureConfig(), Self.v2FixtureConfig()] {
            for (classes, channels, size, bias, pos) in [(7, 3, 64, false, true), (0, 1, 96, true, true), (10, 4, 32, false, false)] {
                config.qkvBias = bias
                config.usePositionEmbedding = pos
                let m = Visformer(config: config, options: ModelOptions(numClasses: classes, inChannels: channels, imageSize: size))
                XCTAssertEqual(config.parameterCount(numClasses: classes, inChannels: channels, imageSize: size), m.trainableParameterCount,
                               "\(config.depths): \(classes) classes, \(channels) channels, \(size) px")
                XCTAssertEqual(config.bufferCount, m.storedParameterCount - m.trainableParameterCount)
            }
        }
    }

    func testNamesShapesAndScale() {
        let v1 = Self.v1()
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
        let v2 = Self.v2()
        XCTAssertEqual(v2.namedParameters().count, 61)
        XCTAssertEqual(v2.namedBuffers().count, 28)
        XCTAssertEqual(v2.trainableParameterCount, 93991)
        XCTAssertEqual(v2.noWeightDecay, ["pos_embed0", "pos_embed1", "pos_embed2", "pos_embed3"])
        // v1: hd^-0.25 on q and k = 1/√hd; v2: hd^-0.5 on each = 1/hd.
        XCTAssertEqual(VisformerAttentionScale.of(v1, stage: 3), 1 / Float(24).squareRoot(), accuracy: 1e-7)
        XCTAssertEqual(VisformerAttentionScale.of(v2, stage: 3), 1 / 16, accuracy: 1e-7)
    }

    /// Evaluation without a tape folds every BatchNorm next to a conv into it
    /// (Sources/Models/Layers/BatchNormFolding.swift): the logits match the unfolded evaluation (with
    /// recording on, nothing is folded) for non-trivial statistics and affine parameters.
    func testBatchNormFoldingMatchesUnfoldedEvaluation() {
        var g = RandomGenerator(seed: 11)
        for m in [Self.v1(), Self.v2()] {
            for (_, b) in m.namedBuffers() {
                let r = Tensor.randn(b.shape, generator: &g)
                b.value = Tensor(shape: b.shape, r.scalars.map { b.value.scalars[0] == 1 ? 0.5 + abs($0) : 0.3 * $0 })
            }
            for (name, p) in m.namedParameters() where p.shape.count == 1 && !name.hasPrefix("head") {
                p.value = p.value.detached() + Tensor.randn(p.shape, std: 0.2, generator: &g)
                p.value.requiresGrad = true
            }
            m.eval()
            XCTAssertNil(m.norm.foldableAffine(), "recording on: not folded")
            withNoGrad { XCTAssertNotNil(m.norm.foldableAffine(), "eval without a tape: folded") }
            let x = Tensor.randn([2, 3, 64, 64], generator: &g)
            let unfolded = m(x)
            // the attention stages' maps (4×4, 2×2) run layer by layer, or sample by sample through
            // Tensor.stackedTransformerBlock once its threshold is lowered below them
            let saved = stackedBlockMinimumPositions
            defer { stackedBlockMinimumPositions = saved }
            for minimum in [saved, 1] {
                stackedBlockMinimumPositions = minimum
                let folded = withNoGrad { m(x) }
                XCTAssertLessThanOrEqual(maxAbsDiff(folded, unfolded), 1e-4 * maxAbs(unfolded), "\(m.config.depths), threshold \(minimum)")
            }
            m.train()
            withNoGrad { XCTAssertNil(m.norm.foldableAffine(), "training: not folded") }
        }
    }

    /// Stages without the grouped conv run on the batch stacked along the height, `[1, C, B·H, W]`
    /// (Visformer.swift): every sample's logits equal its logits alone (batch 1, where the stacked
    /// and per-sample layouts coincide), with and without BatchNorm folding. At 208 px stage 2 is
    /// 13×13, so stage 3's patch embedding has to unstack first (its 2×2 windows would straddle samples).
    func testStackedStagesKeepSamplesApart() {
        var g = RandomGenerator(seed: 12)
        var odd = Self.v1FixtureConfig()
        odd.imageSize = 208
        for config in [Self.v1FixtureConfig(), Self.v2FixtureConfig(), odd] {
            let m = Visformer(config: config, options: ModelOptions(numClasses: 5, seed: 3))
            for (_, b) in m.namedBuffers() {
                let r = Tensor.randn(b.shape, generator: &g)
                b.value = Tensor(shape: b.shape, r.scalars.map { b.value.scalars[0] == 1 ? 0.5 + abs($0) : 0.3 * $0 })
            }
            m.eval()
            let x = Tensor.randn([3, 3, config.imageSize, config.imageSize], generator: &g)
            for record in [false, true] {
                let run = { (t: Tensor) -> Tensor in record ? m(t) : withNoGrad { m(t) } }
                let all = run(x)
                for i in 0..<3 {
                    let alone = run(x.slice(axis: 0, i..<(i + 1)))
                    let row = all.slice(axis: 0, i..<(i + 1))
                    XCTAssertLessThanOrEqual(maxAbsDiff(row, alone), 1e-4 * max(maxAbs(alone), 1),
                                             "\(config.imageSize) px, depths \(config.depths), sample \(i), recording \(record)")
                }
            }
        }
    }

    /// Runs `block` in training twice on the same input, output gradient and generator state — once
    /// through `first`, once through `second` — and asserts that the outputs, input and parameter
    /// gradients and the generator's next draw agree.
    private func assertTrainingRunsAgree(_ block: VisformerBlock, state: ModelState, input x0: Tensor, seed: Tensor,
                                         _ first: (Tensor) -> Tensor, _ second: (Tensor) -> Tensor, file: StaticString = #filePath,
                                         line: UInt = #line) {
        XCTAssertTrue(state.training)
        func results(_ run: (Tensor) -> Tensor) -> [Tensor] {
            state.generator = RandomGenerator(seed: 77)
            block.zeroGrad()
            var x = x0.copy()
            x.requiresGrad = true
            let y = withThreads(2) { run(x) }
            withThreads(2) { y.backward(gradient: seed) }
            return [y.detached(), x.grad!] + block.namedParameters().map { $0.parameter.grad ?? Tensor.zeros($0.parameter.shape) }
                + [Tensor(shape: [1], [state.generator.nextFloat()])]
        }
        let results = [results(first), results(second)]
        let names = ["output", "dx"] + block.namedParameters().map { $0.name } + ["next draw"]
        for (i, name) in names.enumerated() {
            XCTAssertLessThanOrEqual(maxAbsDiff(results[0][i], results[1][i]), 1e-5 * max(maxAbs(results[0][i]), 1), name,
                                     file: file, line: line)
        }
        XCTAssertGreaterThan(maxAbs(results[0][0]), 0, file: file, line: line)
        XCTAssertGreaterThan(maxAbs(results[0][2]), 0, file: file, line: line)
    }

    /// In training (BatchNorm batch statistics, drop-path, attention dropout) an attention block run
    /// stacked gives the values, generator draws and gradients of the block run on `[B, C, H, W]`.
    func testStackedBlockMatchesPerSampleLayoutInTraining() {
        let config = Self.v1FixtureConfig(), state = ModelState(seed: 0)
        var g = RandomGenerator(seed: 21)
        let block = VisformerBlock(stage: 2, dropPath: 0.5, config: config, options: ModelOptions(attnDropRate: 0.3),
                                   state: state, generator: &g)
        let b = 4, c = config.width(stage: 2)
        let x0 = Tensor.randn([b, c, 3, 3], generator: &g), seed = Tensor.randn([b, c, 3, 3], generator: &g)
        assertTrainingRunsAgree(block, state: state, input: x0, seed: seed, { block($0) }) {
            VisformerStacking.unstack(block.forward(VisformerStacking.stack($0), batch: b, stacked: true), batch: b)
        }
    }

    /// In training a stage-1 block (the spatial MLP, run sample by sample through
    /// `Tensor.residualConvMlp`) gives the values, drop-path draws and gradients of its layers run
    /// one by one: x + dropPath(mlp(norm2(x))).
    func testFusedSpatialBlockMatchesLayersInTraining() {
        let config = Self.v1FixtureConfig(), state = ModelState(seed: 0)
        var g = RandomGenerator(seed: 23)
        let block = VisformerBlock(stage: 1, dropPath: 0.5, config: config, options: ModelOptions(), state: state, generator: &g)
        XCTAssertNotNil(block.mlp.conv2)
        let b = 4, c = config.width(stage: 1)
        let x0 = Tensor.randn([b, c, 5, 5], generator: &g), seed = Tensor.randn([b, c, 5, 5], generator: &g)
        assertTrainingRunsAgree(block, state: state, input: x0, seed: seed, { block($0) }) { x in
            x + block.dropPath(block.mlp(block.norm2(x)))
        }
    }

    func testOptionsAndHead() throws {
        let m = Self.v1(ModelOptions(numClasses: 0))
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
        XCTAssertEqual(vis.numClasses, 10)
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
