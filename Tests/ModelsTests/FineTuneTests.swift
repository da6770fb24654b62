import Foundation
import Models
import Tensor
import XCTest
import TestSupport

/// Fine-tuning adaptation (docs/finetuning.md): head re-initialised, first conv adapted, position
/// embeddings resampled bicubically per family layout, anything else a named error.
final class FineTuneTests: XCTestCase {
    /// Antialiased bicubic weights (a = −0.5), computed by hand from the kernel
    /// ((a+2)|x| − (a+3))x² + 1 and (((|x| − 5)|x| + 8)|x| − 4)·a, then normalised.
    func testBicubicWeightsByHand() {
        // 4 → 2: scale 2, kernel stretched ×2; output 0 is centred at 1.0 and sees inputs 0…3 at
        // x = −0.25, 0.25, 0.75, 1.25 → 0.8671875, 0.8671875, 0.2265625, −0.0703125 (sum 1.890625).
        let down = bicubicResampleWeights(from: 4, to: 2)
        let expected0: [Float] = [0.8671875, 0.8671875, 0.2265625, -0.0703125].map { $0 / 1.890625 }
        XCTAssertEqual(down[0].map(\.index), [0, 1, 2, 3])
        for (w, e) in zip(down[0].map(\.weight), expected0) { XCTAssertEqual(w, e, accuracy: 1e-7) }
        XCTAssertEqual(Array(down[1].map(\.weight).reversed()), down[0].map(\.weight))
        // 2 → 4: output 0 centred at 0.25 sees inputs 0, 1 at x = 0.25, 1.25; output 1 (centre 0.75)
        // at x = −0.25, 0.75.
        let up = bicubicResampleWeights(from: 2, to: 4)
        XCTAssertEqual(up[0].map(\.weight)[0], 0.8671875 / 0.796875, accuracy: 1e-7)
        XCTAssertEqual(up[0].map(\.weight)[1], -0.0703125 / 0.796875, accuracy: 1e-7)
        XCTAssertEqual(up[1].map(\.weight)[0], 0.8671875 / 1.09375, accuracy: 1e-7)
        XCTAssertEqual(up[1].map(\.weight)[1], 0.2265625 / 1.09375, accuracy: 1e-7)
        // Same size: the identity.
        let same = bicubicResample((0..<18).map(Float.init), channels: 2, from: (3, 3), to: (3, 3), channelsLast: false)
        XCTAssertEqual(same, (0..<18).map(Float.init))
        // 2-D is the product of the two axes: a 4×4 map → 2×2, value at (0, 0).
        let map = (0..<16).map { Float($0 * $0 % 7) }
        let out = bicubicResample(map, channels: 1, from: (4, 4), to: (2, 2), channelsLast: false)
        var ref: Float = 0
        for y in 0..<4 { for x in 0..<4 { ref += expected0[y] * expected0[x] * map[y * 4 + x] } }
        XCTAssertEqual(out[0], ref, accuracy: 1e-5)
        // Channels-last gives the same numbers in the other order.
        let last = bicubicResample([Float](map.map { [$0, -$0] }.joined()), channels: 2, from: (4, 4), to: (2, 2), channelsLast: true)
        XCTAssertEqual(last[0], out[0], accuracy: 1e-6)
        XCTAssertEqual(last[1], -out[0], accuracy: 1e-6)
    }

