// PiT — Pooling-based Vision Transformer.
//
// "Rethinking Spatial Dimensions of Vision Transformers", Heo et al., arXiv:2103.16302.
// Reproduces MindCV's `pit.py` (docs/models.md §3): overlapping conv patch embedding with a spatial
// position map, three transformer stages joined by depthwise-conv pooling (plus a Dense on the class
// token), LayerNorm eps 1e-6 everywhere, tanh GELU. Canonical names are timm's
// `PoolingVisionTransformer` keys: stage i's pooling is `transformers.{i}.pool.*` and runs before
// that stage's blocks (MindCV's `pools.{i-1}`; same computation), q/k/v are one fused `attn.qkv`.

import Tensor

// MARK: - Configuration

/// Architecture and numerics of a PiT. Defaults follow MindCV; presets `ti`, `xs`, `s`, `b`.
public struct PiTConfig: Sendable, Equatable, SingleEpsilonNumerics {
    public var imageSize: Int
    /// Patch-embedding conv kernel (16, pit_b 14), stride (8, pit_b 7), no padding.
    public var patchSize: Int
    public var stride: Int
    /// Per-head width of each stage; the stage width is `baseDims[s]·heads[s]`.
    public var baseDims: [Int]
    public var depth: [Int]
    public var heads: [Int]
    public var mlpRatio: Double
    /// LayerNorm epsilon of every norm (MindCV 1e-6, like timm).
    public var layerNormEps: Float
    /// MindSpore's GELU is the tanh approximation; timm's is exact.
    public var gelu: GELUApproximation

    public init(imageSize: Int = 224, patchSize: Int, stride: Int, baseDims: [Int], depth: [Int], heads: [Int],
                mlpRatio: Double = 4, layerNormEps: Float = 1e-6, gelu: GELUApproximation = .tanh) {
        precondition(baseDims.count == depth.count && depth.count == heads.count && !depth.isEmpty,
                     "PiT: baseDims \(baseDims), depth \(depth) and heads \(heads) must have one entry per stage")
        self.imageSize = imageSize; self.patchSize = patchSize; self.stride = stride; self.baseDims = baseDims
        self.depth = depth; self.heads = heads; self.mlpRatio = mlpRatio; self.layerNormEps = layerNormEps; self.gelu = gelu
    }

    /// Width of each stage, `baseDims[s]·heads[s]`.
    public var widths: [Int] { zip(baseDims, heads).map { $0 * $1 } }

    /// Side of the first token grid, `⌊(size − k)/s⌋ + 1`.
    public func gridSize(imageSize: Int) -> Int { (imageSize - patchSize) / stride + 1 }

    /// Trainable parameters in closed form (docs/models.md §1), head included when `numClasses > 0`.
    public func parameterCount(numClasses: Int = 1000, inChannels: Int = 3, imageSize: Int? = nil) -> Int {
        let w = widths, g = gridSize(imageSize: imageSize ?? self.imageSize)
        var n = w[0] * inChannels * patchSize * patchSize + w[0]  // patch conv
        n += w[0] * g * g + w[0]  // pos_embed, cls_token
        for (s, c) in w.enumerated() {
            let hidden = Int(Double(c) * mlpRatio)
            n += depth[s] * (4 * c + 3 * c * c + 3 * c + c * c + c + hidden * c + hidden + c * hidden + c)
            if s > 0 { n += w[s] * 9 + w[s] + w[s] * w[s - 1] + w[s] }  // pool conv + fc
        }
        n += 2 * w.last!
        if numClasses > 0 { n += numClasses * w.last! + numClasses }
        return n
    }
}

// MARK: - Blocks

/// PiT pooling between stages (timm `Pooling`, MindCV `conv_head_pooling`): the spatial map goes
/// through a 3×3 stride-2 pad-1 conv with `groups = C_in` (each input channel feeds
/// `C_out/C_in` outputs), the class token through a Dense. Keys: `conv.*`, `fc.*`.
public final class PiTPooling: Module {
    public let conv: Conv2d, fc: Linear

    public init(inChannels: Int, outChannels: Int, generator: inout RandomGenerator) {
        conv = Conv2d(inChannels, outChannels, kernel: 3, stride: 2, padding: 1, groups: inChannels, std: 0.02, generator: &generator)
        fc = Linear(inChannels, outChannels, generator: &generator)
    }

    /// `map: [B, C, H, W]` → `[B, C', ⌈H/2⌉, ⌈W/2⌉]`; `cls: [B, 1, C]` → `[B, 1, C']`.
    public func callAsFunction(map: Tensor, cls: Tensor) -> (map: Tensor, cls: Tensor) { (conv(map), fc(cls)) }

