// PVT v1 — Pyramid Vision Transformer.
// "Pyramid Vision Transformer: A Versatile Backbone for Dense Prediction without Convolutions",
// Wang et al., ICCV 2021, arXiv:2102.12122.
//
// Reproduces MindCV's `pvt.py` numerically (docs/models.md §5) under the parameter names of the
// original code (whai362/PVT `classification/pvt.py`, see Tests/Fixtures/NAMING.md):
// `patch_embed{s}.proj/.norm`, `pos_embed{s}`, `cls_token`, `block{s}.{j}.{norm1,attn.{q,kv,sr,norm,proj},norm2,mlp}`,
// `norm`, `head`.
//
// Shapes: B batch, C_s stage width, N = H·W tokens of a stage (stage 4: H·W + 1 with the class
// token), M = (H/sr)·(W/sr) key/value tokens after spatial reduction, h heads, d = C/h.

import Tensor

// MARK: - Configuration

/// How the per-block drop-path rates are taken from `linspace(0, dropPathRate, Σdepths)`.
public enum PVTDropPathIndexing: String, Sendable, Codable {
    /// MindCV: stage s (0-based) starts at index `s·depths[0]` (equal to `cumulative` when every
    /// stage has the same depth, as in pvt_tiny; smaller rates than intended otherwise). Indices past
    /// the end are clamped to the last rate.
    case mindcv
    /// The original code: the global block number.
    case cumulative
}

/// The architecture of a PVT v1 network and its numerical fidelity switches (construction options —
/// classes, input channels, dropout rates, seed — come in `ModelOptions`). The defaults are MindCV's
/// pvt_tiny at 224 (LayerNorm epsilons, tanh GELU, drop-path indexing).
public struct PVTConfig: Sendable, Equatable {
    public var imageSize: Int = 224
    /// Side of the stage-1 patch (stages 2–4 always use 2).
    public var patchSize: Int = 4
    public var embedDims: [Int] = [64, 128, 320, 512]
    public var numHeads: [Int] = [1, 2, 5, 8]
    public var mlpRatios: [Int] = [8, 8, 4, 4]
    public var depths: [Int] = [2, 2, 2, 2]
    /// Spatial-reduction ratio of the keys/values per stage (1 = none).
    public var srRatios: [Int] = [8, 4, 2, 1]
    public var qkvBias: Bool = true
    /// Attention logit scale; nil = head_dim^-0.5.
    public var qkScale: Float? = nil
    public var dropPathIndexing: PVTDropPathIndexing = .mindcv
    /// MLP activation: MindCV's GELU is the tanh form (the original uses the exact erf form).
    public var gelu: GELUApproximation = .tanh
    /// LayerNorm epsilons (MindCV: patch embeds and block norm1 1e-5, norm2 and final 1e-6, SR norm
    /// 1e-7; the original: 1e-5 for the patch embeds and SR norm, 1e-6 for the others).
    public var patchEmbedNormEps: Float = 1e-5
    public var norm1Eps: Float = 1e-5
    public var norm2Eps: Float = 1e-6
    public var srNormEps: Float = 1e-7
    public var finalNormEps: Float = 1e-6

    public init(imageSize: Int = 224, patchSize: Int = 4, embedDims: [Int] = [64, 128, 320, 512], numHeads: [Int] = [1, 2, 5, 8],
                mlpRatios: [Int] = [8, 8, 4, 4], depths: [Int] = [2, 2, 2, 2], srRatios: [Int] = [8, 4, 2, 1],
                qkvBias: Bool = true, qkScale: Float? = nil, dropPathIndexing: PVTDropPathIndexing = .mindcv,
                gelu: GELUApproximation = .tanh) {
        self.imageSize = imageSize; self.patchSize = patchSize
        self.embedDims = embedDims; self.numHeads = numHeads; self.mlpRatios = mlpRatios; self.depths = depths
        self.srRatios = srRatios; self.qkvBias = qkvBias; self.qkScale = qkScale
        self.dropPathIndexing = dropPathIndexing; self.gelu = gelu
    }

    /// Side of the stored position-embedding grid of stage `s` (0-based), as MindCV/whai362 size
    /// it: `img // patch` for stage 1, `img // 2^(s+1) // 2` after.
    public func positionGrid(stage s: Int) -> Int { s == 0 ? imageSize / patchSize : imageSize / (1 << (s + 1)) / 2 }

