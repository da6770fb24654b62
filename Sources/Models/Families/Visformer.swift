// Visformer — the vision-friendly transformer (v1 and MindCV's v2 layouts).
// "Visformer: The Vision-friendly Transformer", Chen et al., ICCV 2021, arXiv:2104.12533.
//
// Reproduces MindCV's `visformer.py` numerically (docs/models.md §7) under timm's parameter names
// (Tests/Fixtures/NAMING.md): `stem.0` / `stem.1`, `patch_embed{s}.proj/.norm`, `pos_embed{s}`,
// `stage{s}.{j}.{norm1,attn.qkv,attn.proj,norm2,mlp.conv1,mlp.conv2,mlp.conv3}`, `norm`, `head`.
// v2 variants (depths[0] > 0) add stage 0.
//
// Maps are NCHW, B batch, C stage width, H×W the stage grid, N = H·W tokens, h heads, hd head dim.
// Stages without the grouped 3×3 conv (the attention stages of every preset) run on the batch
// stacked along the height, `[1, C, B·H, W]` (`VisformerStacking`): sample b owns rows
// b·H ..< (b+1)·H. Every op of those stages is per position or per channel (1×1 convs, BatchNorm,
// GELU, residual adds) except attention, which reads each sample's columns in place
// (`Tensor.stackedSelfAttention`), and the 2×2 patch embedding, whose windows never straddle two
// samples when H is even. A 1×1 conv there is one GEMM over the whole batch with no copies, where
// per-sample GEMMs would have only H·W = 49 or 196 columns. Results equal the per-sample layout's
// up to summation order.

import Foundation
import Tensor

// MARK: - Configuration

/// The architecture of a Visformer network and its fidelity switches (construction options —
/// classes, input channels, dropout rates, seed — come in `ModelOptions`). The defaults are MindCV's
/// visformer_tiny at 224.
public struct VisformerConfig: Sendable, Equatable {
    public var imageSize: Int = 224
    /// Output channels of the 7×7 stride-2 stem.
    public var initChannels: Int = 16
    /// E: stage widths are E/4, E/2, E, 2E for stages 0–3.
    public var embedDim: Int = 192
    /// Blocks in stages 0–3; stage 0 (and its patch embedding) exists only when depths[0] > 0 (v2).
    public var depths: [Int] = [0, 7, 4, 4]
    /// Heads per stage (only read in attention stages).
    public var numHeads: [Int] = [3, 3, 3, 3]
    /// Hidden width of non-spatial-conv MLPs, as a multiple of the width.
    public var mlpRatio: Float = 4
    public var qkvBias: Bool = false
    /// Exponent e of the factor `hd^e` applied to q **and** to k (effective logit scale hd^(2e)):
    /// −0.25 for v1 (= 1/√hd overall), −0.5 for v2 (= 1/hd overall).
    public var qkScaleExponent: Float = -0.25
    /// Head dim = round(⌊C/h⌋ · ratio) per stage.
    public var headDimRatios: [Float] = [0.25, 0.5, 1, 1]
    /// Stages whose blocks have attention ("0011").
    public var attentionStages: [Bool] = [false, false, true, true]
    /// Stages whose MLP has the grouped 3×3 conv ("1100"); its hidden width is 2·C (group ≥ 2) or
    /// ⌊5C/6⌋ (group < 2), whatever mlpRatio says.
    public var spatialConvStages: [Bool] = [true, true, false, false]
    /// Groups of the 3×3 MLP conv.
    public var group: Int = 8
    public var usePositionEmbedding: Bool = true
    /// Convs initialised N(0, √(2/fan_out)) (MindCV's conv_init=True); otherwise truncated-normal(0.02).
    public var convInit: Bool = true
    /// MLP activation: MindCV's GELU is the tanh form (timm: exact).
    public var gelu: GELUApproximation = .tanh
    public var batchNormEps: Float = 1e-5
    /// PyTorch convention (MindSpore's 0.9).
    public var batchNormMomentum: Float = 0.1

