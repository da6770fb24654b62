// ConViT's gated attention map (GPSA, docs/models.md §6.3; used by Sources/Models/Families/ConViTGPSA.swift),
// forward and backward, on the shared row kernels: the content softmax is `softmaxRowInPlace`, its backward
// `softmaxBackwardRow`, and the reductions are VectorMath's blocked `vdot`/`vsum`.

extension Tensor {
    /// GPSA's attention map in one pass: `A = (1 − g_h)·softmax(scale·L) + g_h·P_h` per head h, with
    /// `logits L: [B, h, N, N]`, `positional P: [h, N, N]` (already soft-maxed, shared by the batch)
    /// and `gate g: [h]` (already through the sigmoid); `scale > 0`. Saves the content softmax
    /// `Pc = softmax(scale·L)` for backward:
    ///
    ///     dL = (1 − g)·scale · Pc ⊙ (dA − rowsum(dA ⊙ Pc))
    ///     dP_h = g_h·Σ_b dA_b,h        dg_h = Σ_b,i,j dA ⊙ (P − Pc)
    public static func gatedAttentionMix(logits: Tensor, scale: Float, positional: Tensor, gate: Tensor) -> Tensor {
        let b = logits.shape[0], h = logits.shape[1], n = logits.shape[2]
        precondition(scale > 0 && logits.shape == [b, h, n, n] && positional.shape == [h, n, n] && gate.shape == [h],
                     "gatedAttentionMix: logits \(logits.shape), positional \(positional.shape), gate \(gate.shape)")
        let content = Tensor(uninitializedShape: logits.shape)
        let out = Tensor(uninitializedShape: logits.shape)
        do {
            let pl = logits.storage.pointer.sendable, pc = content.storage.pointer.sendable, po = out.storage.pointer.sendable
            let pp = positional.storage.pointer.sendable, pg = gate.storage.pointer.sendable
            Parallel.forRange(b * h * n, grain: Swift.max(1, 16_384 / n)) { r in
                for row in r {
                    let head = (row / n) % h, i = row % n
                    let l = pl + row * n, c = pc + row * n, o = po + row * n, p = pp + (head * n + i) * n
                    for j in 0..<n { c[j] = l[j] * scale }
                    softmaxRowInPlace(c, n)
                    let g = pg[head]
                    for j in 0..<n { o[j] = c[j] * (1 - g) + g * p[j] }
                }
            }
        }
        let pos0 = positional.detached(), gate0 = gate.detached()
        let needL = logits.node != nil, needP = positional.node != nil, needG = gate.node != nil
        return record("gpsa_mix", out, inputs: [logits, positional, gate], attributes: ["scale": .float(scale)]) { dA in
            let dL = needL ? Tensor(uninitializedShape: [b, h, n, n]) : nil
            let dP = Tensor(uninitializedShape: [h, n, n])
            let dgRows = Tensor(uninitializedShape: [h * n])  // per (head, query row) partial sums of dg
            let pd = dA.storage.pointer.sendable, pc = content.storage.pointer.sendable
            let pp = pos0.storage.pointer.sendable, pg = gate0.storage.pointer.sendable
            let pdl = dL?.storage.pointer.sendable, pdp = dP.storage.pointer.sendable, pdg = dgRows.storage.pointer.sendable
            // one task per (head, query row): it owns dP[h, i, :] and loops over the batch
            Parallel.forRange(h * n, grain: Swift.max(1, 4096 / (n * b))) { r in
                for hi in r {
                    let g = pg[hi / n]
                    let dp = pdp + hi * n, p = UnsafePointer(pp + hi * n)
                    for j in 0..<n { dp[j] = 0 }
                    var dg: Float = 0
                    for bi in 0..<b {
                        let row = (bi * h) * n + hi  // == ((bi·h + head)·n + i)
                        let d = UnsafePointer(pd + row * n), c = UnsafePointer(pc + row * n)
                        for j in 0..<n { dp[j] += d[j] }
                        let dc = pdl.map { softmaxBackwardRow(c, d, $0 + row * n, n, scale: (1 - g) * scale) } ?? vdot(d, c, n)
                        dg += vdot(d, p, n) - dc
                    }
                    for j in 0..<n { dp[j] *= g }
                    pdg[hi] = dg
                }
            }
            var dGate: Tensor? = nil
            if needG {
                let t = Tensor(uninitializedShape: [h])
                for head in 0..<h { t.storage.pointer[head] = vsum(pdg + head * n, n) }
                dGate = t
            }
            return withExtendedLifetime((content, pos0, gate0, dA)) { [dL, needP ? dP : nil, dGate] }
        }
    }
}