    /// Drop-path rate of block `j` of stage `s` for the network-wide rate `dropPathRate`.
    public func dropPath(stage s: Int, block j: Int, rate dropPathRate: Float) -> Float {
        let total = depths.reduce(0, +)
        guard total > 1, dropPathRate > 0 else { return 0 }
        let index: Int
        switch dropPathIndexing {
        case .mindcv: index = min(s * depths[0] + j, total - 1)
        case .cumulative: index = depths.prefix(s).reduce(0, +) + j
        }
        return dropPathRate * Float(index) / Float(total - 1)
    }
}

extension PVTConfig {
    /// Trainable parameters in closed form (docs/models.md §1), head included when `numClasses > 0`.
    public func parameterCount(numClasses: Int = 1000, inChannels: Int = 3, imageSize: Int? = nil) -> Int {
        var c = self
        if let imageSize { c.imageSize = imageSize }
        var n = 0
        for s in 0..<4 {
            let d = embedDims[s], inC = s == 0 ? inChannels : embedDims[s - 1], p = s == 0 ? patchSize : 2
            let grid = c.positionGrid(stage: s)
            n += d * inC * p * p + d + 2 * d  // patch conv + LayerNorm
            n += (grid * grid + (s == 3 ? 1 : 0)) * d  // pos_embed
            let hidden = d * mlpRatios[s], r = srRatios[s], bias = qkvBias ? 3 * d : 0
            var block = 2 * d + 3 * d * d + bias + d * d + d + 2 * d + d * hidden + hidden + hidden * d + d
            if r > 1 { block += d * d * r * r + d + 2 * d }  // sr conv + its LayerNorm
            n += depths[s] * block
        }
        n += embedDims[3] + 2 * embedDims[3]  // cls_token, final norm
        if numClasses > 0 { n += numClasses * embedDims[3] + numClasses }
        return n
    }
}

// MARK: - Blocks

/// Conv(k = stride = p) → flatten → LayerNorm: an NCHW image `[B, C_in, H, W]` or a channels-last
/// grid `[B, H, W, C_in]` → `([B, H'·W', C], H', W')`. Padding follows MindSpore's default
/// `pad_mode='same'`: none when p divides the side, otherwise `⌈H/p⌉·p − H` zeros split
/// top/bottom with the extra one at the bottom (likewise left/right).
public final class PVTPatchEmbed: Module {
    public let proj: Conv2d
    public let norm: LayerNorm
    public let patchSize: Int

    init(_ inChannels: Int, _ dim: Int, patchSize: Int, eps: Float, generator: inout RandomGenerator) {
        self.patchSize = patchSize
        proj = Conv2d(inChannels, dim, kernel: patchSize, stride: patchSize, bias: true, generator: &generator)
        norm = LayerNorm(dim, eps: eps)
    }

    /// `x: [B, C_in, H, W]` (NCHW image).
    public func callAsFunction(_ x: Tensor) -> (tokens: Tensor, height: Int, width: Int) {
        let y = proj(padSame(x, stride: patchSize, axes: (2, 3)))
        let b = y.shape[0], c = y.shape[1], h = y.shape[2], w = y.shape[3]
        return (norm(y.reshaped([b, c, h * w]).transposed(1, 2)), h, w)
    }

    /// `x: [B, H, W, C_in]` (the previous stage's tokens as a grid): the conv as one GEMM over
    /// patches, which yields tokens without transposing the map.
    public func callAsFunction(channelsLast x: Tensor) -> (tokens: Tensor, height: Int, width: Int) {
        let padded = padSame(x, stride: patchSize, axes: (1, 2))
        let (t, h, w) = patchProjection(channelsLast: padded, weight: proj.weight.value, bias: proj.bias?.value, patch: patchSize)
        return (norm(t), h, w)
    }

    public func visit(_ v: inout ModuleVisitor) { v.child("proj", proj); v.child("norm", norm) }
}

/// Spatial-reduction attention. `x: [B, N, C]` (normed tokens of an H×W grid, plus a leading class
/// token in stage 4 where sr = 1) → `[B, N, C]`. Queries see every token; keys and values come from
/// the grid reduced by an sr×sr stride-sr conv and LayerNorm (sr > 1), so there are M = N/sr² of them.
public final class PVTAttention: Module {
    public let q: Linear, kv: Linear, proj: Linear
    public let sr: Conv2d?
    public let norm: LayerNorm?
    public let heads: Int, headDim: Int, srRatio: Int, scale: Float
    let attnDrop: Dropout, projDrop: Dropout

    init(_ dim: Int, heads: Int, srRatio: Int, config c: PVTConfig, options o: ModelOptions, state: ModelState,
         generator: inout RandomGenerator) {
        precondition(dim % heads == 0, "PVT: width \(dim) is not divisible by \(heads) heads")
        self.heads = heads; headDim = dim / heads; self.srRatio = srRatio
        scale = c.qkScale ?? 1 / Float(dim / heads).squareRoot()
        q = Linear(dim, dim, bias: c.qkvBias, generator: &generator)
        kv = Linear(dim, 2 * dim, bias: c.qkvBias, generator: &generator)
        proj = Linear(dim, dim, generator: &generator)
        if srRatio > 1 {
            sr = Conv2d(dim, dim, kernel: srRatio, stride: srRatio, bias: true, generator: &generator)
            norm = LayerNorm(dim, eps: c.srNormEps)
        } else {
            sr = nil; norm = nil
        }
        attnDrop = Dropout(o.attnDropRate, state: state); projDrop = Dropout(o.dropRate, state: state)
    }

    public func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor {
        let b = x.shape[0], n = x.shape[1], c = x.shape[2]
        var source = x
        if let sr, let norm {
            precondition(n == height * width, "PVT: spatial reduction needs the \(height)×\(width) grid tokens only, got \(n)")
            let grid = padSame(x.reshaped([b, height, width, c]), stride: srRatio, axes: (1, 2))
            source = norm(patchProjection(channelsLast: grid, weight: sr.weight.value, bias: sr.bias?.value, patch: srRatio).tokens)
        }
        if !attnDrop.isActive {  // q, k, v read in place (Tensor.packedAttention)
            return projDrop(proj(Tensor.packedAttention(query: q(x), keyValue: kv(source), heads: heads, scale: scale)))
        }
        let query = pvtSplitHeads(q(x), heads: heads)  // [B, h, N, d]
        let m = source.shape[1]
        let kvt = kv(source).reshaped([b, m, 2, heads, headDim]).permuted([2, 0, 3, 1, 4])  // [2, B, h, M, d]
        let out = attend(query: query, key: kvt.select(axis: 0, index: 0), value: kvt.select(axis: 0, index: 1),
                         scale: scale, dropout: attnDrop)  // [B, h, N, d]
        return projDrop(proj(pvtMergeHeads(out).reshaped([b, n, c])))
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("q", q); v.child("kv", kv); v.child("proj", proj); v.child("sr", sr); v.child("norm", norm)
    }
}

/// Pre-norm transformer block: `x + DropPath(SRA(LN1(x)))`, then `x + DropPath(MLP(LN2(x)))`.
/// `x: [B, N, C]`.
public final class PVTBlock: Module {
    public let norm1: LayerNorm, norm2: LayerNorm
    public let attn: PVTAttention
    public let mlp: Mlp
    let dropPath: DropPath

    init(_ dim: Int, heads: Int, mlpRatio: Int, srRatio: Int, dropPath: Float, config c: PVTConfig, options o: ModelOptions,
         state: ModelState, generator: inout RandomGenerator) {
        norm1 = LayerNorm(dim, eps: c.norm1Eps)
        attn = PVTAttention(dim, heads: heads, srRatio: srRatio, config: c, options: o, state: state, generator: &generator)
        norm2 = LayerNorm(dim, eps: c.norm2Eps)
        mlp = Mlp(dim, hidden: dim * mlpRatio, drop: o.dropRate, gelu: c.gelu, state: state, generator: &generator)
        self.dropPath = DropPath(dropPath, state: state)
    }

    public func callAsFunction(_ x: Tensor, height: Int, width: Int) -> Tensor {
        let y = x + dropPath(attn(norm1(x), height: height, width: width))
        return y + dropPath(mlp(norm2(y)))
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("norm1", norm1); v.child("attn", attn); v.child("norm2", norm2); v.child("mlp", mlp)
    }
}

/// A list of blocks visited as `0`, `1`, … under its parent's name.
final class PVTStage: Module {
    let blocks: [PVTBlock]
    init(_ blocks: [PVTBlock]) { self.blocks = blocks }
    func visit(_ v: inout ModuleVisitor) { v.children("", blocks) }
}

// MARK: - Model

/// PVT v1. `x: [B, C_in, H, W]` → features `[B, C_4]` (the class token after the final norm) →
/// logits `[B, numClasses]`.
///
/// Four stages, each a patch embedding (stride 4, then 2) with LayerNorm, a position embedding
/// (stage 4: class token prepended first, its row is slot 0) and blocks of spatial-reduction
/// attention. Position tables are sized for `config.imageSize`; at other input sizes they are
/// resized bilinearly with MindSpore's `half_pixel_centers=False` sampling grid, as MindCV does.
///
/// Initialisation follows MindCV: linear weights truncated-normal(0.02), biases zero, LayerNorms
/// 1/0, convs N(0, √(2/fan_out)) with zero bias, position embeddings and class token zero.
public final class PyramidVisionTransformer: Classifier {
    public let config: PVTConfig
    public let state: ModelState
    public private(set) var numClasses: Int
    public let patchEmbeds: [PVTPatchEmbed]
    /// `pos_embed{s}`: `[1, H_s·W_s, C_s]` (stage 4: `[1, H·W + 1, C_4]`).
    public let posEmbeds: [Parameter]
    /// `[1, 1, C_4]`.
    public let clsToken: Parameter
    let stages: [PVTStage]
    let posDrop: Dropout
    public let norm: LayerNorm
    public private(set) var head: Linear?
    var generator: RandomGenerator

    public var featureDim: Int { config.embedDims[3] }

    /// Builds and initialises a PVT. `options.imageSize` (default `config.imageSize`) sizes the
    /// position tables; `options.dropRate` feeds the position, attention-output and MLP dropouts,
    /// `dropPathRate` the per-block schedule of `config.dropPathIndexing`.
    public init(config: PVTConfig, options o: ModelOptions = ModelOptions()) {
        precondition(config.embedDims.count == 4 && config.numHeads.count == 4 && config.mlpRatios.count == 4
                     && config.depths.count == 4 && config.srRatios.count == 4,
                     "PVT: embedDims, numHeads, mlpRatios, depths and srRatios need 4 entries each")
        var c = config
        if let size = o.imageSize { c.imageSize = size }
        self.config = c
        state = ModelState(seed: o.seed)
        numClasses = o.numClasses
        var g = RandomGenerator(seed: o.seed)
        var embeds: [PVTPatchEmbed] = [], pos: [Parameter] = [], stages: [PVTStage] = []
        for s in 0..<4 {
            let inC = s == 0 ? o.inChannels : c.embedDims[s - 1]
            embeds.append(PVTPatchEmbed(inC, c.embedDims[s], patchSize: s == 0 ? c.patchSize : 2, eps: c.patchEmbedNormEps,
                                        generator: &g))
            let grid = c.positionGrid(stage: s)
            pos.append(Parameter(Tensor.zeros([1, grid * grid + (s == 3 ? 1 : 0), c.embedDims[s]])))
            var blocks: [PVTBlock] = []
            for j in 0..<c.depths[s] {
                blocks.append(PVTBlock(c.embedDims[s], heads: c.numHeads[s], mlpRatio: c.mlpRatios[s], srRatio: c.srRatios[s],
                                       dropPath: c.dropPath(stage: s, block: j, rate: o.dropPathRate), config: c, options: o,
                                       state: state, generator: &g))
            }
            stages.append(PVTStage(blocks))
        }
        patchEmbeds = embeds; posEmbeds = pos; self.stages = stages
        clsToken = Parameter(Tensor.zeros([1, 1, c.embedDims[3]]))
        posDrop = Dropout(o.dropRate, state: state)
        norm = LayerNorm(c.embedDims[3], eps: c.finalNormEps)
        head = o.numClasses > 0 ? Linear(c.embedDims[3], o.numClasses, generator: &g) : nil
        generator = g
    }

    /// `x: [B, C_in, H, W]` → `[B, C_4]`: the class token after the final LayerNorm.
    public func forwardFeatures(_ x: Tensor) -> Tensor {
        var tokens = x
        var (h, w) = (0, 0)
        for s in 0..<4 {
            let t: Tensor
            if s == 0 {
                (t, h, w) = patchEmbeds[0](x)
            } else {
                (t, h, w) = patchEmbeds[s](channelsLast: tokens.reshaped([tokens.shape[0], h, w, tokens.shape[2]]))
            }
            let b = t.shape[0], c = t.shape[2]
            tokens = t
            if s == 3 {
                tokens = Tensor.concat([clsToken.value + Tensor.zeros([b, 1, c]), tokens], axis: 1)
            }
            tokens = posDrop(tokens + positionEmbedding(stage: s, height: h, width: w))
            for block in stages[s].blocks { tokens = block(tokens, height: h, width: w) }
        }
        // LayerNorm acts per token, so normalising only the class token equals MindCV's norm-then-select.
        return norm(tokens.select(axis: 1, index: 0))
    }

