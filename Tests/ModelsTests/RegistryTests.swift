import Foundation
import Models
import Tensor
import XCTest

/// Registry-wide checks over every registered name.
final class RegistryTests: XCTestCase {
    static let expectedNames = [
        "pit_ti", "pit_xs", "pit_s", "pit_b",
        "vit_b_16_224", "vit_b_16_384", "vit_l_16_224", "vit_l_16_384", "vit_b_32_224", "vit_b_32_384", "vit_l_32_224",
        "pvt_tiny", "pvt_small", "pvt_medium", "pvt_large",
        "convit_tiny", "convit_tiny_plus", "convit_small", "convit_small_plus", "convit_base", "convit_base_plus",
        "visformer_tiny", "visformer_tiny_v2", "visformer_small", "visformer_small_v2",
    ]

    func testEveryNameIsRegisteredOnce() {
        XCTAssertEqual(ModelRegistry.names.sorted(), Self.expectedNames.sorted())
    }

    func testUnknownNameSuggestsClosest() {
        XCTAssertThrowsError(try ModelRegistry.create("pit_tiny")) { e in
            guard case let ModelRegistryError.unknownModel(name, suggestions) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(name, "pit_tiny")
            XCTAssertEqual(suggestions.first, "pit_ti")
            XCTAssertTrue("\(e)".contains("pit_ti"))
        }
        XCTAssertTrue(closest(to: "visformer_tiny2", among: ModelRegistry.names).contains("visformer_tiny_v2"))
        XCTAssertEqual(closest(to: "vit_b16_224", among: ModelRegistry.names).first, "vit_b_16_224")
    }

    /// Each of the 21 published Params (M) figures is reproduced by the family's counting rule;
    /// pit_xs and pvt_large (truncated) and vit_l_16_224 / vit_l_32_224 (rounded up) differ only in
    /// the last printed digit.
    func testParameterCountsReproduceThePublishedColumn() {
        let lastDigit: Set<String> = ["pit_xs", "pvt_large", "vit_l_16_224", "vit_l_32_224"]
        var published = 0
        for entry in ModelRegistry.entries {
            let s = ModelRegistry.summary(of: entry)
            guard s.publishedParamsM != nil else { continue }
            published += 1
            XCTAssertEqual(s.agreement, lastDigit.contains(entry.name) ? .lastDigit : .exact,
                           "\(entry.name): counted \(s.countedParams) under \(s.countingRule) vs \(s.publishedParamsM!)")
        }
        XCTAssertEqual(published, 21)
    }

    /// Small-input forward and backward for every name: shape, finiteness, a gradient for every
    /// parameter, head reset, and data-config names present among the parameters.
    func testEveryModelRunsAndTrainsAtSmallSize() throws {
        for entry in ModelRegistry.entries {
            let size = smallSize(entry)
            let model = try ModelRegistry.create(entry.name, options: ModelOptions(numClasses: 5, imageSize: size, seed: 1))
            let names = Set(model.namedParameters().map { $0.name })
            XCTAssertTrue(names.contains(entry.dataConfig.firstConv + ".weight"), "\(entry.name): first conv \(entry.dataConfig.firstConv)")
            XCTAssertTrue(names.contains(entry.dataConfig.classifier + ".weight"), "\(entry.name): classifier \(entry.dataConfig.classifier)")
            var g = RandomGenerator(seed: 3)
            let x = Tensor.randn([2, 3, size, size], generator: &g)
            model.train()
            let logits = model(x)
            XCTAssertEqual(logits.shape, [2, 5], entry.name)
            XCTAssertTrue(logits.scalars.allSatisfy { $0.isFinite }, "\(entry.name): non-finite logits")
            let loss = Tensor.crossEntropy(logits: logits, labels: [1, 4])
            loss.backward()
            for (n, p) in model.namedParameters() {
                XCTAssertNotNil(p.grad, "\(entry.name): \(n) received no gradient")
                if let gr = p.grad { XCTAssertTrue(gr.scalars.allSatisfy { $0.isFinite }, "\(entry.name): \(n) non-finite gradient") }
            }
            model.resetClassifier(numClasses: 3)
            model.eval()
            let out = withNoGrad { model(x) }
            XCTAssertEqual(out.shape, [2, 3], "\(entry.name): after resetClassifier(3)")
            model.resetClassifier(numClasses: 0)
            XCTAssertEqual(withNoGrad { model(x) }.rank, 2, "\(entry.name): features without a head")
        }
    }

    /// The smallest input each family accepts cheaply (ConViT keeps its 14×14 grid: 56 px with patch 4
    /// is not a preset, so it runs at 224/16 = 14 patches at the smallest size of 224 only when
    /// required; here its grid follows the image size).
    func smallSize(_ e: ModelEntry) -> Int {
        switch e.family.lowercased() {
        case "pvt", "visformer": return 64
        default:
            return e.name.contains("_32_") ? 64 : 32
        }
    }
}

final class RegistryPresetTests: XCTestCase {
    /// docs/training.md §2.4: MindCV's own drop-path rates travel with the presets (ConViT 0.1,
    /// Visformer tiny 0.03 and small 0.1, the others 0), and every family's closed-form count equals
    /// the counted parameters of its registered variants.
    func testDefaultDropPathRatesAndClosedFormCounts() throws {
        let expected: [String: Float] = ["pit_ti": 0, "vit_b_32_224": 0, "pvt_small": 0, "convit_tiny": 0.1, "convit_base_plus": 0.1,
                                         "visformer_tiny": 0.03, "visformer_tiny_v2": 0.03, "visformer_small": 0.1,
                                         "visformer_small_v2": 0.1]
        for (name, rate) in expected { XCTAssertEqual(ModelRegistry.defaultDropPathRate(name), rate, name) }
        XCTAssertEqual(ModelRegistry.defaultDropPathRate("no_such_model"), 0)
        for entry in ModelRegistry.entries {
            let model = Initializer.withoutInitialization { entry.build(ModelOptions()) }
            let closed: Int?
            switch model {
            case let m as PiT: closed = m.config.parameterCount()
            case let m as ViT: closed = m.config.parameterCount(imageSize: m.imageSize)
            case let m as ConViT: closed = m.config.parameterCount()
            case let m as PyramidVisionTransformer: closed = m.config.parameterCount()
            case let m as Visformer: closed = m.config.parameterCount()
            default: closed = nil
            }
            XCTAssertEqual(closed, model.trainableParameterCount, entry.name)
        }
    }
}
