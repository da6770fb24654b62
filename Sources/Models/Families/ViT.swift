// ViT — Vision Transformer.
//
// "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
// Dosovitskiy et al., arXiv:2010.11929. Reproduces MindCV's `vit.py` (docs/models.md §4): tanh GELU,
// LayerNorm eps 1e-7, class token prepended before the 1-D position table is added, fused qkv.
// Canonical parameter names are timm's `VisionTransformer` keys (Tests/Fixtures/NAMING.md, docs/naming.md).
//
// This file also holds the pre-norm transformer block (`ViTBlock`) and the initialisation helpers
// that PiT and ConViT reuse.

import Tensor

// MARK: - Shared pieces (ViT, PiT, ConViT)

/// Weight initialisers of the MindCV ViT-family models, applied to already-built layers.
enum TransformerFamilyInit {
    /// MindSpore `Uniform(s)`: U(−s, s). Uninitialised inside `Initializer.withoutInitialization`.
    static func uniform(_ shape: [Int], bound: Float, generator: inout RandomGenerator) -> Tensor {
        if Initializer.isSkipping { return Tensor(uninitializedShape: shape) }
        return Tensor.uniform(shape, low: -bound, high: bound, generator: &generator)
    }

    /// Xavier-uniform on the matrix view `[rows, cols]` of a weight: U(±√(6/(rows+cols))).
    static func xavierUniform(_ shape: [Int], fanIn: Int, fanOut: Int, generator: inout RandomGenerator) -> Tensor {
        uniform(shape, bound: (6 / Float(fanIn + fanOut)).squareRoot(), generator: &generator)
    }

    /// ViT's Dense init: Xavier-uniform weight, zero bias.
    static func xavierLinear(_ l: Linear, generator: inout RandomGenerator) {
        l.weight = Parameter(xavierUniform(l.weight.shape, fanIn: l.inFeatures, fanOut: l.outFeatures, generator: &generator))
        if l.bias != nil { l.bias = Parameter(Tensor.zeros([l.outFeatures])) }
    }

    /// PiT's Dense init: weight and bias U(±1/√out_features) (MindCV reads `weight.shape[0]`).
    static func pitLinear(_ l: Linear, generator: inout RandomGenerator) {
        let bound = 1 / Float(l.outFeatures).squareRoot()
        l.weight = Parameter(uniform(l.weight.shape, bound: bound, generator: &generator))
        if l.bias != nil { l.bias = Parameter(uniform([l.outFeatures], bound: bound, generator: &generator)) }
    }

    /// PiT's conv init: weight and bias U(±√(1/n)), n = kh·kw·in_channels (full input channels,
    /// even for a grouped conv).
    static func pitConv(_ c: Conv2d, inChannels: Int, generator: inout RandomGenerator) {
        let s = c.weight.shape
        let bound = (1 / Float(s[2] * s[3] * inChannels)).squareRoot()
        c.weight = Parameter(uniform(s, bound: bound, generator: &generator))
        if c.bias != nil { c.bias = Parameter(uniform([s[0]], bound: bound, generator: &generator)) }
    }

    /// MindSpore 2.x default conv bias (what MindCV leaves on the patch convs): U(±1/√fan_in),
    /// fan_in = in/groups·kh·kw.
    static func defaultConvBias(_ c: Conv2d, generator: inout RandomGenerator) {
        guard c.bias != nil else { return }
        let s = c.weight.shape
        c.bias = Parameter(uniform([s[0]], bound: 1 / Float(s[1] * s[2] * s[3]).squareRoot(), generator: &generator))
    }

    /// `linspace(0, rate, n)` (timm / MindCV ViT and ConViT drop-path schedule).
    static func linspace(_ rate: Float, _ n: Int) -> [Float] {
        n <= 1 ? [Float](repeating: 0, count: n) : (0..<n).map { rate * Float($0) / Float(n - 1) }
    }
}

