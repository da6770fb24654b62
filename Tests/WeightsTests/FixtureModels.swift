import Foundation
import Models
import Tensor
import TestSupport
import XCTest

/// The tiny fixture cases (Tests/Fixtures/manifest.json `mindcv_kwargs`) as models, their family,
/// and their reference tensors from the twin safetensors file.
enum FixtureModels {
    static let cases = ["pit_tiny", "vit_tiny", "pvt_tiny", "convit_tiny_g14", "convit_tiny_g8", "visformer_tiny", "visformer_tiny_v2"]
    static var allCases: [String] { cases + cases.map { $0 + "_fanin" } }

    static func family(_ caseName: String) -> String { String(caseName.prefix { $0 != "_" }) }

    static func model(_ caseName: String) -> any Classifier {
        let base = caseName.hasSuffix("_fanin") ? String(caseName.dropLast(6)) : caseName
        let options = ModelOptions(numClasses: 7)
        switch base {
        case "pit_tiny":
            return PiT(config: PiTConfig(imageSize: 32, patchSize: 8, stride: 4, baseDims: [4, 4, 4], depth: [1, 2, 1], heads: [2, 4, 8]), options: options)
        case "vit_tiny":
            return ViT(config: ViTConfig(imageSize: 32, patchSize: 8, embedDim: 32, depth: 2, heads: 4, mlpRatio: 4, qkvBias: true), options: options)
        case "pvt_tiny":
            return PyramidVisionTransformer(config: PVTConfig(imageSize: 64, patchSize: 4, embedDims: [8, 16, 24, 32],
                                                              numHeads: [1, 2, 3, 4], mlpRatios: [8, 8, 4, 4], depths: [1, 2, 1, 2],
                                                              srRatios: [8, 4, 2, 1], qkvBias: true), options: options)
        case "convit_tiny_g14":
            return ConViT(config: ConViTConfig(imageSize: 56, patchSize: 4, embedDim: 32, depth: 3, heads: 4, localUpToLayer: 2, localityStrength: 1), options: options)
        case "convit_tiny_g8":
            return ConViT(config: ConViTConfig(imageSize: 32, patchSize: 4, embedDim: 36, depth: 3, heads: 9, localUpToLayer: 1, localityStrength: 2), options: options)
        case "visformer_tiny":
            return Visformer(config: VisformerConfig(imageSize: 64, initChannels: 8, embedDim: 24, depths: [0, 2, 1, 1], numHeads: [2, 2, 2, 2]), options: options)
        default:
            return Visformer(config: VisformerConfig(imageSize: 64, initChannels: 8, embedDim: 32, depths: [1, 1, 2, 1],
                                                     numHeads: [1, 2, 2, 4], qkScaleExponent: -0.5), options: options)
        }
    }

    static func keys(_ model: any Classifier) -> [String] {
        model.namedParameters().map(\.name) + model.namedBuffers().map(\.name)
    }

    /// The twin safetensors file's canonical weights (`param.*` and `buffer.*`).
    static func canonicalWeights(_ caseName: String) throws -> (weights: [String: Tensor], file: SafeTensorsFile) {
        let st = try SafeTensorsFile(path: Fixtures.path("\(caseName).safetensors"))
        var w: [String: Tensor] = [:]
        for (k, v) in st.tensors {
            if k.hasPrefix("param.") { w[String(k.dropFirst(6))] = v }
            if k.hasPrefix("buffer.") { w[String(k.dropFirst(7))] = v }
        }
        return (w, st)
    }

    static func ckptPath(_ caseName: String) -> String { Fixtures.path("ckpt/\(caseName).ckpt") }
}

func bitPatterns(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }
