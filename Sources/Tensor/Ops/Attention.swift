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

        let pq = q.storage.pointer.sendable, pk = k.storage.pointer.sendable, pv = v.storage.pointer.sendable
        let po = out.storage.pointer.sendable
        let recording = GradMode.isEnabled && (q.node != nil || k.node != nil || v.node != nil)
        let geometry = AttentionGeometry(pairs: bh, queries: nq, keys: nk, depth: d, valueDepth: dv, scale: scale)
        let probs = geometry.forward(keepingProbabilities: recording, q: { Q(pq, $0) }, k: { K(pk, $0) }, v: { V(pv, $0) }, o: { O(po, $0) })
        let traced: OpAttributes = ["scale": .float(scale), "channelMajor": .bool(layout == .channelMajor)]
        if !recording {
            OpTrace.note("attention", inputs: [q, k, v], output: out, attributes: traced)
            return withExtendedLifetime((q, k, v, probs)) { out }
        }
        let q0 = q.detached(), k0 = k.detached(), v0 = v.detached()
        return record("attention", out, inputs: [q, k, v], attributes: traced) { g in
            let dq = Tensor(uninitializedShape: q0.shape), dk = Tensor(uninitializedShape: k0.shape)
            let dvT = Tensor(uninitializedShape: v0.shape)
            let pg = g.storage.pointer.sendable, pdq = dq.storage.pointer.sendable, pdk = dk.storage.pointer.sendable
            let pdv = dvT.storage.pointer.sendable
            let pq = q0.storage.pointer.sendable, pk = k0.storage.pointer.sendable, pv = v0.storage.pointer.sendable
            geometry.backward(probabilities: probs, dO: { O(pg, $0) }, q: { Q(pq, $0) }, k: { K(pk, $0) }, v: { V(pv, $0) },
                              dq: { Q(pdq, $0) }, dk: { K(pdk, $0) }, dv: { V(pdv, $0) })
            return withExtendedLifetime((g, q0, k0, v0)) { [dq, dk, dvT] }
        }
    }
}

extension Tensor {
    /// Multi-head self-attention straight from a fused qkv projection: `qkv: [B, N, 3·C]` (the q, k
    /// and v blocks, heads contiguous inside each: timm's layout) → `[B, N, C]` (heads side by side,
    /// ready for the output projection), C = heads · head dim. Every (batch, head) matrix is read and
    /// written where it lies, through GEMM leading dimensions: no permute or select copies forward and
    /// no scatter of dq, dk, dv backward. Same GEMMs and softmax as `scaledDotProductAttention` on the
    /// permuted operands, so the same results. Under an op tracer it records that composition.
    public static func packedSelfAttention(qkv: Tensor, heads: Int, scale: Float) -> Tensor {
        precondition(qkv.rank == 3 && heads > 0 && qkv.shape[2] % (3 * heads) == 0,
                     "packed attention: qkv \(qkv.shape) is not [B, N, 3·heads·d] for \(heads) heads")
        let b = qkv.shape[0], n = qkv.shape[1], c = qkv.shape[2] / 3
        if OpTrace.current != nil {
            let t = qkv.reshaped([b, n, 3, heads, c / heads]).permuted([2, 0, 3, 1, 4])  // [3, B, H, N, d]
            let o = scaledDotProductAttention(query: t.select(axis: 0, index: 0), key: t.select(axis: 0, index: 1),
                                              value: t.select(axis: 0, index: 2), scale: scale)
            return o.permuted([0, 2, 1, 3]).reshaped([b, n, c])
        }
        return packedAttention([qkv], q: PackedOperand(input: 0, block: 0, ld: 3 * c, rows: n),
                               k: PackedOperand(input: 0, block: 1, ld: 3 * c, rows: n),
                               v: PackedOperand(input: 0, block: 2, ld: 3 * c, rows: n), heads: heads, width: c, scale: scale)
    }