    public init(imageSize: Int = 224, initChannels: Int = 16, embedDim: Int = 192, depths: [Int] = [0, 7, 4, 4],
                numHeads: [Int] = [3, 3, 3, 3], mlpRatio: Float = 4, qkvBias: Bool = false, qkScaleExponent: Float = -0.25,
                attentionStages: [Bool] = [false, false, true, true], spatialConvStages: [Bool] = [true, true, false, false],
                group: Int = 8, gelu: GELUApproximation = .tanh) {
        self.imageSize = imageSize
        self.initChannels = initChannels; self.embedDim = embedDim; self.depths = depths; self.numHeads = numHeads
        self.mlpRatio = mlpRatio; self.qkvBias = qkvBias; self.qkScaleExponent = qkScaleExponent
        self.attentionStages = attentionStages; self.spatialConvStages = spatialConvStages; self.group = group
        self.gelu = gelu
    }

    /// Whether the v2 stage 0 exists.
    public var hasStage0: Bool { depths[0] > 0 }
    /// Width of stage s: E/4, E/2, E, 2E.
    public func width(stage s: Int) -> Int { [embedDim / 4, embedDim / 2, embedDim, 2 * embedDim][s] }
    /// Grid side after the stem (7×7, stride 2, padding 3).
    public var stemGrid: Int { (imageSize - 1) / 2 + 1 }
    /// Patch side of stage s's embedding: 4 for stage 1 without stage 0, else 2.
    public func patchSize(stage s: Int) -> Int { s == 1 && !hasStage0 ? 4 : 2 }
    /// Grid side of stage s.
    public func grid(stage s: Int) -> Int {
        var g = stemGrid
        for t in (hasStage0 ? 0 : 1)...s { g /= patchSize(stage: t) }
        return g
    }
    /// Hidden width of the MLP in stage s.
    public func mlpHidden(stage s: Int) -> Int {
        let c = width(stage: s)
        if spatialConvStages[s] { return group < 2 ? c * 5 / 6 : 2 * c }
        return Int(Float(c) * mlpRatio)
    }
    /// Head dim of stage s.
    public func headDim(stage s: Int) -> Int { Int((Float(width(stage: s) / numHeads[s]) * headDimRatios[s]).rounded()) }
}

extension VisformerConfig {
    /// Trainable parameters in closed form (docs/models.md §1), head included when `numClasses > 0`;
    /// the BatchNorm running statistics are `bufferCount` on top.
    public func parameterCount(numClasses: Int = 1000, inChannels: Int = 3, imageSize: Int? = nil) -> Int {
        var c = self
        if let imageSize { c.imageSize = imageSize }
        var n = initChannels * inChannels * 49 + 2 * initChannels  // stem conv (no bias) + BatchNorm
        for s in 0..<4 where s > 0 || hasStage0 {
            let d = width(stage: s), p = patchSize(stage: s)
            let inC = s == 0 || (s == 1 && !hasStage0) ? initChannels : width(stage: s - 1)
            n += d * inC * p * p + d + 2 * d  // patch conv + BatchNorm
            if usePositionEmbedding { n += d * c.grid(stage: s) * c.grid(stage: s) }
            let hidden = mlpHidden(stage: s), inner = numHeads[s] * headDim(stage: s)
            var block = 2 * d + d * hidden + hidden * d  // norm2, conv1, conv3
            if spatialConvStages[s] { block += hidden * (hidden / group) * 9 }
            if attentionStages[s] { block += 2 * d + d * 3 * inner + (qkvBias ? 3 * inner : 0) + inner * d }
            n += depths[s] * block
        }
        n += 2 * width(stage: 3)
        if numClasses > 0 { n += numClasses * width(stage: 3) + numClasses }
        return n
    }

    /// BatchNorm running statistics (mean and variance per channel of every BatchNorm).
    public var bufferCount: Int {
        var n = 2 * initChannels + 2 * width(stage: 3)
        for s in 0..<4 where s > 0 || hasStage0 {
            n += 2 * width(stage: s) * (1 + depths[s] * (attentionStages[s] ? 2 : 1))
        }
        return n
    }
}

// MARK: - Blocks

