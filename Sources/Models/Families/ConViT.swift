// ConViT — Vision Transformer with gated positional self-attention.
//
// "ConViT: Improving Vision Transformers with Soft Convolutional Inductive Biases",
// d'Ascoli et al., arXiv:2103.10697. Reproduces MindCV's `convit.py` (docs/models.md §6): the first
// `localUpToLayer` blocks use GPSA on the patch tokens only, the class token joins just before the
// first MHSA block, LayerNorm eps 1e-7, tanh GELU, no q/k/v bias. Canonical names are timm's `ConVit`
// keys: GPSA has a fused `attn.qk` and a separate `attn.v`, MHSA a fused `attn.qkv`, the classifier
// is `head` (MindCV: `classifier`). The GPSA attention itself is in ConViTGPSA.swift.

import Tensor

// MARK: - Configuration

/// Architecture and numerics of a ConViT. Defaults follow MindCV; presets `tiny` … `basePlus`.
public struct ConViTConfig: Sendable, Equatable, SingleEpsilonNumerics {
    /// Input side. MindCV hard-codes the relative-position table for 14×14 patches (224 px); here the
    /// grid is derived from the image size (`imageSize / patchSize` per side) for any size.
    public var imageSize: Int
    public var patchSize: Int
    /// Total token width D (MindCV's `embed_dim`; timm's is per head).
    public var embedDim: Int
    public var depth: Int
    public var heads: Int
    public var mlpRatio: Double
    /// Bias on the q/k/v projections (off in every variant).
    public var qkvBias: Bool
    /// Blocks `0..<localUpToLayer` use GPSA; the class token is prepended before block `localUpToLayer`.
    public var localUpToLayer: Int
    /// α of the GPSA local initialisation.
    public var localityStrength: Float
    /// Apply the GPSA local initialisation (v = identity, pos_proj = locality kernels).
    public var useLocalInit: Bool
    /// LayerNorm epsilon of every norm (MindSpore default 1e-7; timm 1e-6).
    public var layerNormEps: Float
    /// MindSpore's GELU is the tanh approximation; timm's is exact.
    public var gelu: GELUApproximation

    public init(imageSize: Int = 224, patchSize: Int = 16, embedDim: Int, depth: Int = 12, heads: Int, mlpRatio: Double = 4,
                qkvBias: Bool = false, localUpToLayer: Int = 10, localityStrength: Float = 1, useLocalInit: Bool = true,
                layerNormEps: Float = 1e-7, gelu: GELUApproximation = .tanh) {
        precondition(localUpToLayer >= 0 && localUpToLayer <= depth, "ConViT: localUpToLayer \(localUpToLayer) outside 0...\(depth)")
        self.imageSize = imageSize; self.patchSize = patchSize; self.embedDim = embedDim; self.depth = depth
        self.heads = heads; self.mlpRatio = mlpRatio; self.qkvBias = qkvBias; self.localUpToLayer = localUpToLayer
        self.localityStrength = localityStrength; self.useLocalInit = useLocalInit; self.layerNormEps = layerNormEps
        self.gelu = gelu
    }

    /// Patches per side for a given input side.
    public func gridSize(imageSize: Int) -> Int { imageSize / patchSize }

    /// Trainable parameters in closed form (docs/models.md §1), head included when `numClasses > 0`.
    public func parameterCount(numClasses: Int = 1000, inChannels: Int = 3, imageSize: Int? = nil) -> Int {
        let d = embedDim, hidden = Int(Double(d) * mlpRatio), g = gridSize(imageSize: imageSize ?? self.imageSize)
        let block = 4 * d + 3 * d * d + (qkvBias ? 3 * d : 0) + d * d + d + hidden * d + hidden + d * hidden + d
        var n = d * inChannels * patchSize * patchSize + d + g * g * d + d
        n += depth * block + localUpToLayer * 5 * heads + 2 * d
        if numClasses > 0 { n += numClasses * d + numClasses }
        return n
    }
}

// MARK: - Blocks

/// A ConViT block: pre-norm, GPSA (blocks before `localUpToLayer`, patch tokens only) or fused-qkv
/// MHSA (after, class token included). `x: [B, N, D]` → `[B, N, D]`.
/// Keys: `norm1.*`, `attn.*`, `norm2.*`, `mlp.fc1.*`, `mlp.fc2.*`.
public final class ConViTBlock: Module {
    public enum Mixer {
        case gpsa(GatedPositionalSelfAttention)
        case mhsa(Attention)
    }
    public let norm1: LayerNorm, norm2: LayerNorm, mlp: Mlp
    public let mixer: Mixer
    let dropPath: DropPath