    /// Multi-head attention of `query: [B, N, C]` over a fused key-value projection `keyValue: [B, M,
    /// 2·C]` (k and v blocks, heads contiguous inside each: PVT's layout) → `[B, N, C]`, read and
    /// written in place like `packedSelfAttention`.
    public static func packedAttention(query: Tensor, keyValue: Tensor, heads: Int, scale: Float) -> Tensor {
        let b = query.shape[0], n = query.shape[1], c = query.shape[2], m = keyValue.shape[1]
        precondition(query.rank == 3 && keyValue.rank == 3 && keyValue.shape[0] == b && keyValue.shape[2] == 2 * c
                     && heads > 0 && c % heads == 0,
                     "packed attention: query \(query.shape) and key-value \(keyValue.shape) do not fit \(heads) heads")
        if OpTrace.current != nil {
            let d = c / heads
            let qh = query.reshaped([b, n, heads, d]).permuted([0, 2, 1, 3])
            let kv = keyValue.reshaped([b, m, 2, heads, d]).permuted([2, 0, 3, 1, 4])  // [2, B, H, M, d]
            let o = scaledDotProductAttention(query: qh, key: kv.select(axis: 0, index: 0), value: kv.select(axis: 0, index: 1),
                                              scale: scale)
            return o.permuted([0, 2, 1, 3]).reshaped([b, n, c])
        }
        return packedAttention([query, keyValue], q: PackedOperand(input: 0, block: 0, ld: c, rows: n),
                               k: PackedOperand(input: 1, block: 0, ld: 2 * c, rows: m),
                               v: PackedOperand(input: 1, block: 1, ld: 2 * c, rows: m), heads: heads, width: c, scale: scale)
    }

    /// Attention over operands that lie in packed `[B, rows, ld]` inputs; output `[B, q.rows, width]`.
    /// Every element of each input is one operand's, so the input gradients need no zero fill.
    private static func packedAttention(_ inputs: [Tensor], q: PackedOperand, k: PackedOperand, v: PackedOperand,
                                        heads: Int, width c: Int, scale: Float) -> Tensor {
        let b = inputs[0].shape[0], d = c / heads
        let out = Tensor(uninitializedShape: [b, q.rows, c])
        let o = PackedOperand(input: 0, block: 0, ld: c, rows: q.rows)
        /// Pair i's `rows × d` matrix of operand `x` in the buffer at `p`.
        @Sendable func view(_ p: SendablePointer<Float>, _ i: Int, _ x: PackedOperand) -> MatrixView {
            MatrixView(pointer: p + (i / heads) * x.rows * x.ld + x.block * c + (i % heads) * d, transposed: false, ld: x.ld)
        }
        let geometry = AttentionGeometry(pairs: b * heads, queries: q.rows, keys: k.rows, depth: d, valueDepth: d, scale: scale)
        let recording = GradMode.isEnabled && inputs.contains { $0.node != nil }
        let pin = inputs.map { $0.storage.pointer.sendable }, po = out.storage.pointer.sendable
        let probs = geometry.forward(keepingProbabilities: recording, q: { view(pin[q.input], $0, q) },
                                     k: { view(pin[k.input], $0, k) }, v: { view(pin[v.input], $0, v) }, o: { view(po, $0, o) })
        guard recording else { return withExtendedLifetime((inputs, probs)) { out } }
        let saved = inputs.map { $0.detached() }
        return record("packed_attention", out, inputs: inputs) { g in
            let grads = saved.map { Tensor(uninitializedShape: $0.shape) }
            let pin = saved.map { $0.storage.pointer.sendable }, pd = grads.map { $0.storage.pointer.sendable }
            let pg = g.storage.pointer.sendable
            geometry.backward(probabilities: probs, dO: { view(pg, $0, o) },
                              q: { view(pin[q.input], $0, q) }, k: { view(pin[k.input], $0, k) }, v: { view(pin[v.input], $0, v) },
                              dq: { view(pd[q.input], $0, q) }, dk: { view(pd[k.input], $0, k) }, dv: { view(pd[v.input], $0, v) })
            return withExtendedLifetime((g, saved)) { grads }
        }
    }
}

