import Tensor

/// y = x·Wᵀ + b on the last axis. `weight: [out, in]`, `bias: [out]`.
public final class Linear: Module {
    public var weight: Parameter
    public var bias: Parameter?
    public let inFeatures: Int, outFeatures: Int

    /// Weights truncated-normal(std), bias zero (timm's and MindCV's transformer init).
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, std: Float = 0.02, generator: inout RandomGenerator) {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures
        weight = Parameter(Initializer.truncatedNormal([outFeatures, inFeatures], std: std, generator: &generator))
        self.bias = bias ? Parameter(Tensor.zeros([outFeatures])) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { Tensor.linear(x, weight: weight.value, bias: bias?.value) }
    public func visit(_ v: inout ModuleVisitor) { v.param("weight", weight); v.param("bias", bias) }
}

/// LayerNorm over the last axis; the epsilon is part of the config (MindCV: 1e-7 by default, PiT
/// 1e-6, PVT mixed).
public final class LayerNorm: Module {
    public var weight: Parameter, bias: Parameter
    public let eps: Float
    public init(_ dim: Int, eps: Float) {
        weight = Parameter(Tensor.ones([dim])); bias = Parameter(Tensor.zeros([dim])); self.eps = eps
    }
    public func callAsFunction(_ x: Tensor) -> Tensor { Tensor.layerNorm(x, weight: weight.value, bias: bias.value, eps: eps) }
    public func visit(_ v: inout ModuleVisitor) { v.param("weight", weight); v.param("bias", bias) }
}

/// BatchNorm2d with running statistics (momentum 0.1 in PyTorch's convention = MindSpore's 0.9).
public final class BatchNorm2d: Module {
    public var weight: Parameter, bias: Parameter
    public var runningMean: Buffer, runningVar: Buffer
    public let eps: Float, momentum: Float
    let state: ModelState
    public init(_ channels: Int, eps: Float = 1e-5, momentum: Float = 0.1, state: ModelState) {
        weight = Parameter(Tensor.ones([channels])); bias = Parameter(Tensor.zeros([channels]))
        runningMean = Buffer(Tensor.zeros([channels])); runningVar = Buffer(Tensor.ones([channels]))
        self.eps = eps; self.momentum = momentum; self.state = state
    }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.batchNorm(x, weight: weight.value, bias: bias.value, runningMean: runningMean.value, runningVar: runningVar.value,
                         training: state.training, momentum: momentum, eps: eps)
    }
    public func visit(_ v: inout ModuleVisitor) {
        v.param("weight", weight); v.param("bias", bias)
        v.buffer("running_mean", runningMean); v.buffer("running_var", runningVar)
    }
}

/// 2-D convolution, NCHW. `weight: [out, in/groups, kh, kw]`.
public final class Conv2d: Module {
    public var weight: Parameter
    public var bias: Parameter?
    public let stride: (Int, Int), padding: (Int, Int), groups: Int

    /// Default init: truncated normal(std) when `std` is given, else Kaiming normal (fan_out).
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, groups: Int = 1,
                bias: Bool = true, std: Float? = nil, generator: inout RandomGenerator) {
        let shape = [outChannels, inChannels / groups, kernel, kernel]
        if let std {
            weight = Parameter(Initializer.truncatedNormal(shape, std: std, generator: &generator))
        } else {
            weight = Parameter(Initializer.heNormalFanOut(shape, generator: &generator))
        }
        self.bias = bias ? Parameter(Tensor.zeros([outChannels])) : nil
        self.stride = (stride, stride); self.padding = (padding, padding); self.groups = groups
    }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.conv2d(x, weight: weight.value, bias: bias?.value, stride: stride, padding: padding, groups: groups)
    }
    /// `residual + self(x)`, the residual accumulated by the convolution itself where it can
    /// (`Tensor.conv2d(…, adding:)`).
    public func callAsFunction(_ x: Tensor, adding residual: Tensor) -> Tensor {
        Tensor.conv2d(x, weight: weight.value, bias: bias?.value, stride: stride, padding: padding, groups: groups, adding: residual)
    }
    public func visit(_ v: inout ModuleVisitor) { v.param("weight", weight); v.param("bias", bias) }
}

/// Dropout with probability `p` (identity in eval mode or when p = 0).
public final class Dropout: Module {
    public let p: Float
    let state: ModelState
    public init(_ p: Float, state: ModelState) { self.p = p; self.state = state }
    /// Whether a call changes its input (training mode with p > 0).
    public var isActive: Bool { p > 0 && state.training }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard isActive else { return x }
        return x.dropout(p, training: true, generator: &state.generator)
    }
    public func visit(_ v: inout ModuleVisitor) {}
}