    /// `features: [B, C_4]` → logits `[B, numClasses]` (the features themselves with `preLogits` or
    /// without a head).
    public func forwardHead(_ features: Tensor, preLogits: Bool = false) -> Tensor {
        guard !preLogits, let head else { return features }
        return head(features)
    }

    /// The stage's position table for an H×W grid: as stored when the grid matches, otherwise the
    /// patch rows resized bilinearly (half_pixel_centers=False); stage 4 keeps its class-token row.
    public func positionEmbedding(stage s: Int, height: Int, width: Int) -> Tensor {
        let table = posEmbeds[s].value
        let g = config.positionGrid(stage: s)
        if g == height && g == width { return table }
        let extra = s == 3 ? 1 : 0
        let c = table.shape[2]
        let patches = table.slice(axis: 1, extra..<(extra + g * g)).reshaped([g * g, c])
        let resized = Tensor.matmul(bilinearResizeMatrix(from: (g, g), to: (height, width)), patches).reshaped([1, height * width, c])
        return extra == 1 ? Tensor.concat([table.slice(axis: 1, 0..<1), resized], axis: 1) : resized
    }

    public func resetClassifier(numClasses: Int) {
        self.numClasses = numClasses
        head = numClasses > 0 ? Linear(featureDim, numClasses, generator: &generator) : nil
    }

    public var noWeightDecay: Set<String> { ["pos_embed1", "pos_embed2", "pos_embed3", "pos_embed4", "cls_token"] }

    /// One table per stage; stage 4's starts with the class token's row.
    public var positionEmbeddingLayouts: [String: PositionEmbeddingLayout] {
        ["pos_embed1": .sequence(prefixTokens: 0), "pos_embed2": .sequence(prefixTokens: 0),
         "pos_embed3": .sequence(prefixTokens: 0), "pos_embed4": .sequence(prefixTokens: 1)]
    }

    public func visit(_ v: inout ModuleVisitor) {
        for s in 0..<4 { v.param("pos_embed\(s + 1)", posEmbeds[s]) }
        v.param("cls_token", clsToken)
        for s in 0..<4 { v.child("patch_embed\(s + 1)", patchEmbeds[s]) }
        for s in 0..<4 { v.child("block\(s + 1)", stages[s]) }
        v.child("norm", norm)
        v.child("head", head)
    }
}

// MARK: - Helpers

/// `[B, N, h·d]` → `[B, h, N, d]` (a reshape when h = 1).
fileprivate func pvtSplitHeads(_ x: Tensor, heads: Int) -> Tensor {
    let b = x.shape[0], n = x.shape[1], d = x.shape[2] / heads
    let t = x.reshaped([b, n, heads, d])
    return heads == 1 ? t.reshaped([b, 1, n, d]) : t.permuted([0, 2, 1, 3])
}

/// `[B, h, N, d]` → `[B, N, h, d]` (a reshape when h = 1).
fileprivate func pvtMergeHeads(_ x: Tensor) -> Tensor {
    let b = x.shape[0], h = x.shape[1], n = x.shape[2], d = x.shape[3]
    return h == 1 ? x.reshaped([b, n, 1, d]) : x.permuted([0, 2, 1, 3])
}

/// A conv with kernel = stride = p on a channels-last grid, as one GEMM over patches:
/// `x: [B, H, W, C]` (H, W multiples of p), `weight: [O, C, p, p]`, `bias: [O]` →
/// (`[B, (H/p)·(W/p), O]`, H/p, W/p). Equal to conv2d on the NCHW map followed by flattening.
fileprivate func patchProjection(channelsLast x: Tensor, weight: Tensor, bias: Tensor?, patch p: Int) -> (tokens: Tensor, height: Int, width: Int) {
    let b = x.shape[0], h = x.shape[1] / p, w = x.shape[2] / p, c = x.shape[3], o = weight.shape[0]
    let patches = p == 1 ? x.reshaped([b * h * w, c])
        : x.reshaped([b, h, p, w, p, c]).permuted([0, 1, 3, 2, 4, 5]).reshaped([b * h * w, p * p * c])
    let matrix = weight.permuted([0, 2, 3, 1]).reshaped([o, p * p * c])  // (ky, kx, c) order
    return (Tensor.linear(patches, weight: matrix, bias: bias).reshaped([b, h * w, o]), h, w)
}

