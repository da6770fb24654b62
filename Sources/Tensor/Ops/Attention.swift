import CBLAS
import Foundation

// Scaled dot-product attention, fused: per (batch, head) one GEMM for the scores, a row softmax in
// place, one GEMM for the output. The probabilities are saved for backward (they are what backward
// needs); the (batch, head) pairs are split across cores with single-threaded GEMMs, which beats
// threading each small GEMM.

/// How attention operands are laid out in memory: `tokenMajor` stores each (batch, head) matrix as
/// `[tokens, channels]` (ViT, PiT, PVT, ConViT), `channelMajor` as `[channels, tokens]` (Visformer,
/// whose q/k/v come from 1×1 convolutions over `[B, C, H, W]`, so no transpose is ever copied).
public enum AttentionLayout: Sendable {
    case tokenMajor, channelMajor
}

/// One (batch, head) matrix seen logically as `rows × cols`, stored row-major either as is
/// (`transposed == false`, leading dimension ≥ cols) or as its transpose (leading dimension ≥ rows).
/// Lets one GEMM sequence serve both attention layouts: the orientation becomes cblas flags.
struct MatrixView {
    let pointer: UnsafeMutablePointer<Float>
    let transposed: Bool
    let ld: Int

    /// The logical transpose: same memory, other orientation.
    var t: MatrixView { MatrixView(pointer: pointer, transposed: !transposed, ld: ld) }

    /// A logical `rows × cols` matrix at `pointer`, stored per `layout` (channel-major stores
    /// `[cols, rows]`).
    init(_ pointer: UnsafeMutablePointer<Float>, rows: Int, cols: Int, layout: AttentionLayout) {
        self.init(pointer: pointer, transposed: layout == .channelMajor, ld: layout == .channelMajor ? rows : cols)
    }

    init(pointer: UnsafeMutablePointer<Float>, transposed: Bool, ld: Int) {
        self.pointer = pointer; self.transposed = transposed; self.ld = ld
    }
}

/// C = alpha·A·B for logical `A: m×k`, `B: k×n`, `C: m×n`, each in any storage orientation. A
/// transposed C is produced as Cᵀ = Bᵀ·Aᵀ, which row-major sgemm writes directly.
@inline(__always)
func gemm(_ a: MatrixView, _ b: MatrixView, into c: MatrixView, m: Int, n: Int, k: Int, alpha: Float = 1) {
    if c.transposed {
        sgemm(transA: !b.transposed, transB: !a.transposed, m: n, n: m, k: k, alpha: alpha,
              a: b.pointer, lda: b.ld, b: a.pointer, ldb: a.ld, c: c.pointer, ldc: c.ld)
    } else {
        sgemm(transA: a.transposed, transB: b.transposed, m: m, n: n, k: k, alpha: alpha,
              a: a.pointer, lda: a.ld, b: b.pointer, ldb: b.ld, c: c.pointer, ldc: c.ld)
    }
}

