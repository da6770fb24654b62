import Foundation
@testable import Models
import Tensor
import XCTest
import TestSupport

/// Prints the worst errors of a model against a fixture case, each as a fraction of the README
/// tolerance (≤ 1 passes), after `checkFixture` has asserted them. Shared by the PiT/ViT/ConViT tests.
func reportFixtureMargins(_ caseName: String, model: any Classifier) throws {
    let st = try SafeTensorsFile(path: Fixtures.path("\(caseName).safetensors"))
    let manifest = try Fixtures.manifest(caseName)
    let input = try XCTUnwrap(st.tensors["input"])
    let labels = try XCTUnwrap(st.integers["labels"]).values
    model.eval()
    let logits = withNoGrad { model(input) }
    let refLogits = try XCTUnwrap(st.tensors["logits_eval"])
    let logitRel = maxAbsDiff(logits, refLogits) / maxAbs(refLogits)
    model.train()
    model.zeroGrad()
    let loss = Tensor.crossEntropy(logits: model(input), labels: labels, labelSmoothing: 0.1)
    let refLoss = try XCTUnwrap(st.tensors["loss_train"]).scalars[0]
    loss.backward()
    let g = Float(try XCTUnwrap(manifest["grad_global_max_abs"] as? Double))
    let zero = Set((manifest["structurally_zero_grads"] as? [String]) ?? [])
    var worst: (name: String, fraction: Float) = ("", 0)
    for (name, p) in model.namedParameters() where !zero.contains(name) {
        guard let ref = st.tensors["grad.\(name)"], let grad = p.grad else { continue }
        let fraction = maxAbsDiff(grad, ref) / (1e-3 * maxAbs(ref) + 1e-6 * g)
        if fraction > worst.fraction { worst = (name, fraction) }
    }
    print(String(format: "%@: logits rel err %.2e (%.3f of tol), loss rel err %.2e (%.3f of tol), worst grad %@ at %.3f of tol",
                 caseName, logitRel, logitRel / 1e-4, abs(loss.item - refLoss) / abs(refLoss),
                 abs(loss.item - refLoss) / abs(refLoss) / 1e-5, worst.name, worst.fraction))
}

final class PiTTests: XCTestCase {
    /// The fixtures' `pit_tiny` configuration (manifest.json `mindcv_kwargs`).
    static let tinyConfig = PiTConfig(imageSize: 32, patchSize: 8, stride: 4, baseDims: [4, 4, 4], depth: [1, 2, 1], heads: [2, 4, 8])

    func tiny(_ options: ModelOptions = ModelOptions(numClasses: 7)) -> PiT { PiT(config: Self.tinyConfig, options: options) }

    func testFixturePiTTiny() throws {
        let m = tiny()
        try checkFixture("pit_tiny", model: m)
        try reportFixtureMargins("pit_tiny", model: m)
    }

    func testFixturePiTTinyFanIn() throws {
        let m = tiny()
        try checkFixture("pit_tiny_fanin", model: m)
        try reportFixtureMargins("pit_tiny_fanin", model: m)
    }

    func testCanonicalNamesAndShapes() {
        let m = tiny()
        let shapes = Dictionary(uniqueKeysWithValues: m.namedParameters().map { ($0.name, $0.parameter.shape) })
        XCTAssertEqual(shapes["pos_embed"], [1, 8, 7, 7])
        XCTAssertEqual(shapes["transformers.1.pool.conv.weight"], [16, 1, 3, 3])
        XCTAssertEqual(shapes["transformers.2.pool.fc.weight"], [32, 16])
        XCTAssertEqual(shapes["transformers.0.blocks.0.attn.qkv.weight"], [24, 8])
        XCTAssertNil(shapes["transformers.0.pool.conv.weight"])
        XCTAssertEqual(m.trainableParameterCount, 23543)
        XCTAssertEqual(Self.tinyConfig.parameterCount(numClasses: 7), 23543)
    }