/// Pre-norm transformer block shared by ViT and PiT (timm `Block` without LayerScale):
/// `x ← x + DropPath(Attn(LN1(x)))`, `x ← x + DropPath(MLP(LN2(x)))`. `x: [B, N, C]` → `[B, N, C]`.
/// Keys: `norm1.*`, `attn.qkv.*`, `attn.proj.*`, `norm2.*`, `mlp.fc1.*`, `mlp.fc2.*`.
public final class ViTBlock: Module {
    public let norm1: LayerNorm, attn: Attention, norm2: LayerNorm, mlp: Mlp
    let dropPath: DropPath

    /// - Parameters: `projDrop` feeds the attention output dropout and both MLP dropouts (MindCV's
    ///   `drop`); `eps` is the LayerNorm epsilon of both norms.
    public init(dim: Int, heads: Int, mlpRatio: Double, qkvBias: Bool, eps: Float, gelu: GELUApproximation,
                projDrop: Float, attnDrop: Float, dropPath: Float, state: ModelState, generator: inout RandomGenerator) {
        norm1 = LayerNorm(dim, eps: eps)
        attn = Attention(dim, heads: heads, qkvBias: qkvBias, attnDrop: attnDrop, projDrop: projDrop, state: state,
                         generator: &generator)
        norm2 = LayerNorm(dim, eps: eps)
        mlp = Mlp(dim, hidden: Int(Double(dim) * mlpRatio), drop: projDrop, gelu: gelu, state: state, generator: &generator)
        self.dropPath = DropPath(dropPath, state: state)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = x + dropPath(attn(norm1(x)))
        return y + dropPath(mlp(norm2(y)))
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("norm1", norm1); v.child("attn", attn); v.child("norm2", norm2); v.child("mlp", mlp)
    }

    /// The four Dense layers of the block, for family initialisers.
    var linears: [Linear] { [attn.qkv, attn.proj, mlp.fc1, mlp.fc2] }
}

/// `[B, C, H, W]` → `[B, H·W, C]` (row-major tokens: index `y·W + x`).
@inline(__always)
func tokensFromMap(_ x: Tensor) -> Tensor {
    x.reshaped([x.shape[0], x.shape[1], x.shape[2] * x.shape[3]]).transposed(1, 2)
}

// MARK: - Configuration

/// Architecture and numerics of a ViT. Defaults follow MindCV (`vit.py`); the presets are
/// `ViTConfig.b16`, `.l16`, `.b32`, `.l32` at 224 or 384.
public struct ViTConfig: Sendable, Equatable, SingleEpsilonNumerics {
    public var imageSize: Int
    public var patchSize: Int
    /// Token width D.
    public var embedDim: Int
    public var depth: Int
    public var heads: Int
    public var mlpRatio: Double
    /// Bias on the fused qkv projection (on for every MindCV variant).
    public var qkvBias: Bool
    /// LayerNorm epsilon of norm1/norm2/final norm (MindSpore default 1e-7; timm 1e-6).
    public var layerNormEps: Float
    /// MindSpore's GELU is the tanh approximation; timm's is exact.
    public var gelu: GELUApproximation
    /// Dropout after adding the position table (MindCV `pos_drop_rate`, default 0).
    public var posDropRate: Float
    /// Dropout after the attention projection and in the MLP (MindCV `proj_drop_rate`, default 0).
    public var projDropRate: Float

    public init(imageSize: Int = 224, patchSize: Int = 16, embedDim: Int = 768, depth: Int = 12, heads: Int = 12,
                mlpRatio: Double = 4, qkvBias: Bool = true, layerNormEps: Float = 1e-7, gelu: GELUApproximation = .tanh,
                posDropRate: Float = 0, projDropRate: Float = 0) {
        self.imageSize = imageSize; self.patchSize = patchSize; self.embedDim = embedDim; self.depth = depth
        self.heads = heads; self.mlpRatio = mlpRatio; self.qkvBias = qkvBias; self.layerNormEps = layerNormEps
        self.gelu = gelu; self.posDropRate = posDropRate; self.projDropRate = projDropRate
    }

    /// Patches per side for a given input side.
    public func gridSize(imageSize: Int) -> Int { imageSize / patchSize }