    public func visit(_ v: inout ModuleVisitor) { v.child("conv", conv); v.child("fc", fc) }
}

/// One PiT stage: optional pooling from the previous stage, then pre-norm blocks over
/// `[B, 1 + H·W, C]` (class token first). Keys: `pool.*`, `blocks.{j}.*`.
public final class PiTStage: Module {
    public let pool: PiTPooling?
    public let blocks: [ViTBlock]
    init(pool: PiTPooling?, blocks: [ViTBlock]) { self.pool = pool; self.blocks = blocks }
    public func visit(_ v: inout ModuleVisitor) { v.child("pool", pool); v.children("blocks", blocks) }
}

// MARK: - Model

/// Pooling-based Vision Transformer (MindCV `PoolingTransformer`). Input `[B, C, H, W]` with H = W =
/// the configured image size (the spatial position map is fixed-size, as in MindCV).
///
/// Keys: `patch_embed.conv.*`, `pos_embed [1, C0, G, G]`, `cls_token [1, 1, C0]`,
/// `transformers.{s}.pool.*` (s ≥ 1), `transformers.{s}.blocks.{j}.*`, `norm.*`, `head.*`.
public final class PiT: Classifier {
    public let config: PiTConfig
    public let imageSize: Int
    public let state: ModelState
    public private(set) var numClasses: Int

    public let patchEmbed: Conv2d
    public let posEmbed: Parameter
    public let clsToken: Parameter
    public let stages: [PiTStage]
    public let norm: LayerNorm
    public private(set) var head: Linear?
    let posDrop: Dropout
    var generator: RandomGenerator

    /// Builds and initialises a PiT (docs/models.md §3.5: pos/cls TruncatedNormal(0.02); every conv weight
    /// and bias U(±√(1/(kh·kw·C_in))); every Dense weight and bias U(±1/√out); LayerNorm 1/0).
    /// `options.dropRate` feeds the position dropout, the attention-output dropout and the MLP
    /// dropouts; block `i` of `T` gets drop-path `rate·i/T` (MindCV's schedule).
    public init(config: PiTConfig, options: ModelOptions = ModelOptions()) {
        let size = options.imageSize ?? config.imageSize
        let grid = config.gridSize(imageSize: size)
        precondition(size >= config.patchSize && grid > 0, "PiT: image size \(size) is smaller than the patch \(config.patchSize)")
        self.config = config; imageSize = size; numClasses = options.numClasses
        let state = ModelState(seed: options.seed)
        self.state = state
        var g = RandomGenerator(seed: options.seed)
        let w = config.widths
        patchEmbed = Initializer.withoutInitialization {
            Conv2d(options.inChannels, w[0], kernel: config.patchSize, stride: config.stride, std: 0.02, generator: &g)
        }
        TransformerFamilyInit.pitConv(patchEmbed, inChannels: options.inChannels, generator: &g)
        posEmbed = Parameter(Initializer.truncatedNormal([1, w[0], grid, grid], std: 0.02, generator: &g))
        clsToken = Parameter(Initializer.truncatedNormal([1, 1, w[0]], std: 0.02, generator: &g))
        let total = config.depth.reduce(0, +)
        var index = 0
        var stages: [PiTStage] = []
        for s in 0..<w.count {
            var pool: PiTPooling? = nil
            if s > 0 {
                precondition(w[s] % w[s - 1] == 0, "PiT: stage width \(w[s]) is not a multiple of \(w[s - 1]) (grouped pooling conv)")
                let p = Initializer.withoutInitialization { PiTPooling(inChannels: w[s - 1], outChannels: w[s], generator: &g) }
                TransformerFamilyInit.pitConv(p.conv, inChannels: w[s - 1], generator: &g)
                TransformerFamilyInit.pitLinear(p.fc, generator: &g)
                pool = p
            }
            var blocks: [ViTBlock] = []
            for _ in 0..<config.depth[s] {
                // built without drawing (its Dense layers are re-initialised right after)
                let blk = Initializer.withoutInitialization {
                    ViTBlock(dim: w[s], heads: config.heads[s], mlpRatio: config.mlpRatio, qkvBias: true,
                             eps: config.layerNormEps, gelu: config.gelu, projDrop: options.dropRate,
                             attnDrop: options.attnDropRate, dropPath: options.dropPathRate * Float(index) / Float(total),
                             state: state, generator: &g)
                }
                for l in blk.linears { TransformerFamilyInit.pitLinear(l, generator: &g) }
                blocks.append(blk)
                index += 1
            }
            stages.append(PiTStage(pool: pool, blocks: blocks))
        }
        self.stages = stages
        norm = LayerNorm(w.last!, eps: config.layerNormEps)
        posDrop = Dropout(options.dropRate, state: state)
        generator = g
        head = nil
        resetClassifier(numClasses: options.numClasses)
    }