/// MindSpore's `pad_mode='same'` for a convolution whose kernel equals its stride: pads the two
/// spatial `axes` of `x` with zeros to a multiple of `stride` (the extra row/column goes at the
/// bottom/right). Identity when divisible.
fileprivate func padSame(_ x: Tensor, stride: Int, axes: (Int, Int)) -> Tensor {
    var y = x
    for axis in [axes.0, axes.1] {
        let size = y.shape[axis]
        let pad = (stride - size % stride) % stride
        if pad == 0 { continue }
        let before = pad / 2, after = pad - before
        func zeros(_ k: Int) -> Tensor { var s = y.shape; s[axis] = k; return Tensor.zeros(s) }
        y = Tensor.concat((before > 0 ? [zeros(before)] : []) + [y, zeros(after)], axis: axis)
    }
    return y
}

/// The `[H'·W', H·W]` matrix of a bilinear resize from `from` to `to` with MindSpore's
/// `align_corners=False, half_pixel_centers=False` rule: source coordinate `i·(in/out)`, neighbours
/// `⌊src⌋` and `min(⌊src⌋+1, in−1)`. Row-major tokens on both sides.
fileprivate func bilinearResizeMatrix(from: (Int, Int), to: (Int, Int)) -> Tensor {
    func axis(_ n: Int, _ m: Int) -> [[(Int, Float)]] {
        let scale = Float(n) / Float(m)
        return (0..<m).map { i in
            let src = Float(i) * scale
            let i0 = min(Int(src.rounded(.down)), n - 1), i1 = min(i0 + 1, n - 1)
            let f = src - Float(i0)
            return [(i0, 1 - f), (i1, f)]
        }
    }
    let ry = axis(from.0, to.0), rx = axis(from.1, to.1)
    let m = Tensor.zeros([to.0 * to.1, from.0 * from.1])
    let p = m.storage.pointer
    let cols = from.0 * from.1
    for oy in 0..<to.0 {
        for ox in 0..<to.1 {
            let row = p + (oy * to.1 + ox) * cols
            for (iy, wy) in ry[oy] { for (ix, wx) in rx[ox] { row[iy * from.1 + ix] += wy * wx } }
        }
    }
    return m
}

// MARK: - Presets

extension PVTConfig {
    /// This architecture with `numerics`' definitions (docs/numerics.md): MindCV's are the presets'
    /// own; timm's (timm has no PVT v1: the original code's) use the exact GELU, LayerNorm eps 1e-5 in the patch
    /// embeddings and the spatial reduction, 1e-6 in the blocks and the final norm.
    public func with(numerics: Numerics) -> PVTConfig {
        guard numerics == .timm else { return self }
        var c = self
        c.gelu = .none
        c.patchEmbedNormEps = 1e-5; c.srNormEps = 1e-5; c.norm1Eps = 1e-6; c.norm2Eps = 1e-6; c.finalNormEps = 1e-6
        return c
    }

    /// The registered variants differ only in depth.
    public static func preset(depths: [Int]) -> PVTConfig { PVTConfig(depths: depths) }
    public static let tiny = preset(depths: [2, 2, 2, 2])
    public static let small = preset(depths: [3, 4, 6, 3])
    public static let medium = preset(depths: [3, 4, 18, 3])
    public static let large = preset(depths: [3, 8, 27, 3])
}

// MARK: - Registry

extension ModelRegistry {
    static let pvtEntries: [ModelEntry] = [
        ("pvt_tiny", PVTConfig.tiny), ("pvt_small", PVTConfig.small), ("pvt_medium", PVTConfig.medium),
        ("pvt_large", PVTConfig.large),
    ].map { name, config in
        ModelEntry(name: name, family: "pvt",
                   dataConfig: DataConfig(inputSize: [3, 224, 224], cropPct: 0.9, interpolation: "bicubic",
                                          firstConv: "patch_embed1.proj", classifier: "head"),
                   // The original code evaluates like DeiT: bicubic resize to 256, centre crop 224.
                   timmDataConfig: DataConfig(inputSize: [3, 224, 224], cropPct: 0.875, interpolation: "bicubic",
                                              firstConv: "patch_embed1.proj", classifier: "head"),
                   countingRule: .total, defaultImageSize: 224, geometry: config.inputGeometry) { options in
            PyramidVisionTransformer(config: config.with(numerics: options.numerics), options: options)
        }
    }
}
