import CBLAS
import Foundation

// Scaled dot-product attention, fused: per (batch, head) one GEMM for the scores, a row softmax in
// place, one GEMM for the output. The probabilities are saved for backward (they are what backward
// needs); the (batch, head) pairs are split across cores with single-threaded GEMMs, which beats
// threading each small GEMM.

extension BLASRuntime {
    /// Runs `body` with OpenBLAS on one thread, for regions that run independent small GEMMs on
    /// several engine threads at once (one single-threaded sgemm per worker beats threading each
    /// small GEMM). Concurrent single-threaded sgemm calls are safe: OpenBLAS (threaded build)
    /// takes its work buffers from a locked pool and runs a 1-thread call on the caller's thread.
    ///
    /// The thread count is process-global, so regions are reference-counted under a lock: the
    /// first region to enter saves the count and sets 1, the last to leave restores it. Without
    /// this, two overlapping regions (two tasks evaluating models) could restore the count while
    /// the other still runs concurrent sgemms.
    public static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
        singleThreadLock.lock()
        if singleThreadDepth == 0 {
            savedThreads = openblas_get_num_threads()
            if savedThreads != 1 { openblas_set_num_threads(1) }
        }
        singleThreadDepth += 1
        singleThreadLock.unlock()
        defer {
            singleThreadLock.lock()
            singleThreadDepth -= 1
            if singleThreadDepth == 0 && savedThreads != 1 { openblas_set_num_threads(savedThreads) }
            singleThreadLock.unlock()
        }
        return try body()
    }

    /// Whether some thread is inside `withSingleThreadedBLAS` (its callers parallelise themselves, so
    /// `sgemm` does not split its product again).
    static var inSingleThreadedRegion: Bool { singleThreadDepth > 0 }

    private static let singleThreadLock = NSLock()
    nonisolated(unsafe) private static var singleThreadDepth = 0
    nonisolated(unsafe) private static var savedThreads: Int32 = 1
}

extension Tensor {
    /// softmax(scale · q·kᵀ)·v with `q: [B, H, Nq, d]`, `k: [B, H, Nk, d]`, `v: [B, H, Nk, dv]` →
    /// `[B, H, Nq, dv]`. Leading dimensions may be any shape as long as q, k and v agree.
    public static func scaledDotProductAttention(query q: Tensor, key k: Tensor, value v: Tensor, scale: Float) -> Tensor {
        precondition(q.rank >= 2 && q.rank == k.rank && k.rank == v.rank, "attention: ranks of q \(q.shape), k \(k.shape), v \(v.shape)")
        let lead = Array(q.shape.dropLast(2))
        precondition(Array(k.shape.dropLast(2)) == lead && Array(v.shape.dropLast(2)) == lead,
                     "attention: leading dimensions of q \(q.shape), k \(k.shape), v \(v.shape) differ")
        let nq = q.shape[q.rank - 2], d = q.shape[q.rank - 1]
        let nk = k.shape[k.rank - 2], dv = v.shape[v.rank - 1]
        precondition(k.shape.last == d && v.shape[v.rank - 2] == nk, "attention: q \(q.shape), k \(k.shape), v \(v.shape) do not fit")
        let bh = lead.reduce(1, *)
        let out = Tensor(uninitializedShape: lead + [nq, dv])
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
                    sgemm(transA: false, transB: true, m: nq, n: nk, k: d, alpha: scale, a: pq + i * nq * d, lda: d,
                          b: pk + i * nk * d, ldb: d, c: s, ldc: nk)
                    for row in 0..<nq { softmaxRowInPlace(s + row * nk, nk) }
                    sgemm(transA: false, transB: false, m: nq, n: dv, k: nk, a: s, lda: nk, b: pv + i * nk * dv, ldb: dv,
                          c: po + i * nq * dv, ldc: dv)
                }
            }
        }
        if !recording { return withExtendedLifetime((q, k, v, probs)) { out } }
        let q0 = q.detached(), k0 = k.detached(), v0 = v.detached()
        return record("attention", out, inputs: [q, k, v]) { g in
            let pp = probs.storage.pointer.sendable  // the closure owns the saved probabilities
            let dq = Tensor(uninitializedShape: q0.shape), dk = Tensor(uninitializedShape: k0.shape)
            let dvT = Tensor(uninitializedShape: v0.shape)
            let scratch = Tensor(uninitializedShape: [Swift.min(Parallel.threads, bh), nq * nk])
            let pg = g.storage.pointer.sendable, pdq = dq.storage.pointer.sendable, pdk = dk.storage.pointer.sendable
            let pdv = dvT.storage.pointer.sendable, ps = scratch.storage.pointer.sendable
            let pq = q0.storage.pointer.sendable, pk = k0.storage.pointer.sendable, pv = v0.storage.pointer.sendable
            let chunks = Swift.min(Parallel.threads, bh)
            BLASRuntime.withSingleThreadedBLAS {
                DispatchQueue.concurrentPerform(iterations: chunks) { ch in
                    let dp = ps + ch * nq * nk
                    for i in (bh * ch / chunks)..<(bh * (ch + 1) / chunks) {
                        let p = pp + i * nq * nk, gi = pg + i * nq * dv
                        // dV = Pᵀ·dO
                        sgemm(transA: true, transB: false, m: nk, n: dv, k: nq, a: p, lda: nk, b: gi, ldb: dv,
                              c: pdv + i * nk * dv, ldc: dv)
                        // dP = dO·Vᵀ, then dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale
                        sgemm(transA: false, transB: true, m: nq, n: nk, k: dv, a: gi, lda: dv, b: pv + i * nk * dv, ldb: dv,
                              c: dp, ldc: nk)
                        for row in 0..<nq {
                            let pr = p + row * nk, dr = dp + row * nk
                            let dot = vdot(pr, dr, nk)
                            for j in 0..<nk { dr[j] = pr[j] * (dr[j] - dot) * scale }
                        }
                        // dQ = dS·K, dK = dSᵀ·Q
                        sgemm(transA: false, transB: false, m: nq, n: d, k: nk, a: dp, lda: nk, b: pk + i * nk * d, ldb: d,
                              c: pdq + i * nq * d, ldc: d)
                        sgemm(transA: true, transB: false, m: nk, n: d, k: nq, a: dp, lda: nk, b: pq + i * nq * d, ldb: d,
                              c: pdk + i * nk * d, ldc: d)
                    }
                }
            }
            return withExtendedLifetime((scratch, probs, g, q0, k0, v0)) { [dq, dk, dvT] }
        }
    }
}