    /// `x: [B, C, H, W]` → normed class token `[B, C_last]`.
    public func forwardFeatures(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[2] == imageSize && x.shape[3] == imageSize,
                     "PiT: input \(x.shape) must be [B, \(patchEmbed.weight.shape[1]), \(imageSize), \(imageSize)]")
        let b = x.shape[0]
        let map = posDrop(patchEmbed(x) + posEmbed.value)  // [B, C0, G, G]
        var side = map.shape[2]
        var tokens = tokensFromMap(map)  // [B, G·G, C0]
        var cls = clsToken.value.expanded(to: [b, 1, clsToken.shape[2]])  // [B, 1, C0]
        for (s, stage) in stages.enumerated() {
            if let pool = stage.pool {
                let pooled = pool(map: tokens.transposed(1, 2).reshaped([b, tokens.shape[2], side, side]), cls: cls)
                side = pooled.map.shape[2]
                tokens = tokensFromMap(pooled.map)  // [B, H'·W', C']
                cls = pooled.cls
            }
            var seq = Tensor.concat([cls, tokens], axis: 1)  // [B, 1 + H·W, C]
            for blk in stage.blocks { seq = blk(seq) }
            cls = seq.slice(axis: 1, 0..<1)
            if s + 1 < stages.count { tokens = seq.slice(axis: 1, 1..<seq.shape[1]) }
        }
        return norm(cls).reshaped([b, cls.shape[2]])
    }

    /// `features: [B, C]` → logits `[B, K]` (MindCV has no dropout in front of PiT's head).
    public func forwardHead(_ features: Tensor, preLogits: Bool = false) -> Tensor {
        guard !preLogits, let head else { return features }
        return head(features)
    }

    public func resetClassifier(numClasses: Int) {
        self.numClasses = numClasses
        if numClasses > 0 {
            let h = Initializer.withoutInitialization { Linear(config.widths.last!, numClasses, generator: &generator) }
            TransformerFamilyInit.pitLinear(h, generator: &generator)
            head = h
        } else {
            head = nil
        }
    }

    /// timm's `no_weight_decay`: position map and class token.
    public var noWeightDecay: Set<String> { ["pos_embed", "cls_token"] }

    public var positionEmbeddingLayouts: [String: PositionEmbeddingLayout] { ["pos_embed": .map] }

    public func visit(_ v: inout ModuleVisitor) {
        v.param("pos_embed", posEmbed)
        v.param("cls_token", clsToken)
        v.child("patch_embed.conv", patchEmbed)
        v.children("transformers", stages)
        v.child("norm", norm)
        v.child("head", head)
    }
}

// MARK: - Presets

extension PiTConfig {
    public static let ti = PiTConfig(patchSize: 16, stride: 8, baseDims: [32, 32, 32], depth: [2, 6, 4], heads: [2, 4, 8])
    public static let xs = PiTConfig(patchSize: 16, stride: 8, baseDims: [48, 48, 48], depth: [2, 6, 4], heads: [2, 4, 8])
    public static let s = PiTConfig(patchSize: 16, stride: 8, baseDims: [48, 48, 48], depth: [2, 6, 4], heads: [3, 6, 12])
    public static let b = PiTConfig(patchSize: 14, stride: 7, baseDims: [64, 64, 64], depth: [3, 6, 4], heads: [4, 8, 16])
}

// MARK: - Registry

extension ModelRegistry {
    static let pitEntries: [ModelEntry] = [
        ("pit_ti", PiTConfig.ti, 0.875), ("pit_xs", PiTConfig.xs, 0.875),
        ("pit_s", PiTConfig.s, 0.875), ("pit_b", PiTConfig.b, 0.9),
    ].map { name, config, crop in
        ModelEntry(name: name, family: "pit",
                   dataConfig: DataConfig(inputSize: [3, 224, 224], cropPct: crop, interpolation: "bicubic",
                                          firstConv: "patch_embed.conv", classifier: "head"),
                   countingRule: .total, defaultImageSize: 224, geometry: config.inputGeometry) { options in
            PiT(config: config.with(numerics: options.numerics), options: options)
        }
    }
}