/// Conv(k = stride = p, bias) → BatchNorm. `[B, C_in, H, W]` → `[B, C, H/p, W/p]`.
public final class VisformerPatchEmbed: Module {
    public let proj: Conv2d
    public let norm: BatchNorm2d

    init(_ inChannels: Int, _ dim: Int, patchSize: Int, config c: VisformerConfig, state: ModelState,
         generator: inout RandomGenerator) {
        proj = Conv2d(inChannels, dim, kernel: patchSize, stride: patchSize, bias: true, std: c.convInit ? nil : 0.02,
                      generator: &generator)
        norm = BatchNorm2d(dim, eps: c.batchNormEps, momentum: c.batchNormMomentum, state: state)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { proj.followed(by: norm, x) }
    public func visit(_ v: inout ModuleVisitor) { v.child("proj", proj); v.child("norm", norm) }
}

/// Multi-head self-attention with 1×1 convs. `x: [B, C, H, W]` → `[B, C, H, W]`.
/// qkv (pointwise, no bias) has output channels (which ∈ {q, k, v}, head, dim), i.e. `[B, 3, h, hd, N]`;
/// logits are `(q·s)·(k·s)ᵀ` with `s = hd^e`, i.e. one scale `hd^(2e)`.
///
/// It runs on the batch-stacked map `[1, C, B·H, W]` (a `[B, C, H, W]` input is stacked and the
/// result unstacked): one qkv conv over the whole batch, attention reading each (sample, head)'s
/// q, k and v channels in place (`Tensor.stackedSelfAttention`; with attention dropout in training,
/// explicit products and softmax on permuted copies), and the output, heads as channels, is the
/// stacked map `proj` reads.
public final class VisformerAttention: Module {
    public let qkv: Conv2d, proj: Conv2d
    public let heads: Int, headDim: Int
    /// The effective logit scale `hd^(2e)`.
    public let scale: Float
    let attnDrop: Dropout, projDrop: Dropout

    init(_ dim: Int, heads: Int, headDim: Int, config c: VisformerConfig, options o: ModelOptions, state: ModelState,
         generator: inout RandomGenerator) {
        self.heads = heads; self.headDim = headDim
        let s = Float(Foundation.pow(Double(headDim), Double(c.qkScaleExponent)))
        scale = s * s
        let std: Float? = c.convInit ? nil : 0.02
        qkv = Conv2d(dim, 3 * heads * headDim, kernel: 1, bias: c.qkvBias, std: std, generator: &generator)
        proj = Conv2d(heads * headDim, dim, kernel: 1, bias: false, std: std, generator: &generator)
        attnDrop = Dropout(o.attnDropRate, state: state); projDrop = Dropout(o.dropRate, state: state)
    }

    /// `x: [B, C, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        VisformerStacking.unstack(attend(qkv(VisformerStacking.stack(x)), batch: x.shape[0]), batch: x.shape[0])
    }

    /// `self(norm(x))` for `x: [B, C, H, W]`, or `[1, C, B·H, W]` when `stacked`, in the same layout,
    /// plus `residual` if given (stacked only); the BatchNorm is folded into qkv in evaluation mode
    /// (Sources/Models/Layers/BatchNormFolding.swift).
    func callAsFunction(_ x: Tensor, batch b: Int, stacked: Bool, normalizedBy norm: BatchNorm2d, adding residual: Tensor? = nil) -> Tensor {
        precondition(stacked || residual == nil, "Visformer attention: a residual only on the stacked map")
        let xs = stacked ? x : VisformerStacking.stack(x)
        let projected = qkv.folded(after: norm).map { Tensor.conv2d(xs, weight: $0.weight, bias: $0.bias) } ?? qkv(norm(xs))
        let y = attend(projected, batch: b, adding: residual)
        return stacked ? y : VisformerStacking.unstack(y, batch: b)
    }

