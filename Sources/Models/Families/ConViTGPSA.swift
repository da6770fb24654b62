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
        let attn = attnDrop(Tensor.gatedAttentionMix(logits: logits, scale: scale, positional: positional,
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
