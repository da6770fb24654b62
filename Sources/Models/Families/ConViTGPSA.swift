// ConViT — gated positional self-attention (GPSA), arXiv:2103.10697 §3 / docs/models.md §6.3.

import Tensor

/// Gated positional self-attention over `[B, N, D]` patch tokens (N = s², a square grid, no class
/// token). Per head η:
///
///     A = (1 − σ(g_η))·softmax(q·kᵀ·d^-0.5) + σ(g_η)·softmax(pos_proj(R))
///     out = proj(A·v)
///
/// with `R[i, j] = (Δx, Δy, Δx² + Δy²)` for query patch i and key patch j (row-major patches,
/// Δx = col(j) − col(i), Δy = row(j) − row(i)). MindCV hard-codes R for 14×14 patches; here it is
/// built for whatever grid the input has (the fixtures' `convit_tiny_g8` case).
///
/// Keys: `qk.weight [2D, D]` (q rows then k rows, heads contiguous), `v.weight [D, D]`,
/// `proj.weight/bias`, `pos_proj.weight [h, 3]`, `pos_proj.bias [h]`, `gating_param [h]`.
public final class GatedPositionalSelfAttention: Module {
    public let qk: Linear, v: Linear, proj: Linear, posProj: Linear
    public let gatingParam: Parameter
    public let heads: Int, headDim: Int, scale: Float
    let attnDrop: Dropout, projDrop: Dropout
    /// Relative positions `[N·N, 3]` for the last grid side seen.
    private var relativePositions: (side: Int, table: Tensor)?

    public init(_ dim: Int, heads: Int, qkvBias: Bool = false, attnDrop: Float = 0, projDrop: Float = 0,
                state: ModelState, generator: inout RandomGenerator) {
        precondition(dim % heads == 0, "GPSA: width \(dim) is not divisible by \(heads) heads")
        self.heads = heads; headDim = dim / heads
        scale = 1 / Float(dim / heads).squareRoot()
        qk = Linear(dim, 2 * dim, bias: qkvBias, generator: &generator)
        v = Linear(dim, dim, bias: qkvBias, generator: &generator)
        proj = Linear(dim, dim, generator: &generator)
        posProj = Linear(3, heads, generator: &generator)
        gatingParam = Parameter(Tensor.ones([heads]))
        self.attnDrop = Dropout(attnDrop, state: state); self.projDrop = Dropout(projDrop, state: state)
    }

    /// `R` for an `side × side` grid: `[side²·side², 3]`, row `i·N + j` = (Δx, Δy, Δx² + Δy²).
    public static func relativePositionTable(side: Int) -> Tensor {
        let n = side * side
        let t = Tensor(uninitializedShape: [n * n, 3])
        let p = t.storage.pointer
        for i in 0..<n {
            let (yi, xi) = i.quotientAndRemainder(dividingBy: side)
            for j in 0..<n {
                let (yj, xj) = j.quotientAndRemainder(dividingBy: side)
                let dx = Float(xj - xi), dy = Float(yj - yi)
                let r = p + (i * n + j) * 3
                r[0] = dx; r[1] = dy; r[2] = dx * dx + dy * dy
            }
        }
        return t
    }

    /// The local initialisation (ConViT §3, MindCV `local_init`): `v.weight` = identity; for a
    /// k×k kernel of heads (k = ⌊√h⌋, centre c = (k−1)/2) head η = h1 + k·h2 gets
    /// `pos_proj.weight[η] = [2(h2 − c), 2(h1 − c), −1]`; then the whole `pos_proj.weight` is scaled by
    /// the locality strength α. Heads beyond k² (h not a square) keep their random rows (scaled).
    public func localInit(localityStrength alpha: Float) {
        let d = v.inFeatures
        let eye = Tensor.zeros([d, d])
        for i in 0..<d { eye.storage.pointer[i * d + i] = 1 }
        v.weight = Parameter(eye)
        let w = posProj.weight.value.copy()
        let pw = w.storage.pointer
        let k = Int(Double(heads).squareRoot())
        let c = Float(k - 1) / 2
        for h1 in 0..<k {
            for h2 in 0..<k {
                let row = pw + (h1 + k * h2) * 3
                row[0] = 2 * (Float(h2) - c); row[1] = 2 * (Float(h1) - c); row[2] = -1
            }
        }
        for i in 0..<(heads * 3) { pw[i] *= alpha }
        posProj.weight = Parameter(w)
    }