    /// Stacked qkv projections `[1, 3·h·hd, B·H, W]` → `projDrop(proj(attention))` (+ `residual`), `[1, C, B·H, W]`.
    func attend(_ qkvMap: Tensor, batch b: Int, adding residual: Tensor? = nil) -> Tensor {
        let out: Tensor
        if attnDrop.p > 0 && attnDrop.state.training {
            let rows = qkvMap.shape[2], w = qkvMap.shape[3], n = rows / b * w
            let t = qkvMap.reshaped([3, heads, headDim, b, n]).permuted([0, 3, 1, 2, 4])  // [3, B, h, hd, N]
            let q = t.select(axis: 0, index: 0), k = t.select(axis: 0, index: 1), v = t.select(axis: 0, index: 2)
            let attn = (Tensor.matmul(q, k, transposeA: true) * scale).softmax(axis: -1)  // [B, h, N, N]
            out = Tensor.matmul(v, attnDrop(attn), transposeB: true)  // [B, h, hd, N]
                .permuted([1, 2, 0, 3]).reshaped([1, heads * headDim, rows, w])
        } else {
            out = Tensor.stackedSelfAttention(qkv: qkvMap, batch: b, heads: heads, scale: scale)
        }
        guard let residual else { return projDrop(proj(out)) }
        return projDrop.isActive ? residual + projDrop(proj(out)) : proj(out, adding: residual)
    }

    public func visit(_ v: inout ModuleVisitor) { v.child("qkv", qkv); v.child("proj", proj) }
}

/// The conv MLP: conv1 (1×1) → GELU → dropout → [conv2 (3×3, groups, pad 1) → GELU] → conv3 (1×1)
/// → dropout, all bias-free. `x: [B, C, H, W]` → `[B, C, H, W]`.
public final class VisformerMlp: Module {
    public let conv1: Conv2d, conv3: Conv2d
    public let conv2: Conv2d?
    let drop: Dropout
    let gelu: GELUApproximation

    init(_ dim: Int, hidden: Int, spatialConv: Bool, config c: VisformerConfig, options o: ModelOptions, state: ModelState,
         generator: inout RandomGenerator) {
        let std: Float? = c.convInit ? nil : 0.02
        conv1 = Conv2d(dim, hidden, kernel: 1, bias: false, std: std, generator: &generator)
        conv2 = spatialConv
            ? Conv2d(hidden, hidden, kernel: 3, padding: 1, groups: c.group, bias: false, std: std, generator: &generator) : nil
        conv3 = Conv2d(hidden, dim, kernel: 1, bias: false, std: std, generator: &generator)
        drop = Dropout(o.dropRate, state: state)
        gelu = c.gelu
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { finish(conv1(x)) }

    /// `self(norm(x))`, with the BatchNorm folded into conv1 in evaluation mode
    /// (Sources/Models/Layers/BatchNormFolding.swift).
    public func callAsFunction(_ x: Tensor, normalizedBy norm: BatchNorm2d) -> Tensor { finish(conv1.preceded(by: norm, x)) }

    /// `x + dropPath(self(norm(x)))` for the spatial MLP, sample by sample (`Tensor.residualConvMlp`),
    /// with the BatchNorm folded into conv1 where it may be; nil when dropout is active or conv2 is
    /// not a "same" convolution (run the layers then).
    func residual(_ x: Tensor, normalizedBy norm: BatchNorm2d, dropPath: DropPath) -> Tensor? {
        guard let conv2, !drop.isActive, conv2.bias == nil, conv3.bias == nil, conv2.stride == (1, 1),
              conv2.weight.shape[2] == conv2.weight.shape[3], conv2.weight.shape[2] % 2 == 1,
              conv2.padding == (conv2.weight.shape[2] / 2, conv2.weight.shape[3] / 2) else { return nil }
        let scales = dropPath.sampleScales(batch: x.shape[0])
        let (input, w1, b1) = conv1.folded(after: norm).map { (x, $0.weight, Optional($0.bias)) } ?? (norm(x), conv1.weight.value, conv1.bias?.value)
        return Tensor.residualConvMlp(input, residual: x, conv1Weight: w1, conv1Bias: b1, conv2Weight: conv2.weight.value,
                                      groups: conv2.groups, conv3Weight: conv3.weight.value, branchScales: scales, approximate: gelu)
    }

    /// `residual + self(norm(x))`, the residual accumulated by conv3 (`Conv2d.callAsFunction(_:adding:)`).
    func callAsFunction(_ x: Tensor, normalizedBy norm: BatchNorm2d, adding residual: Tensor) -> Tensor {
        finish(conv1.preceded(by: norm, x), adding: residual)
    }

    /// Everything after conv1 (+ `residual`).
    func finish(_ hidden: Tensor, adding residual: Tensor? = nil) -> Tensor {
        var y = drop(hidden.gelu(approximate: gelu))
        if let conv2 {
            y = conv2(y).gelu(approximate: gelu)
        }
        guard let residual else { return drop(conv3(y)) }
        return drop.isActive ? residual + drop(conv3(y)) : conv3(y, adding: residual)
    }

    public func visit(_ v: inout ModuleVisitor) { v.child("conv1", conv1); v.child("conv2", conv2); v.child("conv3", conv3) }
}

/// `x + DropPath(Attn(BN1(x)))` (attention stages only), then `x + DropPath(MLP(BN2(x)))`.
/// `x: [B, C, H, W]`.
public final class VisformerBlock: Module {
    public let norm1: BatchNorm2d?
    public let attn: VisformerAttention?
    public let norm2: BatchNorm2d
    public let mlp: VisformerMlp
    let dropPath: DropPath