    init(dim: Int, heads: Int, useGPSA: Bool, config: ConViTConfig, drop: Float, attnDrop: Float, dropPath: Float,
         state: ModelState, generator: inout RandomGenerator) {
        norm1 = LayerNorm(dim, eps: config.layerNormEps)
        if useGPSA {
            mixer = .gpsa(GatedPositionalSelfAttention(dim, heads: heads, qkvBias: config.qkvBias, attnDrop: attnDrop,
                                                       projDrop: drop, state: state, generator: &generator))
        } else {
            mixer = .mhsa(Attention(dim, heads: heads, qkvBias: config.qkvBias, attnDrop: attnDrop, projDrop: drop,
                                    state: state, generator: &generator))
        }
        norm2 = LayerNorm(dim, eps: config.layerNormEps)
        mlp = Mlp(dim, hidden: Int(Double(dim) * config.mlpRatio), drop: drop, gelu: config.gelu, state: state, generator: &generator)
        self.dropPath = DropPath(dropPath, state: state)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let h = norm1(x)
        let a: Tensor
        switch mixer {
        case .gpsa(let m): a = m(h)
        case .mhsa(let m): a = m(h)
        }
        let y = x + dropPath(a)
        return y + dropPath(mlp(norm2(y)))
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("norm1", norm1)
        switch mixer {
        case .gpsa(let m): v.child("attn", m)
        case .mhsa(let m): v.child("attn", m)
        }
        v.child("norm2", norm2); v.child("mlp", mlp)
    }
}

// MARK: - Model

/// ConViT (MindCV `ConViT`). Input `[B, C, H, W]` with H = W = the configured image size (strict);
/// the GPSA relative-position table follows the patch grid of that size.
///
/// Keys: `patch_embed.proj.*`, `cls_token [1,1,D]`, `pos_embed [1,N,D]` (patches only),
/// `blocks.{i}.*`, `norm.*`, `head.*`.
public final class ConViT: Classifier {
    public let config: ConViTConfig
    public let imageSize: Int
    public let state: ModelState
    public private(set) var numClasses: Int

    public let patchEmbed: Conv2d
    public let clsToken: Parameter
    public let posEmbed: Parameter
    public let blocks: [ConViTBlock]
    public let norm: LayerNorm
    public private(set) var head: Linear?
    let posDrop: Dropout
    var generator: RandomGenerator

    /// Builds and initialises a ConViT (docs/models.md §6.6: every Dense TruncatedNormal(0.02) with zero
    /// bias, cls/pos TruncatedNormal(0.02), patch conv TruncatedNormal(0.01) with the MindSpore
    /// default bias, LayerNorm 1/0, gating 1, then the GPSA local init when `config.useLocalInit`).
    /// `options.imageSize` (default `config.imageSize`) must be a multiple of the patch size; the
    /// position table and the relative-position grid are sized for it. `options.dropRate` feeds the
    /// position, projection and MLP dropouts; drop-path follows `linspace(0, rate, depth)` (MindCV's
    /// own default rate is 0.1, the zoo's default `ModelOptions` rate is 0).
    public init(config: ConViTConfig, options: ModelOptions = ModelOptions()) {
        let size = options.imageSize ?? config.imageSize
        precondition(size % config.patchSize == 0, "ConViT: image size \(size) is not a multiple of the patch size \(config.patchSize)")
        precondition(config.embedDim % config.heads == 0, "ConViT: width \(config.embedDim) not divisible by \(config.heads) heads")
        self.config = config; imageSize = size; numClasses = options.numClasses
        let state = ModelState(seed: options.seed)
        self.state = state
        var g = RandomGenerator(seed: options.seed)
        let d = config.embedDim, grid = config.gridSize(imageSize: size)
        patchEmbed = Conv2d(options.inChannels, d, kernel: config.patchSize, stride: config.patchSize, std: 0.01, generator: &g)
        TransformerFamilyInit.defaultConvBias(patchEmbed, generator: &g)
        clsToken = Parameter(Initializer.truncatedNormal([1, 1, d], std: 0.02, generator: &g))
        posEmbed = Parameter(Initializer.truncatedNormal([1, grid * grid, d], std: 0.02, generator: &g))
        let rates = TransformerFamilyInit.linspace(options.dropPathRate, config.depth)
        var blocks: [ConViTBlock] = []
        for i in 0..<config.depth {
            let blk = ConViTBlock(dim: d, heads: config.heads, useGPSA: i < config.localUpToLayer, config: config,
                                  drop: options.dropRate, attnDrop: options.attnDropRate, dropPath: rates[i],
                                  state: state, generator: &g)
            if config.useLocalInit, case .gpsa(let attn) = blk.mixer { attn.localInit(localityStrength: config.localityStrength) }
            blocks.append(blk)
        }
        self.blocks = blocks
        norm = LayerNorm(d, eps: config.layerNormEps)
        posDrop = Dropout(options.dropRate, state: state)
        generator = g
        head = nil
        resetClassifier(numClasses: options.numClasses)
    }