extension Tensor {
    /// softmax(scale · q·kᵀ)·v per leading index. Token-major (the default): `q: [..., Nq, d]`,
    /// `k: [..., Nk, d]`, `v: [..., Nk, dv]` → `[..., Nq, dv]`. Channel-major: `q: [..., d, Nq]`,
    /// `k: [..., d, Nk]`, `v: [..., dv, Nk]` → `[..., dv, Nq]`. Leading dimensions may be any shape
    /// as long as q, k and v agree.
    public static func scaledDotProductAttention(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float,
                                                 layout: AttentionLayout = .tokenMajor) -> Tensor {
        precondition(q.rank >= 2 && q.rank == k.rank && k.rank == v.rank, "attention: ranks of q \(q.shape), k \(k.shape), v \(v.shape)")
        let lead = Array(q.shape.dropLast(2))
        precondition(Array(k.shape.dropLast(2)) == lead && Array(v.shape.dropLast(2)) == lead,
                     "attention: leading dimensions of q \(q.shape), k \(k.shape), v \(v.shape) differ")
        // (tokens, channels) of a [..., a, b] operand under the layout.
        func dims(_ t: Tensor) -> (tokens: Int, channels: Int) {
            let a = t.shape[t.rank - 2], b = t.shape[t.rank - 1]
            return layout == .tokenMajor ? (a, b) : (b, a)
        }
        let (nq, d) = dims(q), (nk, dk) = dims(k), (nv, dv) = dims(v)
        precondition(dk == d && nv == nk, "attention (\(layout)): q \(q.shape), k \(k.shape), v \(v.shape) do not fit")
        let bh = lead.reduce(1, *)
        let out = Tensor(uninitializedShape: lead + (layout == .tokenMajor ? [nq, dv] : [dv, nq]))
        // Per (batch, head) index i, the logical matrices Q [Nq, d], K [Nk, d], V [Nk, dv], O [Nq, dv].
        @Sendable func Q(_ p: SendablePointer<Float>, _ i: Int) -> MatrixView { MatrixView(p + i * nq * d, rows: nq, cols: d, layout: layout) }
        @Sendable func K(_ p: SendablePointer<Float>, _ i: Int) -> MatrixView { MatrixView(p + i * nk * d, rows: nk, cols: d, layout: layout) }
        @Sendable func V(_ p: SendablePointer<Float>, _ i: Int) -> MatrixView { MatrixView(p + i * nk * dv, rows: nk, cols: dv, layout: layout) }
        @Sendable func O(_ p: SendablePointer<Float>, _ i: Int) -> MatrixView { MatrixView(p + i * nq * dv, rows: nq, cols: dv, layout: layout) }
        @Sendable func P(_ p: UnsafeMutablePointer<Float>) -> MatrixView { MatrixView(pointer: p, transposed: false, ld: nk) }

        let pq = q.storage.pointer.sendable, pk = k.storage.pointer.sendable, pv = v.storage.pointer.sendable
        let po = out.storage.pointer.sendable
        // Without recording nothing keeps the probabilities: each worker reuses one [Nq, Nk] scratch
        // (cache-resident) instead of writing the whole [B, H, Nq, Nk] tensor.
        let recording = GradMode.isEnabled && (q.node != nil || k.node != nil || v.node != nil)
        let chunks = Swift.max(1, Swift.min(Parallel.threads, bh))
        let probs = Tensor(uninitializedShape: recording ? lead + [nq, nk] : [chunks, nq, nk])
        let pp = probs.storage.pointer.sendable
        BLASRuntime.withSingleThreadedBLAS {
            Parallel.forEach(chunks) { ch in
                for i in (bh * ch / chunks)..<(bh * (ch + 1) / chunks) {
                    let s = pp + (recording ? i : ch) * nq * nk
                    gemm(Q(pq, i), K(pk, i).t, into: P(s), m: nq, n: nk, k: d, alpha: scale)  // S = scale·Q·Kᵀ
                    for row in 0..<nq { softmaxRowInPlace(s + row * nk, nk) }
                    gemm(P(s), V(pv, i), into: O(po, i), m: nq, n: dv, k: nk)  // O = P·V
                }
            }
        }
        let traced: OpAttributes = ["scale": .float(scale), "channelMajor": .bool(layout == .channelMajor)]
        if !recording {
            OpTrace.note("attention", inputs: [q, k, v], output: out, attributes: traced)
            return withExtendedLifetime((q, k, v, probs)) { out }
        }
        let q0 = q.detached(), k0 = k.detached(), v0 = v.detached()
        return record("attention", out, inputs: [q, k, v], attributes: traced) { g in
            let pp = probs.storage.pointer.sendable  // the closure owns the saved probabilities
            let dq = Tensor(uninitializedShape: q0.shape), dk = Tensor(uninitializedShape: k0.shape)
            let dvT = Tensor(uninitializedShape: v0.shape)
            let scratch = Tensor(uninitializedShape: [chunks, nq * nk])
            let pg = g.storage.pointer.sendable, pdq = dq.storage.pointer.sendable, pdk = dk.storage.pointer.sendable
            let pdv = dvT.storage.pointer.sendable, ps = scratch.storage.pointer.sendable
            let pq = q0.storage.pointer.sendable, pk = k0.storage.pointer.sendable, pv = v0.storage.pointer.sendable
            BLASRuntime.withSingleThreadedBLAS {
                DispatchQueue.concurrentPerform(iterations: chunks) { ch in
                    let dp = ps + ch * nq * nk
                    for i in (bh * ch / chunks)..<(bh * (ch + 1) / chunks) {
                        let p = pp + i * nq * nk, dO = O(pg, i)
                        gemm(P(p).t, dO, into: V(pdv, i), m: nk, n: dv, k: nq)  // dV = Pᵀ·dO
                        gemm(dO, V(pv, i).t, into: P(dp), m: nq, n: nk, k: dv)  // dP = dO·Vᵀ
                        // dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale
                        for row in 0..<nq { softmaxBackwardRow(p + row * nk, dp + row * nk, dp + row * nk, nk, scale: scale) }
                        gemm(P(dp), K(pk, i), into: Q(pdq, i), m: nq, n: d, k: nk)  // dQ = dS·K
                        gemm(P(dp).t, Q(pq, i), into: K(pdk, i), m: nk, n: d, k: nq)  // dK = dSᵀ·Q
                    }
                }
            }
            return withExtendedLifetime((scratch, probs, g, q0, k0, v0)) { [dq, dk, dvT] }
        }
    }
}