    init(stage s: Int, dropPath: Float, config c: VisformerConfig, options o: ModelOptions, state: ModelState,
         generator: inout RandomGenerator) {
        let dim = c.width(stage: s)
        if c.attentionStages[s] {
            norm1 = BatchNorm2d(dim, eps: c.batchNormEps, momentum: c.batchNormMomentum, state: state)
            attn = VisformerAttention(dim, heads: c.numHeads[s], headDim: c.headDim(stage: s), config: c, options: o, state: state,
                                      generator: &generator)
        } else {
            norm1 = nil; attn = nil
        }
        norm2 = BatchNorm2d(dim, eps: c.batchNormEps, momentum: c.batchNormMomentum, state: state)
        mlp = VisformerMlp(dim, hidden: c.mlpHidden(stage: s), spatialConv: c.spatialConvStages[s], config: c, options: o, state: state,
                           generator: &generator)
        self.dropPath = DropPath(dropPath, state: state)
    }

    /// `x: [B, C, H, W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { forward(x, batch: x.shape[0], stacked: false) }

    /// `x: [B, C, H, W]`, or the batch-stacked `[1, C, B·H, W]` when `stacked`; the result has x's layout.
    func forward(_ x: Tensor, batch b: Int, stacked: Bool) -> Tensor {
        func drop(_ t: Tensor) -> Tensor { stacked ? dropPath(t, stackedBatch: b) : dropPath(t) }
        if stacked, let fused = inference(x, batch: b) { return fused }
        // without drop-path the residuals enter the branches' last convolutions (conv2d(…, adding:))
        let accumulate = !dropPath.isActive
        var y = x
        if let norm1, let attn {
            y = accumulate && stacked ? attn(y, batch: b, stacked: true, normalizedBy: norm1, adding: y)
                : y + drop(attn(y, batch: b, stacked: stacked, normalizedBy: norm1))
        }
        if !stacked, let fused = mlp.residual(y, normalizedBy: norm2, dropPath: dropPath) { return fused }
        return accumulate ? mlp(y, normalizedBy: norm2, adding: y) : y + drop(mlp(y, normalizedBy: norm2))
    }