    /// `x: [B, C, H, W]` → normed class token `[B, D]`.
    public func forwardFeatures(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[2] == imageSize && x.shape[3] == imageSize,
                     "ConViT: input \(x.shape) must be [B, \(patchEmbed.weight.shape[1]), \(imageSize), \(imageSize)]")
        let b = x.shape[0], d = config.embedDim
        var t = posDrop(tokensFromMap(patchEmbed(x)) + posEmbed.value)  // [B, N, D]
        var hasClassToken = false
        for (i, blk) in blocks.enumerated() {
            if i == config.localUpToLayer {
                t = Tensor.concat([clsToken.value.expanded(to: [b, 1, d]), t], axis: 1)  // [B, 1 + N, D]
                hasClassToken = true
            }
            t = blk(t)
        }
        // All blocks local (localUpToLayer == depth): the class token joins after the last block.
        if !hasClassToken { t = Tensor.concat([clsToken.value.expanded(to: [b, 1, d]), t], axis: 1) }
        // The final LayerNorm is per token, so normalising only the class token is exact.
        return norm(t.slice(axis: 1, 0..<1).reshaped([b, d]))
    }

    /// `features: [B, D]` → logits `[B, K]` (or the features with `preLogits` / no head).
    public func forwardHead(_ features: Tensor, preLogits: Bool = false) -> Tensor {
        guard !preLogits, let head else { return features }
        return head(features)
    }

    public func resetClassifier(numClasses: Int) {
        self.numClasses = numClasses
        head = numClasses > 0 ? Linear(config.embedDim, numClasses, generator: &generator) : nil
    }

    /// timm's `no_weight_decay`: position table and class token.
    public var noWeightDecay: Set<String> { ["pos_embed", "cls_token"] }

    /// Patch tokens only (the class token joins later, without a position).
    public var positionEmbeddingLayouts: [String: PositionEmbeddingLayout] { ["pos_embed": .sequence(prefixTokens: 0)] }

    public func visit(_ v: inout ModuleVisitor) {
        v.param("cls_token", clsToken)
        v.param("pos_embed", posEmbed)
        v.child("patch_embed.proj", patchEmbed)
        v.children("blocks", blocks)
        v.child("norm", norm)
        v.child("head", head)
    }
}

// MARK: - Presets

extension ConViTConfig {
    public static let tiny = ConViTConfig(embedDim: 192, heads: 4)
    public static let tinyPlus = ConViTConfig(embedDim: 256, heads: 4)
    public static let small = ConViTConfig(embedDim: 432, heads: 9)
    public static let smallPlus = ConViTConfig(embedDim: 576, heads: 9)
    public static let base = ConViTConfig(embedDim: 768, heads: 16)
    public static let basePlus = ConViTConfig(embedDim: 1024, heads: 16)
}

// MARK: - Registry

extension ModelRegistry {
    /// MindCV trains every ConViT with drop-path rate 0.1.
    static let convitEntries: [ModelEntry] = [
        ("convit_tiny", ConViTConfig.tiny, 0.875), ("convit_tiny_plus", ConViTConfig.tinyPlus, 0.87),
        ("convit_small", ConViTConfig.small, 0.915), ("convit_small_plus", ConViTConfig.smallPlus, 0.93),
        ("convit_base", ConViTConfig.base, 0.93), ("convit_base_plus", ConViTConfig.basePlus, 0.925),
    ].map { name, config, crop in
        ModelEntry(name: name, family: "convit",
                   dataConfig: DataConfig(inputSize: [3, 224, 224], cropPct: crop, interpolation: "bicubic",
                                          firstConv: "patch_embed.proj", classifier: "head"),
                   countingRule: .total, defaultImageSize: 224, defaultDropPathRate: 0.1,
                   geometry: config.inputGeometry) { options in
            ConViT(config: config.with(numerics: options.numerics), options: options)
        }
    }
}