    /// softmax over keys of the positional logits, shared by the batch: `[h, N, N]`.
    func positionalAttention(tokens n: Int) -> Tensor {
        let side = Int(Double(n).squareRoot().rounded())
        precondition(side * side == n, "GPSA: \(n) tokens do not form a square grid")
        let table: Tensor
        if let cached = relativePositions, cached.side == side { table = cached.table } else {
            table = Self.relativePositionTable(side: side)
            relativePositions = (side, table)
        }
        return posProj(table).reshaped([n, n, heads]).permuted([2, 0, 1]).softmax(axis: -1)
    }

    /// `x: [B, N, D]` → `[B, N, D]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let b = x.shape[0], n = x.shape[1], c = x.shape[2]
        let qkT = qk(x).reshaped([b, n, 2, heads, headDim]).permuted([2, 0, 3, 1, 4])  // [2, B, h, N, d]
        let q = qkT.select(axis: 0, index: 0), k = qkT.select(axis: 0, index: 1)
        let logits = Tensor.matmul(q, k, transposeB: true)  // [B, h, N, N], unscaled
        let positional = positionalAttention(tokens: n)  // [h, N, N]
        let attn = attnDrop(gatedAttentionMix(logits: logits, scale: scale, positional: positional,
                                              gate: gatingParam.value.sigmoid()))  // [B, h, N, N]
        let values = v(x).reshaped([b, n, heads, headDim]).permuted([0, 2, 1, 3])  // [B, h, N, d]
        let out = Tensor.matmul(attn, values).permuted([0, 2, 1, 3]).reshaped([b, n, c])
        return projDrop(proj(out))
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("qk", qk); v.child("v", self.v); v.child("proj", proj); v.child("pos_proj", posProj)
        v.param("gating_param", gatingParam)
    }
}

// MARK: - Fused gate mix


/// Max and sum over a row with 8 independent accumulators (vectorizes without reassociation).
@inline(__always)
private func rowMax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0 = -Float.infinity, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
    var i = 0
    while i + 8 <= n {
        a0 = p[i] > a0 ? p[i] : a0; a1 = p[i + 1] > a1 ? p[i + 1] : a1
        a2 = p[i + 2] > a2 ? p[i + 2] : a2; a3 = p[i + 3] > a3 ? p[i + 3] : a3
        a4 = p[i + 4] > a4 ? p[i + 4] : a4; a5 = p[i + 5] > a5 ? p[i + 5] : a5
        a6 = p[i + 6] > a6 ? p[i + 6] : a6; a7 = p[i + 7] > a7 ? p[i + 7] : a7
        i += 8
    }
    var m = max(max(max(a0, a1), max(a2, a3)), max(max(a4, a5), max(a6, a7)))
    while i < n { m = p[i] > m ? p[i] : m; i += 1 }
    return m
}

@inline(__always)
private func rowSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0: Float = 0, a1: Float = 0, a2: Float = 0, a3: Float = 0, a4: Float = 0, a5: Float = 0, a6: Float = 0, a7: Float = 0
    var i = 0
    while i + 8 <= n {
        a0 += p[i]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3]
        a4 += p[i + 4]; a5 += p[i + 5]; a6 += p[i + 6]; a7 += p[i + 7]
        i += 8
    }
    var s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    while i < n { s += p[i]; i += 1 }
    return s
}

@inline(__always)
private func rowDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0: Float = 0, a1: Float = 0, a2: Float = 0, a3: Float = 0, a4: Float = 0, a5: Float = 0, a6: Float = 0, a7: Float = 0
    var i = 0
    while i + 8 <= n {
        a0 += a[i] * b[i]; a1 += a[i + 1] * b[i + 1]; a2 += a[i + 2] * b[i + 2]; a3 += a[i + 3] * b[i + 3]
        a4 += a[i + 4] * b[i + 4]; a5 += a[i + 5] * b[i + 5]; a6 += a[i + 6] * b[i + 6]; a7 += a[i + 7] * b[i + 7]
        i += 8
    }
    var s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// GPSA's attention map in one pass: `A = (1 − g_h)·softmax(scale·L) + g_h·P_h` per head h, with