    /// An attention block on the stacked map in evaluation, both BatchNorms folded, through
    /// `Tensor.stackedTransformerBlock` (sample by sample per core); nil when anything is recorded or
    /// traced, in training, or without attention or with the spatial MLP.
    func inference(_ x: Tensor, batch b: Int) -> Tensor? {
        guard let norm1, let attn, mlp.conv2 == nil, !dropPath.isActive, !attn.attnDrop.isActive, !attn.projDrop.isActive,
              !mlp.drop.isActive, let (wq, bq) = attn.qkv.folded(after: norm1), let (w1, b1) = mlp.conv1.folded(after: norm2)
        else { return nil }
        return Tensor.stackedTransformerBlock(x, batch: b, heads: attn.heads, scale: attn.scale, qkvWeight: wq, qkvBias: bq,
                                              projWeight: attn.proj.weight.value, projBias: attn.proj.bias?.value, fc1Weight: w1,
                                              fc1Bias: b1, fc2Weight: mlp.conv3.weight.value, fc2Bias: mlp.conv3.bias?.value,
                                              approximate: mlp.gelu)
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("norm1", norm1); v.child("attn", attn); v.child("norm2", norm2); v.child("mlp", mlp)
    }
}

/// Stem: conv 7×7 stride 2 pad 3 (no bias) → BatchNorm → ReLU, visited as `0`, `1`.
final class VisformerStem: Module {
    let conv: Conv2d
    let norm: BatchNorm2d
    init(_ inChannels: Int, _ out: Int, config c: VisformerConfig, state: ModelState, generator: inout RandomGenerator) {
        conv = Conv2d(inChannels, out, kernel: 7, stride: 2, padding: 3, bias: false, std: c.convInit ? nil : 0.02,
                      generator: &generator)
        norm = BatchNorm2d(out, eps: c.batchNormEps, momentum: c.batchNormMomentum, state: state)
    }
    func callAsFunction(_ x: Tensor) -> Tensor { conv.followed(by: norm, x).relu() }
    func visit(_ v: inout ModuleVisitor) { v.child("0", conv); v.child("1", norm) }
}

/// Between `[B, C, H, W]` and the batch stacked along the height, `[1, C, B·H, W]`: one copy each
/// way, none at batch 1 (the two layouts then coincide).
enum VisformerStacking {
    static func stack(_ x: Tensor) -> Tensor {
        let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
        return (b == 1 ? x : x.permuted([1, 0, 2, 3])).reshaped([1, c, b * h, w])
    }

    static func unstack(_ x: Tensor, batch b: Int) -> Tensor {
        let c = x.shape[1], h = x.shape[2] / b, w = x.shape[3]
        return b == 1 ? x.reshaped([1, c, h, w]) : x.reshaped([c, b, h, w]).permuted([1, 0, 2, 3])
    }
}

/// A list of blocks visited as `0`, `1`, … under its parent's name.
final class VisformerStage: Module {
    let blocks: [VisformerBlock]
    init(_ blocks: [VisformerBlock]) { self.blocks = blocks }
    func visit(_ v: inout ModuleVisitor) { v.children("", blocks) }
}

// MARK: - Model

/// Visformer. `x: [B, C_in, H, W]` → features `[B, 2E]` (final BatchNorm, global average pool) →
/// logits `[B, numClasses]`.
///
/// Stem (112×112 at 224) → [v2: patch_embed0 (2×2) + pos_embed0 + stage 0, 56×56] → patch_embed1
/// (4×4 for v1, 2×2 for v2) + pos_embed1 + stage 1 (28×28, conv blocks) → patch_embed2 + pos_embed2 +
/// stage 2 (14×14, attention) → patch_embed3 + pos_embed3 + stage 3 (7×7, attention). Position tables
/// `[1, C_s, H_s, W_s]` are sized for `config.imageSize` and the input must have that size.
///
/// `options.inChannels` is honoured by the stem (MindCV ignores it and always builds a 3-channel stem; the
/// two agree for RGB input).
///
/// Initialisation follows MindCV: convs N(0, √(2/(out·kh·kw))) (conv_init), conv biases zero,
/// position embeddings and the head truncated-normal(0.02) with zero bias, BatchNorm 1/0 with
/// running statistics 0/1.
public final class Visformer: Classifier {
    public let config: VisformerConfig
    public let state: ModelState
    public private(set) var numClasses: Int
    let stem: VisformerStem
    /// Patch embeddings of stages 0–3 (nil for stage 0 in v1).
    public let patchEmbeds: [VisformerPatchEmbed?]
    /// `pos_embed{s}`: `[1, C_s, H_s, W_s]` (nil where absent).
    public let posEmbeds: [Parameter?]
    let stages: [VisformerStage?]
    let posDrop: Dropout
    public let norm: BatchNorm2d
    public private(set) var head: Linear?
    var generator: RandomGenerator