/// Per-sample stochastic depth with probability `p`.
public final class DropPath: Module {
    public let p: Float
    let state: ModelState
    public init(_ p: Float, state: ModelState) { self.p = p; self.state = state }
    /// Whether a call changes its input (training mode with p > 0).
    public var isActive: Bool { p > 0 && state.training }
    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard isActive else { return x }
        return x.dropPath(p, training: true, generator: &state.generator)
    }
    /// The factors a call would apply to each of `batch` samples, drawn the same way (for fused
    /// ops that scale a residual branch themselves); nil when inactive.
    public func sampleScales(batch: Int) -> [Float]? {
        guard isActive else { return nil }
        precondition(p < 1, "drop-path probability \(p) must be below 1")
        return Tensor.dropPathScales(batch, p, generator: &state.generator)
    }
    /// The same on a map whose samples are stacked along axis 2, `[1, C, B·H, W]`
    /// (Visformer's attention stages): one draw per sample, as for `[B, C, H, W]`.
    public func callAsFunction(_ x: Tensor, stackedBatch b: Int) -> Tensor {
        guard isActive else { return x }
        precondition(x.rank == 4 && x.shape[0] == 1 && x.shape[2] % b == 0, "drop-path: \(x.shape) is not [1, C, \(b)·H, W]")
        return x.reshaped([x.shape[1], b, x.count / (x.shape[1] * b)])
            .dropPath(p, training: true, batchAxis: 1, generator: &state.generator).reshaped(x.shape)
    }
    public func visit(_ v: inout ModuleVisitor) {}
}

/// fc1 → GELU → dropout → fc2 → dropout (MindCV's shared MLP).
public final class Mlp: Module {
    public let fc1: Linear, fc2: Linear
    let drop: Dropout
    public let gelu: GELUApproximation
    public init(_ dim: Int, hidden: Int, out: Int? = nil, drop: Float = 0, gelu: GELUApproximation = .tanh,
                state: ModelState, generator: inout RandomGenerator) {
        fc1 = Linear(dim, hidden, generator: &generator)
        fc2 = Linear(hidden, out ?? dim, generator: &generator)
        self.drop = Dropout(drop, state: state)
        self.gelu = gelu
    }
    /// One fused op (`Tensor.mlp`: fc1's GELU output is recomputed in backward, not kept) unless
    /// dropout is active between the two layers.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        if let b1 = fc1.bias?.value, let b2 = fc2.bias?.value, !drop.isActive {
            return Tensor.mlp(x, fc1Weight: fc1.weight.value, fc1Bias: b1, fc2Weight: fc2.weight.value, fc2Bias: b2, approximate: gelu)
        }
        return drop(fc2(drop(fc1(x).gelu(approximate: gelu))))
    }
    public func visit(_ v: inout ModuleVisitor) { v.child("fc1", fc1); v.child("fc2", fc2) }
}

/// Multi-head self-attention with a fused qkv projection (timm's `Attention`). `x: [B, N, C]`.
/// The qkv rows are q, k, v blocks with heads contiguous inside each (docs/naming.md §2).
public final class Attention: Module {
    public let qkv: Linear, proj: Linear
    public let heads: Int, headDim: Int, scale: Float
    let attnDrop: Dropout, projDrop: Dropout
    let state: ModelState

    public init(_ dim: Int, heads: Int, qkvBias: Bool, attnDrop: Float = 0, projDrop: Float = 0, scale: Float? = nil,
                state: ModelState, generator: inout RandomGenerator) {
        precondition(dim % heads == 0, "attention width \(dim) is not divisible by \(heads) heads")
        self.heads = heads; headDim = dim / heads
        self.scale = scale ?? 1 / Float(dim / heads).squareRoot()
        qkv = Linear(dim, 3 * dim, bias: qkvBias, generator: &generator)
        proj = Linear(dim, dim, generator: &generator)
        self.attnDrop = Dropout(attnDrop, state: state); self.projDrop = Dropout(projDrop, state: state)
        self.state = state
    }

    /// Attention reads q, k, v where the qkv projection wrote them (`Tensor.packedSelfAttention`)
    /// unless attention dropout is active.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        if !attnDrop.isActive {
            return projDrop(proj(Tensor.packedSelfAttention(qkv: qkv(x), heads: heads, scale: scale)))
        }
        let b = x.shape[0], n = x.shape[1], c = x.shape[2]
        let t = qkv(x).reshaped([b, n, 3, heads, headDim]).permuted([2, 0, 3, 1, 4])  // [3, B, H, N, d]
        let out = attend(query: t.select(axis: 0, index: 0), key: t.select(axis: 0, index: 1),
                         value: t.select(axis: 0, index: 2), scale: scale, dropout: attnDrop)
        return projDrop(proj(out.permuted([0, 2, 1, 3]).reshaped([b, n, c])))
    }

    public func visit(_ v: inout ModuleVisitor) { v.child("qkv", qkv); v.child("proj", proj) }
}

/// softmax(scale·q·kᵀ)·v; the fused kernel unless attention dropout is active in training.
public func attend(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float, dropout: Dropout) -> Tensor {
    if dropout.p > 0 && dropout.state.training {
        let attn = (Tensor.matmul(q, k, transposeB: true) * scale).softmax(axis: -1)
        return Tensor.matmul(dropout(attn), v)
    }
    return Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: scale)
}