    /// Trainable parameters in closed form (docs/models.md §1), head included when `numClasses > 0`.
    public func parameterCount(numClasses: Int = 1000, inChannels: Int = 3, imageSize: Int? = nil) -> Int {
        let d = embedDim, hidden = Int(Double(d) * mlpRatio)
        let n = gridSize(imageSize: imageSize ?? self.imageSize)
        let block = 4 * d + (3 * d * d + (qkvBias ? 3 * d : 0)) + (d * d + d) + (hidden * d + hidden) + (d * hidden + d)
        let embed = d * inChannels * patchSize * patchSize + d
        let tokens = d + (n * n + 1) * d
        let head = numClasses > 0 ? numClasses * d + numClasses : 0
        return embed + tokens + depth * block + 2 * d + head
    }
}

// MARK: - Model

/// Vision Transformer (MindCV `VisionTransformer`). Input `[B, C, H, W]` with H = W = the configured
/// image size (strict, like MindCV's PatchEmbed); tokens stay `[B, N, D]` throughout.
///
/// Keys: `patch_embed.proj.*`, `cls_token [1,1,D]`, `pos_embed [1,N+1,D]`, `blocks.{i}.*`, `norm.*`, `head.*`.
public final class ViT: Classifier {
    public let config: ViTConfig
    public let imageSize: Int
    public let state: ModelState
    public private(set) var numClasses: Int

    public let patchEmbed: Conv2d
    public let clsToken: Parameter
    public let posEmbed: Parameter
    public let blocks: [ViTBlock]
    public let norm: LayerNorm
    public private(set) var head: Linear?
    let posDrop: Dropout, headDrop: Dropout
    var generator: RandomGenerator

    /// Builds and initialises a ViT (docs/models.md §4.5: cls/pos TruncatedNormal(0.02), patch conv
    /// Xavier-uniform on its `[D, C·p·p]` view with the MindSpore default bias, Dense Xavier-uniform
    /// with zero bias, LayerNorm 1/0). `options.imageSize` (default `config.imageSize`) sizes the
    /// position table and must be a multiple of the patch size; `options.dropRate` is the dropout in
    /// front of the head, `dropPathRate` follows `linspace(0, rate, depth)`.
    public init(config: ViTConfig, options: ModelOptions = ModelOptions()) {
        let size = options.imageSize ?? config.imageSize
        precondition(size % config.patchSize == 0, "ViT: image size \(size) is not a multiple of the patch size \(config.patchSize)")
        precondition(config.embedDim % config.heads == 0, "ViT: width \(config.embedDim) not divisible by \(config.heads) heads")
        self.config = config; imageSize = size; numClasses = options.numClasses
        let state = ModelState(seed: options.seed)
        self.state = state
        var g = RandomGenerator(seed: options.seed)
        let d = config.embedDim, p = config.patchSize, grid = size / p
        patchEmbed = Initializer.withoutInitialization { Conv2d(options.inChannels, d, kernel: p, stride: p, std: 0.02, generator: &g) }
        patchEmbed.weight = Parameter(TransformerFamilyInit.xavierUniform(patchEmbed.weight.shape, fanIn: options.inChannels * p * p,
                                                                          fanOut: d, generator: &g))
        TransformerFamilyInit.defaultConvBias(patchEmbed, generator: &g)
        clsToken = Parameter(Initializer.truncatedNormal([1, 1, d], std: 0.02, generator: &g))
        posEmbed = Parameter(Initializer.truncatedNormal([1, grid * grid + 1, d], std: 0.02, generator: &g))
        let rates = TransformerFamilyInit.linspace(options.dropPathRate, config.depth)
        var blocks: [ViTBlock] = []
        for i in 0..<config.depth {
            // built without drawing (its Dense layers are re-initialised right after)
            let b = Initializer.withoutInitialization {
                ViTBlock(dim: d, heads: config.heads, mlpRatio: config.mlpRatio, qkvBias: config.qkvBias,
                         eps: config.layerNormEps, gelu: config.gelu, projDrop: config.projDropRate,
                         attnDrop: options.attnDropRate, dropPath: rates[i], state: state, generator: &g)
            }
            for l in b.linears { TransformerFamilyInit.xavierLinear(l, generator: &g) }
            blocks.append(b)
        }
        self.blocks = blocks
        norm = LayerNorm(d, eps: config.layerNormEps)
        posDrop = Dropout(config.posDropRate, state: state)
        headDrop = Dropout(options.dropRate, state: state)
        generator = g
        head = nil
        resetClassifier(numClasses: options.numClasses)
    }