    public var featureDim: Int { config.width(stage: 3) }

    /// Builds and initialises a Visformer. `options.imageSize` (default `config.imageSize`) sizes the
    /// position maps; `options.dropRate` feeds the position, attention-output and MLP dropouts, and
    /// block `i` of `T` gets drop-path `rate·i/(T−1)`.
    public init(config: VisformerConfig, options o: ModelOptions = ModelOptions()) {
        var c = config
        if let size = o.imageSize { c.imageSize = size }
        precondition(c.depths.count == 4 && c.numHeads.count == 4 && c.attentionStages.count == 4
                     && c.spatialConvStages.count == 4 && c.headDimRatios.count == 4,
                     "Visformer: depths, numHeads, attentionStages, spatialConvStages and headDimRatios need 4 entries each")
        self.config = c
        state = ModelState(seed: o.seed)
        numClasses = o.numClasses
        var g = RandomGenerator(seed: o.seed)
        stem = VisformerStem(o.inChannels, c.initChannels, config: c, state: state, generator: &g)
        let total = c.depths.reduce(0, +)
        var embeds: [VisformerPatchEmbed?] = [], pos: [Parameter?] = [], stages: [VisformerStage?] = []
        var blockIndex = 0
        for s in 0..<4 {
            guard s > 0 || c.hasStage0 else { embeds.append(nil); pos.append(nil); stages.append(nil); continue }
            let inC = s == 0 || (s == 1 && !c.hasStage0) ? c.initChannels : c.width(stage: s - 1)
            embeds.append(VisformerPatchEmbed(inC, c.width(stage: s), patchSize: c.patchSize(stage: s), config: c, state: state,
                                              generator: &g))
            if c.usePositionEmbedding {
                let side = c.grid(stage: s)
                pos.append(Parameter(Initializer.truncatedNormal([1, c.width(stage: s), side, side], std: 0.02, generator: &g)))
            } else {
                pos.append(nil)
            }
            var blocks: [VisformerBlock] = []
            for _ in 0..<c.depths[s] {
                let rate = total > 1 ? o.dropPathRate * Float(blockIndex) / Float(total - 1) : 0
                blocks.append(VisformerBlock(stage: s, dropPath: rate, config: c, options: o, state: state, generator: &g))
                blockIndex += 1
            }
            stages.append(VisformerStage(blocks))
        }
        patchEmbeds = embeds; posEmbeds = pos; self.stages = stages
        posDrop = Dropout(o.dropRate, state: state)
        norm = BatchNorm2d(c.width(stage: 3), eps: c.batchNormEps, momentum: c.batchNormMomentum, state: state)
        head = o.numClasses > 0 ? Linear(c.width(stage: 3), o.numClasses, generator: &g) : nil
        generator = g
    }

    /// `x: [B, C_in, H, W]` → `[B, 2E]`. Stages without the grouped 3×3 conv run batch-stacked (see
    /// the top of this file).
    public func forwardFeatures(_ x: Tensor) -> Tensor {
        let b = x.shape[0]
        var y = stem(x), stacked = false
        for s in 0..<4 {
            guard let embed = patchEmbeds[s], let stage = stages[s] else { continue }
            let stacks = !config.spatialConvStages[s], p = config.patchSize(stage: s)
            // the patch convolution runs stacked only if its windows cannot straddle two samples
            if stacked && (!stacks || (y.shape[2] / b) % p != 0) { y = VisformerStacking.unstack(y, batch: b); stacked = false }
            y = embed(y)
            if let pos = posEmbeds[s] {
                let c = y.shape[1], h = y.shape[2] / (stacked ? b : 1), w = y.shape[3]
                precondition([c, h, w] == Array(pos.shape.dropFirst()),
                             "Visformer: stage \(s) map \([b, c, h, w]) does not fit pos_embed\(s) \(pos.shape); input must be \(config.imageSize)×\(config.imageSize)")
                y = stacked ? (y.reshaped([c, b, h, w]) + pos.value.reshaped([c, 1, h, w])).reshaped(y.shape) : y + pos.value
                y = posDrop(y)
            }
            if stacks && !stacked { y = VisformerStacking.stack(y); stacked = true }
            for block in stage.blocks { y = block.forward(y, batch: b, stacked: stacked) }
        }
        let z = norm(y)
        return stacked ? z.reshaped([z.shape[1], b, z.count / (z.shape[1] * b)]).mean(axes: [2]).permuted([1, 0]) : z.mean(axes: [2, 3])
    }