extension Tensor {
    /// Multi-head self-attention on a batch-stacked channel-major map: `qkv: [1, 3·C, B·H, W]` is the
    /// output of a 1×1 qkv convolution over the batch stacked along the height, `[1, C_in, B·H, W]`
    /// (sample b owns rows b·H ..< (b+1)·H), with output channels (which ∈ {q, k, v}, head, d),
    /// C = heads · d. Returns `[1, C, B·H, W]`, heads as channels, ready for the 1×1 output
    /// projection. Pair (b, head) reads its `[d, H·W]` q, k and v blocks in place: rows are
    /// channels, B·H·W apart, columns sample b's positions. Same GEMMs and softmax per pair as
    /// `scaledDotProductAttention(…, layout: .channelMajor)` on `[B, heads, d, H·W]` operands; under an
    /// op tracer it records that composition.
    public static func stackedSelfAttention(qkv: Tensor, batch b: Int, heads: Int, scale: Float) -> Tensor {
        precondition(qkv.rank == 4 && qkv.shape[0] == 1 && heads > 0 && b > 0 && qkv.shape[1] % (3 * heads) == 0
                     && qkv.shape[2] % b == 0,
                     "stacked attention: qkv \(qkv.shape) is not [1, 3·heads·d, \(b)·H, W] for \(heads) heads")
        let c = qkv.shape[1] / 3, d = c / heads, rows = qkv.shape[2] / b, w = qkv.shape[3], n = rows * w, ld = b * n
        if OpTrace.current != nil {
            let t = qkv.reshaped([3, heads, d, b, n]).permuted([0, 3, 1, 2, 4])  // [3, B, h, d, N]
            let o = scaledDotProductAttention(query: t.select(axis: 0, index: 0), key: t.select(axis: 0, index: 1),
                                              value: t.select(axis: 0, index: 2), scale: scale, layout: .channelMajor)
            return o.permuted([1, 2, 0, 3]).reshaped([1, c, b * rows, w])  // [h, d, B, N] → stacked
        }
        let out = Tensor(uninitializedShape: [1, c, b * rows, w])
        /// Pair i's logical `[N, d]` matrix of block `block` (0 q, 1 k, 2 v; 0 for the output), stored as `[d, N]`.
        @Sendable func view(_ p: SendablePointer<Float>, _ i: Int, _ block: Int) -> MatrixView {
            MatrixView(pointer: p + (block * c + (i % heads) * d) * ld + (i / heads) * n, transposed: true, ld: ld)
        }
        let geometry = AttentionGeometry(pairs: b * heads, queries: n, keys: n, depth: d, valueDepth: d, scale: scale)
        let recording = GradMode.isEnabled && qkv.node != nil
        let pin = qkv.storage.pointer.sendable, po = out.storage.pointer.sendable
        let probs = geometry.forward(keepingProbabilities: recording, q: { view(pin, $0, 0) }, k: { view(pin, $0, 1) },
                                     v: { view(pin, $0, 2) }, o: { view(po, $0, 0) })
        guard recording else { return withExtendedLifetime((qkv, probs)) { out } }
        let saved = qkv.detached()
        return record("stacked_attention", out, inputs: [qkv]) { g in
            // every element of qkv is one operand's: no zero fill
            let grad = Tensor(uninitializedShape: saved.shape)
            let pin = saved.storage.pointer.sendable, pd = grad.storage.pointer.sendable, pg = g.storage.pointer.sendable
            geometry.backward(probabilities: probs, dO: { view(pg, $0, 0) },
                              q: { view(pin, $0, 0) }, k: { view(pin, $0, 1) }, v: { view(pin, $0, 2) },
                              dq: { view(pd, $0, 0) }, dk: { view(pd, $0, 1) }, dv: { view(pd, $0, 2) })
            return withExtendedLifetime((g, saved)) { [grad] }
        }
    }
}

/// Where one attention operand's (batch, head) matrices lie in a packed `[B, rows, ld]` input: head
/// h's columns start at `block · C + h · d`.
struct PackedOperand {
    let input: Int, block: Int, ld: Int, rows: Int
}

/// The sizes of one attention call: `pairs` (batch, head) matrices Q [queries, depth], K [keys,
/// depth], V [keys, valueDepth], O [queries, valueDepth]. Its forward and backward run on matrices
/// handed over as views per pair index, so any storage layout (separate tensors, the packed qkv
/// projection) becomes GEMM flags and leading dimensions. The pairs are split across cores with
/// single-threaded GEMMs, which beats threading each small GEMM.
struct AttentionGeometry {
    let pairs: Int, queries: Int, keys: Int, depth: Int, valueDepth: Int
    let scale: Float

    var chunks: Int { Swift.max(1, Swift.min(Parallel.threads, pairs)) }

    @inline(__always) func P(_ p: UnsafeMutablePointer<Float>) -> MatrixView { MatrixView(pointer: p, transposed: false, ld: keys) }

