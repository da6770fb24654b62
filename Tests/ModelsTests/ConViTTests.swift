import Foundation
@testable import Models
import Tensor
import XCTest
import TestSupport

final class ConViTTests: XCTestCase {
    /// The fixtures' configurations (manifest.json `mindcv_kwargs`): a 14×14 grid with 4 heads, and
    /// an 8×8 grid with 9 heads and locality strength 2.
    static let g14 = ConViTConfig(imageSize: 56, patchSize: 4, embedDim: 32, depth: 3, heads: 4, localUpToLayer: 2, localityStrength: 1)
    static let g8 = ConViTConfig(imageSize: 32, patchSize: 4, embedDim: 36, depth: 3, heads: 9, localUpToLayer: 1, localityStrength: 2)

    func model(_ c: ConViTConfig) -> ConViT { ConViT(config: c, options: ModelOptions(numClasses: 7)) }

    func testFixtureG14() throws {
        let m = model(Self.g14)
        try checkFixture("convit_tiny_g14", model: m)
        try reportFixtureMargins("convit_tiny_g14", model: m)
    }

    func testFixtureG14FanIn() throws {
        let m = model(Self.g14)
        try checkFixture("convit_tiny_g14_fanin", model: m)
        try reportFixtureMargins("convit_tiny_g14_fanin", model: m)
    }

    func testFixtureG8() throws {
        let m = model(Self.g8)
        try checkFixture("convit_tiny_g8", model: m)
        try reportFixtureMargins("convit_tiny_g8", model: m)
    }

    func testFixtureG8FanIn() throws {
        let m = model(Self.g8)
        try checkFixture("convit_tiny_g8_fanin", model: m)
        try reportFixtureMargins("convit_tiny_g8_fanin", model: m)
    }

    /// The GPSA local init reproduces the fixtures' `init.blocks.{i}.attn.{pos_proj,v}.weight`
    /// exactly, for 2×2 heads (α = 1) and 3×3 heads (α = 2); gating stays 1, pos_proj bias 0.
    func testLocalInitMatchesFixtures() throws {
        for (name, config) in [("convit_tiny_g14", Self.g14), ("convit_tiny_g8", Self.g8)] {
            let st = try SafeTensorsFile(path: Fixtures.path("\(name).safetensors"))
            let params = Dictionary(uniqueKeysWithValues: model(config).namedParameters().map { ($0.name, $0.parameter.value) })
            var checked = 0
            for i in 0..<config.localUpToLayer {
                for key in ["blocks.\(i).attn.pos_proj.weight", "blocks.\(i).attn.v.weight"] {
                    let ref = try XCTUnwrap(st.tensors["init.\(key)"], "\(name): init.\(key)")
                    let mine = try XCTUnwrap(params[key], key)
                    XCTAssertEqual(mine.shape, ref.shape, "\(name): \(key)")
                    XCTAssertEqual(mine.scalars, ref.scalars, "\(name): \(key)")
                    checked += 1
                }
                XCTAssertEqual(params["blocks.\(i).attn.gating_param"]?.scalars, [Float](repeating: 1, count: config.heads))
                XCTAssertEqual(params["blocks.\(i).attn.pos_proj.bias"]?.scalars, [Float](repeating: 0, count: config.heads))
            }
            XCTAssertEqual(checked, 2 * config.localUpToLayer)
            XCTAssertEqual(st.tensors.keys.filter { $0.hasPrefix("init.") }.count, checked, name)
        }
    }

    /// R[i·N + j] = (Δx, Δy, Δx² + Δy²) with Δ = key − query on the row-major grid.
    func testRelativePositionTable() {
        let r = GatedPositionalSelfAttention.relativePositionTable(side: 3).scalars
        func row(_ i: Int, _ j: Int) -> [Float] { Array(r[((i * 9 + j) * 3)..<((i * 9 + j) * 3 + 3)]) }
        XCTAssertEqual(row(0, 0), [0, 0, 0])
        XCTAssertEqual(row(0, 5), [2, 1, 5])  // key (row 1, col 2)
        XCTAssertEqual(row(7, 3), [-1, -1, 2])  // query (2, 1), key (1, 0)
    }