    /// docs/models.md §0: exact totals (head included), from the built registry models (weights
    /// left uninitialised) and from the closed form.
    func testParameterCounts() throws {
        let expected: [(String, PiTConfig, Int)] = [("pit_ti", .ti, 4_847_272), ("pit_xs", .xs, 10_618_888),
                                                    ("pit_s", .s, 23_461_912), ("pit_b", .b, 73_764_840)]
        for (name, c, n) in expected {
            XCTAssertEqual(c.parameterCount(), n, name)
            let built = try Initializer.withoutInitialization { try ModelRegistry.create(name) }
            XCTAssertEqual(built.trainableParameterCount, n, name)
            XCTAssertEqual(ModelRegistry.summary(of: try ModelRegistry.entry(name)).countedParams, n, name)
        }
        // no head, other input channels, other image size: formula and module tree agree
        let opts = ModelOptions(numClasses: 0, inChannels: 1, imageSize: 64)
        XCTAssertEqual(Initializer.withoutInitialization { PiT(config: .b, options: opts) }.trainableParameterCount,
                       PiTConfig.b.parameterCount(numClasses: 0, inChannels: 1, imageSize: 64))
        // the published figure (4.85 M) is the total with head
        let entry = try! ModelRegistry.entry("pit_ti")
        XCTAssertEqual(entry.countingRule, .total)
        XCTAssertEqual(entry.dataConfig.firstConv, "patch_embed.conv")
        XCTAssertEqual(try! ModelRegistry.entry("pit_b").dataConfig.cropPct, 0.9)
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
        m.resetClassifier(numClasses: 11)
        XCTAssertEqual(withNoGrad { m(x) }.shape, [3, 11])
        XCTAssertEqual(m.numClasses, 11)
        m.resetClassifier(numClasses: 0)
        XCTAssertEqual(withNoGrad { m(x) }.shape, [3, 32])
        XCTAssertFalse(m.namedParameters().contains { $0.name.hasPrefix("head.") })
        XCTAssertEqual(m.noWeightDecay, ["pos_embed", "cls_token"])
        XCTAssertTrue(Set(m.namedParameters().map { $0.name }).isSuperset(of: m.noWeightDecay))
    }

    /// MindCV's init: Dense weight and bias within ±1/√out, conv within ±√(1/(k²·C_in)), pos/cls
    /// truncated at ±2·0.02; the same seed gives the same weights.
    func testInitialisation() {
        let m = PiT(config: .ti, options: ModelOptions(seed: 3))
        let p = Dictionary(uniqueKeysWithValues: m.namedParameters().map { ($0.name, $0.parameter.value) })
        func bound(_ n: String) -> Float { maxAbs(p[n]!) }
        XCTAssertLessThanOrEqual(bound("transformers.1.blocks.0.mlp.fc1.weight"), 1 / Float(512).squareRoot())
        XCTAssertGreaterThan(bound("transformers.1.blocks.0.mlp.fc1.weight"), 0.9 / Float(512).squareRoot())
        XCTAssertGreaterThan(bound("transformers.1.blocks.0.mlp.fc1.bias"), 0.5 / Float(512).squareRoot())
        XCTAssertLessThanOrEqual(bound("head.weight"), 1 / Float(1000).squareRoot())
        XCTAssertLessThanOrEqual(bound("transformers.1.pool.conv.weight"), (1 / Float(9 * 64)).squareRoot())
        XCTAssertGreaterThan(bound("transformers.1.pool.conv.weight"), 0.9 * (1 / Float(9 * 64)).squareRoot())
        XCTAssertLessThanOrEqual(bound("patch_embed.conv.weight"), (1 / Float(256 * 3)).squareRoot())
        XCTAssertLessThanOrEqual(bound("pos_embed"), 0.04)
        XCTAssertEqual(p["norm.weight"]!.scalars, [Float](repeating: 1, count: 256))
        let again = PiT(config: .ti, options: ModelOptions(seed: 3))
        XCTAssertEqual(again.namedParameters().last!.parameter.value.scalars, m.namedParameters().last!.parameter.value.scalars)
    }

    /// Drop-path rate of block i of T is rate·i/T (MindCV), counted over all stages.
    func testDropPathSchedule() {
        let m = PiT(config: Self.tinyConfig, options: ModelOptions(numClasses: 7, dropPathRate: 0.4))
        let rates = m.stages.flatMap { $0.blocks.map { $0.dropPath.p } }
        XCTAssertEqual(rates, [0, 0.1, 0.2, 0.3])
    }
}