    static func values(_ m: any Classifier) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: m.namedParameters().map { ($0.name, $0.parameter.value.scalars) })
    }

    /// PiT: 1000 classes, 3 channels, 64 px (15×15 map) → 10 classes, 1 channel, 32 px (7×7).
    func testPiTHeadInputConvAndPositionMap() throws {
        let config = PiTTests.tinyConfig
        let source = PiT(config: config, options: ModelOptions(numClasses: 1000, imageSize: 64, seed: 1))
        let target = PiT(config: config, options: ModelOptions(numClasses: 10, inChannels: 1, imageSize: 32, seed: 2))
        let before = Self.values(target), src = source.stateDict()
        let report = try target.loadAdapting(stateDict: src, firstConv: "patch_embed.conv", classifier: "head", source: "pit.safetensors")
        let after = Self.values(target)
        XCTAssertEqual(report.reinitialised.map(\.name).sorted(), ["head.bias", "head.weight"])
        XCTAssertEqual(report.reinitialised.first { $0.name == "head.weight" }?.checkpointShape, [1000, 32])
        XCTAssertEqual(report.inputConv.map(\.name), ["patch_embed.conv.weight"])
        XCTAssertEqual(report.resampled.map(\.name), ["pos_embed"])
        XCTAssertEqual(report.resampled.first?.modelShape, [1, 8, 7, 7])
        XCTAssertEqual(report.lines.count, 3)
        for (name, v) in after {
            if name.hasPrefix("head.") {
                XCTAssertEqual(v, before[name], "\(name) keeps the fresh initialisation")
            } else if name == "pos_embed" {
                let expected = bicubicResample(src[name]!.scalars, channels: 8, from: (15, 15), to: (7, 7), channelsLast: false)
                XCTAssertEqual(v, expected)
            } else if name == "patch_embed.conv.weight" {
                let w = src[name]!.scalars, k = 64  // [8, 3, 8, 8] summed over the 3 channels
                XCTAssertEqual(v.count, 8 * k)
                for (i, x) in v.enumerated() {
                    let o = i / k, p = i % k
                    XCTAssertEqual(x, w[(o * 3) * k + p] + w[(o * 3 + 1) * k + p] + w[(o * 3 + 2) * k + p], accuracy: 1e-6)
                }
            } else {
                XCTAssertEqual(v, src[name]!.scalars, "\(name) loads unchanged")
            }
        }
        // The adapted model runs at its own size.
        target.eval()
        var g = RandomGenerator(seed: 3)
        XCTAssertEqual(withNoGrad { target(Tensor.randn([2, 1, 32, 32], generator: &g)) }.shape, [2, 10])
    }

    /// ViT keeps the class-token row apart; more input channels repeat the RGB filters scaled by 3/C.
    func testViTSequenceWithClassTokenAndRepeatedChannels() throws {
        let config = ViTTests.tinyConfig  // patch 8
        let source = ViT(config: config, options: ModelOptions(numClasses: 7, imageSize: 32, seed: 1))  // 4×4 + 1
        let target = ViT(config: config, options: ModelOptions(numClasses: 7, inChannels: 5, imageSize: 48, seed: 2))  // 6×6 + 1
        let src = source.stateDict()
        let report = try target.loadAdapting(stateDict: src, firstConv: "patch_embed.proj", classifier: "head")
        XCTAssertTrue(report.reinitialised.isEmpty, "7 classes fit")
        let pos = target.posEmbed.value.scalars, d = 32
        XCTAssertEqual(Array(pos[..<d]), Array(src["pos_embed"]!.scalars[..<d]), "class-token row unchanged")
        XCTAssertEqual(Array(pos[d...]), bicubicResample(Array(src["pos_embed"]!.scalars[d...]), channels: d, from: (4, 4), to: (6, 6),
                                                         channelsLast: true))
        let w = src["patch_embed.proj.weight"]!.scalars, v = target.patchEmbed.weight.value.scalars, k = 64
        XCTAssertEqual(target.patchEmbed.weight.shape, [32, 5, 8, 8])
        for (i, x) in v.enumerated() {
            let o = i / (5 * k), c = (i / k) % 5, p = i % k
            XCTAssertEqual(x, w[(o * 3 + c % 3) * k + p] * 3 / 5, accuracy: 1e-7)
        }
    }

    /// PVT: stages 1–3 are plain grids, stage 4 keeps its class-token row; ConViT's table has none.
    func testPVTStagesAndConViT() throws {
        let source = PyramidVisionTransformer(config: PVTTests.fixtureConfig(), options: ModelOptions(numClasses: 7, imageSize: 64))
        let target = PyramidVisionTransformer(config: PVTTests.fixtureConfig(), options: ModelOptions(numClasses: 3, imageSize: 128))
        let src = source.stateDict()
        let report = try target.loadAdapting(stateDict: src, firstConv: "patch_embed1.proj", classifier: "head")
        XCTAssertEqual(report.resampled.map(\.name).sorted(), ["pos_embed1", "pos_embed2", "pos_embed3", "pos_embed4"])
        let p4 = target.posEmbeds[3].value.scalars, c = 32
        XCTAssertEqual(target.posEmbeds[3].shape, [1, 17, 32])
        XCTAssertEqual(Array(p4[..<c]), Array(src["pos_embed4"]!.scalars[..<c]))
        XCTAssertEqual(Array(p4[c...]), bicubicResample(Array(src["pos_embed4"]!.scalars[c...]), channels: c, from: (2, 2), to: (4, 4),
                                                        channelsLast: true))
        XCTAssertEqual(target.posEmbeds[0].value.scalars,
                       bicubicResample(src["pos_embed1"]!.scalars, channels: 8, from: (16, 16), to: (32, 32), channelsLast: true))

        let convit = ConViT(config: ConViTTests.g8, options: ModelOptions(numClasses: 7, imageSize: 48))
        let r = try convit.loadAdapting(stateDict: ConViT(config: ConViTTests.g8, options: ModelOptions(numClasses: 7)).stateDict(),
                                        firstConv: "patch_embed.proj", classifier: "head")
        XCTAssertEqual(r.resampled.first?.checkpointShape, [1, 64, 36])
        XCTAssertEqual(r.resampled.first?.modelShape, [1, 144, 36])
    }

    /// Visformer's maps resample per stage; a model without a head drops the checkpoint's.
    func testVisformerMapsAndHeadless() throws {
        let source = VisformerTests.v2()
        let target = VisformerTests.v2(ModelOptions(numClasses: 0, imageSize: 32))
        let report = try target.loadAdapting(stateDict: source.stateDict(), firstConv: "stem.0", classifier: "head")
        XCTAssertEqual(report.resampled.map(\.name).sorted(), ["pos_embed0", "pos_embed1", "pos_embed2", "pos_embed3"])
        XCTAssertEqual(report.dropped, ["head.bias", "head.weight"])
        XCTAssertEqual(target.posEmbeds[0]?.shape, [1, 8, 8, 8])
    }

    /// A 1001-class head (background class first) loads into a 1000-class model without its first row.
    func testBackgroundClassRowDropped() throws {
        let source = PiT(config: PiTTests.tinyConfig, options: ModelOptions(numClasses: 1001, seed: 1))
        let target = PiT(config: PiTTests.tinyConfig, options: ModelOptions(numClasses: 1000, seed: 2))
        let src = source.stateDict()
        let report = try target.loadAdapting(stateDict: src, firstConv: "patch_embed.conv", classifier: "head")
        XCTAssertEqual(report.backgroundRowDropped.map(\.name).sorted(), ["head.bias", "head.weight"])
        XCTAssertTrue(report.reinitialised.isEmpty)
        XCTAssertEqual(target.head?.weight.value.scalars, Array(src["head.weight"]!.scalars[32...]))
        XCTAssertEqual(target.head?.bias?.value.scalars, Array(src["head.bias"]!.scalars[1...]))
        // Only for 1001 → 1000: 1001 → 999 re-initialises.
        let other = PiT(config: PiTTests.tinyConfig, options: ModelOptions(numClasses: 999, seed: 2))
        let r = try other.loadAdapting(stateDict: src, firstConv: "patch_embed.conv", classifier: "head")
        XCTAssertEqual(r.reinitialised.count, 2)
        XCTAssertTrue(r.backgroundRowDropped.isEmpty)
    }

    /// Any other mismatch is an error naming the tensor and both shapes, and nothing is written.
    func testOtherMismatchesAreNamedErrors() throws {
        var wide = PiTTests.tinyConfig
        wide.baseDims = [8, 8, 8]
        let source = PiT(config: wide, options: ModelOptions(numClasses: 7))
        let target = PiT(config: PiTTests.tinyConfig, options: ModelOptions(numClasses: 7))
        let before = Self.values(target)
        XCTAssertThrowsError(try target.loadAdapting(stateDict: source.stateDict(), firstConv: "patch_embed.conv", classifier: "head",
                                                     source: "wide.safetensors")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("wide.safetensors"), text)
            XCTAssertTrue(text.contains("transformers.0.blocks.0.attn.qkv.weight: model [24, 8], checkpoint [48, 16]"), text)
        }
        XCTAssertEqual(Self.values(target), before, "nothing written")
        // A missing block tensor is not a head: still an error.
        var dict = PiT(config: PiTTests.tinyConfig, options: ModelOptions(numClasses: 7)).stateDict()
        dict["norm.weight"] = nil
        XCTAssertThrowsError(try target.loadAdapting(stateDict: dict, firstConv: "patch_embed.conv", classifier: "head")) { e in
            XCTAssertTrue("\(e)".contains("missing (1): norm.weight"), "\(e)")
        }
        // A first conv of 2 channels cannot become 4 (timm adapts RGB only).
        let two = PiT(config: PiTTests.tinyConfig, options: ModelOptions(numClasses: 7, inChannels: 2))
        let four = PiT(config: PiTTests.tinyConfig, options: ModelOptions(numClasses: 7, inChannels: 4))
        XCTAssertThrowsError(try four.loadAdapting(stateDict: two.stateDict(), firstConv: "patch_embed.conv", classifier: "head")) { e in
            XCTAssertTrue("\(e)".contains("patch_embed.conv.weight: model [8, 4, 8, 8], checkpoint [8, 2, 8, 8]"), "\(e)")
        }
    }
}