    /// O = softmax(scale·Q·Kᵀ)·V per pair. Returns the probabilities `[pairs, queries, keys]` when
    /// `keepingProbabilities` (for backward); otherwise each worker reuses one cache-resident
    /// `[queries, keys]` scratch (plus `queries` row scales) and the result is only scratch.
    func forward(keepingProbabilities keep: Bool, q: (Int) -> MatrixView, k: (Int) -> MatrixView, v: (Int) -> MatrixView,
                 o: (Int) -> MatrixView) -> Tensor {
        let chunks = self.chunks, nq = queries, nk = keys
        let probs = Tensor(uninitializedShape: keep ? [pairs, nq, nk] : [chunks, nq * nk + nq])
        let pp = probs.storage.pointer.sendable
        BLASRuntime.withSingleThreadedBLAS {
            Parallel.forEach(chunks) { ch in
                for i in (pairs * ch / chunks)..<(pairs * (ch + 1) / chunks) {
                    if keep {
                        forward(q(i), k(i), v(i), o(i), probabilities: pp + i * nq * nk)
                    } else {
                        let s = pp + ch * (nq * nk + nq)
                        forward(q(i), k(i), v(i), o(i), exponentials: s, rowScales: s + nq * nk)
                    }
                }
            }
        }
        return probs
    }

    /// One pair on the calling thread: P = softmax(scale·Q·Kᵀ) into `probabilities` (`queries × keys`), O = P·V.
    @inline(__always)
    func forward(_ q: MatrixView, _ k: MatrixView, _ v: MatrixView, _ o: MatrixView, probabilities s: UnsafeMutablePointer<Float>) {
        gemm(q, k.t, into: P(s), m: queries, n: keys, k: depth, alpha: scale)  // S = scale·Q·Kᵀ
        for row in 0..<queries { softmaxRowInPlace(s + row * keys, keys) }
        gemm(P(s), v, into: o, m: queries, n: valueDepth, k: keys)  // O = P·V
    }

    /// One pair on the calling thread when the probabilities are not kept: E = exp(S − rowmax) in
    /// `exponentials` (`queries × keys`) and O = diag(1/rowsum E)·(E·V), which scales the
    /// `queries × valueDepth` output instead of normalising the `queries × keys` matrix (one pass
    /// over it fewer: PiT-Ti's first stage has 730 keys against 32 value columns). `rowScales`:
    /// `queries` floats of scratch.
    @inline(__always)
    func forward(_ q: MatrixView, _ k: MatrixView, _ v: MatrixView, _ o: MatrixView, exponentials s: UnsafeMutablePointer<Float>,
                 rowScales inv: UnsafeMutablePointer<Float>) {
        gemm(q, k.t, into: P(s), m: queries, n: keys, k: depth, alpha: scale)  // S = scale·Q·Kᵀ
        for row in 0..<queries {
            let e = s + row * keys
            inv[row] = 1 / expShiftedSum(UnsafePointer(e), e, keys, shift: vmax(e, keys))
        }
        gemm(P(s), v, into: o, m: queries, n: valueDepth, k: keys)  // O = E·V
        if o.transposed {
            for c in 0..<valueDepth { let col = o.pointer + c * o.ld; for row in 0..<queries { col[row] *= inv[row] } }
        } else {
            for row in 0..<queries { let r = o.pointer + row * o.ld, f = inv[row]; for c in 0..<valueDepth { r[c] *= f } }
        }
    }

    /// Gradients of Q, K and V from dO and the saved probabilities, written into `dq`, `dk`, `dv`.
    func backward(probabilities probs: Tensor, dO: (Int) -> MatrixView, q: (Int) -> MatrixView, k: (Int) -> MatrixView,
                  v: (Int) -> MatrixView, dq: (Int) -> MatrixView, dk: (Int) -> MatrixView, dv: (Int) -> MatrixView) {
        let chunks = self.chunks, nq = queries, nk = keys
        let scratch = Tensor(uninitializedShape: [chunks, nq * nk])
        let pp = probs.storage.pointer.sendable, ps = scratch.storage.pointer.sendable
        BLASRuntime.withSingleThreadedBLAS {
            Parallel.forEach(chunks) { ch in
                let dp = ps + ch * nq * nk
                for i in (pairs * ch / chunks)..<(pairs * (ch + 1) / chunks) {
                    let p = pp + i * nq * nk, g = dO(i)
                    gemm(P(p).t, g, into: dv(i), m: nk, n: valueDepth, k: nq)  // dV = Pᵀ·dO
                    gemm(g, v(i).t, into: P(dp), m: nq, n: nk, k: valueDepth)  // dP = dO·Vᵀ
                    // dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale
                    for row in 0..<nq { softmaxBackwardRow(p + row * nk, dp + row * nk, dp + row * nk, nk, scale: scale) }
                    gemm(P(dp), k(i), into: dq(i), m: nq, n: depth, k: nk)  // dQ = dS·K
                    gemm(P(dp).t, q(i), into: dk(i), m: nk, n: depth, k: nq)  // dK = dSᵀ·Q
                }
            }
        }
        withExtendedLifetime((scratch, probs)) {}
    }
}