    func testCanonicalNames() {
        let names = Set(model(Self.g8).namedParameters().map { $0.name })
        XCTAssertTrue(names.isSuperset(of: ["blocks.0.attn.qk.weight", "blocks.0.attn.v.weight", "blocks.0.attn.gating_param",
                                            "blocks.1.attn.qkv.weight", "head.weight", "pos_embed", "cls_token"]))
        XCTAssertFalse(names.contains("blocks.0.attn.qk.bias"))
        XCTAssertFalse(names.contains("blocks.1.attn.qkv.bias"))
        XCTAssertEqual(model(Self.g14).trainableParameterCount, 46031)
        XCTAssertEqual(model(Self.g8).trainableParameterCount, 52216)
    }

    /// docs/models.md §0 totals (head included), from the built registry models (weights left
    /// uninitialised; convit_tiny also fully initialised) and from the closed form.
    func testParameterCounts() throws {
        let expected: [(String, ConViTConfig, Int)] = [
            ("convit_tiny", .tiny, 5_710_512), ("convit_tiny_plus", .tinyPlus, 9_972_912),
            ("convit_small", .small, 27_777_322), ("convit_small_plus", .smallPlus, 48_979_882),
            ("convit_base", .base, 86_540_040), ("convit_base_plus", .basePlus, 153_134_856),
        ]
        for (name, c, n) in expected {
            XCTAssertEqual(c.parameterCount(), n, name)
            XCTAssertEqual(try ModelRegistry.entry(name).countingRule, .total)
            let built = try Initializer.withoutInitialization { try ModelRegistry.create(name) }
            XCTAssertEqual(built.trainableParameterCount, n, name)
        }
        XCTAssertEqual(ConViT(config: .tiny).trainableParameterCount, 5_710_512)
        XCTAssertEqual(Initializer.withoutInitialization { ConViT(config: .small, options: ModelOptions(numClasses: 0, inChannels: 1, imageSize: 64)) }.trainableParameterCount,
                       ConViTConfig.small.parameterCount(numClasses: 0, inChannels: 1, imageSize: 64))
        let crops = try ["convit_tiny", "convit_tiny_plus", "convit_small", "convit_small_plus", "convit_base", "convit_base_plus"]
            .map { try ModelRegistry.entry($0).dataConfig.cropPct }
        XCTAssertEqual(crops, [0.875, 0.87, 0.915, 0.93, 0.93, 0.925])
    }

    /// Without local init, 9 heads on a 3×3 kernel; the class token joins before `localUpToLayer`
    /// (also when every block is local); head reset and features.
    func testOptionsAndHead() {
        var g = RandomGenerator(seed: 2)
        let x = Tensor.randn([2, 3, 32, 32], generator: &g)
        for lutl in [0, 1, 3] {
            let c = ConViTConfig(imageSize: 32, patchSize: 8, embedDim: 18, depth: 3, heads: 9, localUpToLayer: lutl)
            let m = ConViT(config: c, options: ModelOptions(numClasses: 3, dropPathRate: 0.2))
            XCTAssertEqual(m.blocks.map { $0.dropPath.p }, [0, 0.1, 0.2])
            m.eval()
            let f = withNoGrad { m.forwardFeatures(x) }
            XCTAssertEqual(f.shape, [2, 18])
            XCTAssertEqual(withNoGrad { m(x) }.shape, [2, 3])
            m.resetClassifier(numClasses: 0)
            XCTAssertEqual(withNoGrad { m(x) }.shape, [2, 18])
        }
        XCTAssertEqual(model(Self.g8).noWeightDecay, ["pos_embed", "cls_token"])
    }
}