/// `logits L: [B, h, N, N]`, `positional P: [h, N, N]` (already soft-maxed, shared by the batch)
/// and `gate g: [h]` (already through the sigmoid). Saves the content softmax for backward:
///
///     dL = scale·Pc ⊙ (d̃ − rowsum(d̃ ⊙ Pc)),  d̃ = (1 − g)·dA
///     dP_h = g_h·Σ_b dA_b,h        dg_h = Σ_b,i,j dA ⊙ (P − Pc)
func gatedAttentionMix(logits: Tensor, scale: Float, positional: Tensor, gate: Tensor) -> Tensor {
    let b = logits.shape[0], h = logits.shape[1], n = logits.shape[2]
    precondition(scale > 0 && logits.shape == [b, h, n, n] && positional.shape == [h, n, n] && gate.shape == [h],
                 "gatedAttentionMix: logits \(logits.shape), positional \(positional.shape), gate \(gate.shape)")
    let content = Tensor(uninitializedShape: logits.shape)
    let out = Tensor(uninitializedShape: logits.shape)
    let rows = b * h * n
    do {
        let pl = logits.storage.pointer.sendable, pc = content.storage.pointer.sendable, po = out.storage.pointer.sendable
        let pp = positional.storage.pointer.sendable, pg = gate.storage.pointer.sendable
        Parallel.forRange(rows, grain: max(1, 16_384 / n)) { r in
            for row in r {
                let head = (row / n) % h, i = row % n
                let l = UnsafePointer(pl + row * n), c = pc + row * n, o = po + row * n
                let p = UnsafePointer(pp + (head * n + i) * n)
                let g = pg[head], m = rowMax(l, n) * scale  // max(scale·l) for scale > 0
                for j in 0..<n { c[j] = fastExp(l[j] * scale - m) }
                let inv = 1 / rowSum(c, n)
                for j in 0..<n { c[j] *= inv; o[j] = c[j] * (1 - g) + g * p[j] }
            }
        }
    }
    let pos0 = positional.detached(), gate0 = gate.detached()
    let needL = logits.node != nil, needP = positional.node != nil, needG = gate.node != nil
    return Tensor.record("gpsa_mix", out, inputs: [logits, positional, gate]) { dA in
        let dL = needL ? Tensor(uninitializedShape: [b, h, n, n]) : nil
        let dP = Tensor(uninitializedShape: [h, n, n])
        let dgRows = Tensor(uninitializedShape: [h * n])  // per (head, query row) partial sums of dg
        let pd = dA.storage.pointer.sendable, pc = content.storage.pointer.sendable
        let pp = pos0.storage.pointer.sendable, pg = gate0.storage.pointer.sendable
        let pdl = dL?.storage.pointer.sendable, pdp = dP.storage.pointer.sendable, pdg = dgRows.storage.pointer.sendable
        // one task per (head, query row): it owns dP[h, i, :] and loops over the batch
        Parallel.forRange(h * n, grain: max(1, 4096 / (n * b))) { r in
            for hi in r {
                let head = hi / n
                let g = pg[head]
                let dp = pdp + hi * n
                for j in 0..<n { dp[j] = 0 }
                var dg: Float = 0
                let p = UnsafePointer(pp + hi * n)
                for bi in 0..<b {
                    let row = (bi * h) * n + hi  // == ((bi·h + head)·n + i)
                    let d = UnsafePointer(pd + row * n), c = UnsafePointer(pc + row * n)
                    for j in 0..<n { dp[j] += d[j] }
                    let dc = rowDot(d, c, n)
                    dg += rowDot(d, p, n) - dc
                    if let pdl {
                        let dl = pdl + row * n
                        let dot = (1 - g) * dc
                        let k = (1 - g) * scale
                        for j in 0..<n { dl[j] = c[j] * (k * d[j] - scale * dot) }
                    }
                }
                for j in 0..<n { dp[j] *= g }
                pdg[hi] = dg
            }
        }
        var dGate: Tensor? = nil
        if needG {
            let t = Tensor(uninitializedShape: [h])
            for head in 0..<h { t.storage.pointer[head] = rowSum(UnsafePointer(pdg + head * n), n) }
            dGate = t
        }
        return [dL, needP ? dP : nil, dGate]
    }
}