    /// `x: [B, C, H, W]` → normed class token `[B, D]`.
    public func forwardFeatures(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[2] == imageSize && x.shape[3] == imageSize,
                     "ViT: input \(x.shape) must be [B, \(patchEmbed.weight.shape[1]), \(imageSize), \(imageSize)]")
        let b = x.shape[0], d = config.embedDim
        var t = tokensFromMap(patchEmbed(x))  // [B, N, D]
        t = Tensor.concat([clsToken.value.expanded(to: [b, 1, d]), t], axis: 1) + posEmbed.value  // [B, N+1, D]
        t = posDrop(t)
        for blk in blocks { t = blk(t) }
        // The final LayerNorm is per token, so normalising only the class token is exact.
        return norm(t.slice(axis: 1, 0..<1).reshaped([b, d]))
    }

    /// `features: [B, D]` → head dropout → logits `[B, K]` (or the features with `preLogits` / no head).
    public func forwardHead(_ features: Tensor, preLogits: Bool = false) -> Tensor {
        let x = headDrop(features)
        guard !preLogits, let head else { return x }
        return head(x)
    }

    public func resetClassifier(numClasses: Int) {
        self.numClasses = numClasses
        if numClasses > 0 {
            let h = Initializer.withoutInitialization { Linear(config.embedDim, numClasses, generator: &generator) }
            TransformerFamilyInit.xavierLinear(h, generator: &generator)
            head = h
        } else {
            head = nil
        }
    }

    /// timm's `no_weight_decay`: position table and class token.
    public var noWeightDecay: Set<String> { ["pos_embed", "cls_token"] }

    /// The class token's row comes first.
    public var positionEmbeddingLayouts: [String: PositionEmbeddingLayout] { ["pos_embed": .sequence(prefixTokens: 1)] }

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

extension ViTConfig {
    public static func b16(imageSize: Int = 224) -> ViTConfig { ViTConfig(imageSize: imageSize, patchSize: 16, embedDim: 768, depth: 12, heads: 12) }
    public static func l16(imageSize: Int = 224) -> ViTConfig { ViTConfig(imageSize: imageSize, patchSize: 16, embedDim: 1024, depth: 24, heads: 16) }
    public static func b32(imageSize: Int = 224) -> ViTConfig { ViTConfig(imageSize: imageSize, patchSize: 32, embedDim: 768, depth: 12, heads: 12) }
    public static func l32(imageSize: Int = 224) -> ViTConfig { ViTConfig(imageSize: imageSize, patchSize: 32, embedDim: 1024, depth: 24, heads: 16) }
}

// MARK: - Registry

extension ModelRegistry {
    static let vitEntries: [ModelEntry] = {
        let presets: [(String, @Sendable (Int) -> ViTConfig, Int)] = [
            ("vit_b_16_224", ViTConfig.b16, 224), ("vit_b_16_384", ViTConfig.b16, 384),
            ("vit_l_16_224", ViTConfig.l16, 224), ("vit_l_16_384", ViTConfig.l16, 384),
            ("vit_b_32_224", ViTConfig.b32, 224), ("vit_b_32_384", ViTConfig.b32, 384),
            ("vit_l_32_224", ViTConfig.l32, 224),
        ]
        return presets.map { name, make, size in
            ModelEntry(name: name, family: "vit",
                       dataConfig: DataConfig(inputSize: [3, size, size], cropPct: 0.875, interpolation: "bicubic",
                                              firstConv: "patch_embed.proj", classifier: "head"),
                       // timm's ViT weights expect inputs scaled to ±1 and, at 384 px, no crop margin.
                       timmDataConfig: DataConfig(inputSize: [3, size, size], cropPct: size == 384 ? 1 : 0.9, interpolation: "bicubic",
                                                  mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5],
                                                  firstConv: "patch_embed.proj", classifier: "head"),
                       countingRule: .headExcluded, defaultImageSize: size, geometry: make(size).inputGeometry) { options in
                ViT(config: make(size).with(numerics: options.numerics), options: options)
            }
        }
    }()
}