    /// `features: [B, 2E]` → logits `[B, numClasses]` (the features with `preLogits` or without a head).
    public func forwardHead(_ features: Tensor, preLogits: Bool = false) -> Tensor {
        guard !preLogits, let head else { return features }
        return head(features)
    }

    public func resetClassifier(numClasses: Int) {
        self.numClasses = numClasses
        head = numClasses > 0 ? Linear(featureDim, numClasses, generator: &generator) : nil
    }

    public var noWeightDecay: Set<String> {
        Set((0..<4).filter { posEmbeds[$0] != nil }.map { "pos_embed\($0)" })
    }

    public var positionEmbeddingLayouts: [String: PositionEmbeddingLayout] {
        Dictionary(uniqueKeysWithValues: noWeightDecay.map { ($0, PositionEmbeddingLayout.map) })
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("stem", stem)
        for s in 0..<4 {
            v.child("patch_embed\(s)", patchEmbeds[s])
            v.param("pos_embed\(s)", posEmbeds[s])
            v.child("stage\(s)", stages[s])
        }
        v.child("norm", norm)
        v.child("head", head)
    }
}

// MARK: - Presets

extension VisformerConfig {
    /// This architecture with `numerics`' definitions (docs/numerics.md): MindCV's are the presets'
    /// own; timm's use the exact GELU and the attention scale head_dim^-0.5 (v1's; timm has no v2).
    public func with(numerics: Numerics) -> VisformerConfig {
        guard numerics == .timm else { return self }
        var c = self
        c.gelu = .none; c.qkScaleExponent = -0.25
        return c
    }

    public static let tiny = VisformerConfig(initChannels: 16, embedDim: 192, depths: [0, 7, 4, 4], numHeads: [3, 3, 3, 3])
    public static let tinyV2 = VisformerConfig(initChannels: 24, embedDim: 192, depths: [1, 4, 6, 3], numHeads: [1, 3, 6, 12],
                                               qkScaleExponent: -0.5)
    public static let small = VisformerConfig(initChannels: 32, embedDim: 384, depths: [0, 7, 4, 4], numHeads: [6, 6, 6, 6])
    public static let smallV2 = VisformerConfig(initChannels: 32, embedDim: 256, depths: [1, 10, 14, 3], numHeads: [2, 4, 8, 16],
                                                qkScaleExponent: -0.5)
}

// MARK: - Registry

extension ModelRegistry {
    /// MindCV's drop-path rates: 0.03 for the tiny variants, 0.1 for the small ones.
    static let visformerEntries: [ModelEntry] = [
        ("visformer_tiny", VisformerConfig.tiny, 0.03), ("visformer_tiny_v2", VisformerConfig.tinyV2, 0.03),
        ("visformer_small", VisformerConfig.small, 0.1), ("visformer_small_v2", VisformerConfig.smallV2, 0.1),
    ].map { name, config, dropPath in
        ModelEntry(name: name, family: "visformer",
                   dataConfig: DataConfig(inputSize: [3, 224, 224], cropPct: 0.875, interpolation: "bicubic",
                                          firstConv: "stem.0", classifier: "head"),
                   countingRule: .withBufferStatistics, defaultImageSize: 224,
                   defaultDropPathRate: dropPath, geometry: config.inputGeometry) { options in
            Visformer(config: config.with(numerics: options.numerics), options: options)
        }
    }
}
