import Foundation

// LayerNorm over the last axis and BatchNorm over (N, H, W), fused forward and backward.
// Forward saves exactly what backward needs: the per-row (per-channel) mean and 1/σ.

extension Tensor {
    /// LayerNorm over the last axis: (x − μ)/√(σ² + eps)·weight + bias, `x: [..., C]`.
    public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
        let c = x.shape.last!, rows = x.count / c
        if let weight { precondition(weight.shape == [c], "layerNorm: weight \(weight.shape) for input \(x.shape)") }
        if let bias { precondition(bias.shape == [c], "layerNorm: bias \(bias.shape) for input \(x.shape)") }
        let out = Tensor(uninitializedShape: x.shape)
        let stats = Tensor(uninitializedShape: [rows, 2])  // mean, rstd
        let px = x.storage.pointer.sendable, po = out.storage.pointer.sendable, ps = stats.storage.pointer.sendable
        let pw = weight?.storage.pointer.sendable, pb = bias?.storage.pointer.sendable
        Parallel.forRange(rows, grain: Swift.max(1, 8192 / c)) { r in
            for i in r {
                let xi = px + i * c, yi = po + i * c
                var s: Float = 0
                for k in 0..<c { s += xi[k] }
                let mean = s / Float(c)
                var v: Float = 0
                for k in 0..<c { let d = xi[k] - mean; v += d * d }
                let rstd = 1 / (v / Float(c) + eps).squareRoot()
                ps[2 * i] = mean; ps[2 * i + 1] = rstd
                if let pw, let pb {
                    for k in 0..<c { yi[k] = (xi[k] - mean) * rstd * pw[k] + pb[k] }
                } else if let pw {
                    for k in 0..<c { yi[k] = (xi[k] - mean) * rstd * pw[k] }
                } else {
                    for k in 0..<c { yi[k] = (xi[k] - mean) * rstd }
                }
            }
        }
        var inputs = [x]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        let hasW = weight != nil, hasB = bias != nil
        let xd = x.node != nil
        return record("layer_norm", out, inputs: inputs) { g in
            let dx = xd ? Tensor(uninitializedShape: x.shape) : nil
            let pg = g.storage.pointer.sendable
            let pdx = dx?.storage.pointer.sendable
            let chunks = Swift.max(1, Swift.min(Parallel.threads, rows / Swift.max(1, 8192 / c)))
            // per-chunk partial sums for dweight and dbias, reduced after
            let partial = Tensor.zeros([chunks, 2, c])
            let pp = partial.storage.pointer.sendable
            DispatchQueue.concurrentPerform(iterations: chunks) { ch in
                let lo = rows * ch / chunks, hi = rows * (ch + 1) / chunks
                let dwAcc = pp + ch * 2 * c, dbAcc = pp + ch * 2 * c + c
                for i in lo..<hi {
                    let xi = px + i * c, gi = pg + i * c
                    let mean = ps[2 * i], rstd = ps[2 * i + 1]
                    var sumG: Float = 0, sumGX: Float = 0
                    for k in 0..<c {
                        let xh = (xi[k] - mean) * rstd
                        let gk = gi[k]
                        dwAcc[k] += gk * xh
                        dbAcc[k] += gk
                        let gw = hasW ? gk * pw![k] : gk
                        sumG += gw; sumGX += gw * xh
                    }
                    if let pdx {
                        let di = pdx + i * c
                        let mg = sumG / Float(c), mgx = sumGX / Float(c)
                        for k in 0..<c {
                            let xh = (xi[k] - mean) * rstd
                            let gw = hasW ? gi[k] * pw![k] : gi[k]
                            di[k] = rstd * (gw - mg - xh * mgx)
                        }
                    }
                }
            }
            var grads: [Tensor?] = [dx]
            if hasW || hasB {
                let red = partial.sum(axes: [0])  // [2, c]
                if hasW { grads.append(red.slice(axis: 0, 0..<1).reshapedNoGrad([c])) }
                if hasB { grads.append(red.slice(axis: 0, 1..<2).reshapedNoGrad([c])) }
            }
            return grads
        }
    }

    /// BatchNorm over `x: [N, C, H, W]` (or `[N, C]`). Training: normalises with the batch mean and
    /// biased variance and updates the running statistics in place, `running = (1−m)·running + m·stat`
    /// with the unbiased variance (PyTorch momentum convention; MindSpore's momentum is 1 − m).
    /// Evaluation: normalises with the running statistics.
    public static func batchNorm(_ x: Tensor, weight: Tensor, bias: Tensor, runningMean: Tensor, runningVar: Tensor,
                                 training: Bool, momentum: Float = 0.1, eps: Float = 1e-5) -> Tensor {
        let n = x.shape[0], c = x.shape[1]
        let hw = x.count / (n * c)
        precondition(weight.shape == [c] && bias.shape == [c] && runningMean.shape == [c] && runningVar.shape == [c],
                     "batchNorm: parameters must have shape [\(c)] for input \(x.shape)")
        let m = n * hw
        let mean = Tensor(uninitializedShape: [c]), rstd = Tensor(uninitializedShape: [c])
        let px = x.storage.pointer.sendable, pm = mean.storage.pointer.sendable, pr = rstd.storage.pointer.sendable
        let rm = runningMean.storage.pointer.sendable, rv = runningVar.storage.pointer.sendable
        if training {
            Parallel.forRange(c, grain: Swift.max(1, 32_768 / Swift.max(m, 1))) { r in
                for ch in r {
                    var s: Double = 0
                    for b in 0..<n { let p = px + (b * c + ch) * hw; var t: Float = 0; for k in 0..<hw { t += p[k] }; s += Double(t) }
                    let mu = Float(s / Double(m))
                    var v: Double = 0
                    for b in 0..<n { let p = px + (b * c + ch) * hw; var t: Float = 0; for k in 0..<hw { let d = p[k] - mu; t += d * d }; v += Double(t) }
                    let varB = Float(v / Double(m))
                    pm[ch] = mu; pr[ch] = 1 / (varB + eps).squareRoot()
                    let unbiased = m > 1 ? Float(v / Double(m - 1)) : varB
                    rm[ch] = (1 - momentum) * rm[ch] + momentum * mu
                    rv[ch] = (1 - momentum) * rv[ch] + momentum * unbiased
                }
            }
        } else {
            for ch in 0..<c { pm[ch] = rm[ch]; pr[ch] = 1 / (rv[ch] + eps).squareRoot() }
        }
        let out = Tensor(uninitializedShape: x.shape)
        let po = out.storage.pointer.sendable, pw = weight.storage.pointer.sendable, pb = bias.storage.pointer.sendable
        Parallel.forRange(n * c, grain: Swift.max(1, 32_768 / Swift.max(hw, 1))) { r in
            for bc in r {
                let ch = bc % c
                let scale = pr[ch] * pw[ch], shift = pb[ch] - pm[ch] * pr[ch] * pw[ch]
                let s = px + bc * hw, d = po + bc * hw
                for k in 0..<hw { d[k] = s[k] * scale + shift }
            }
        }
        let xd = x.node != nil
        return record("batch_norm", out, inputs: [x, weight, bias]) { g in
            let pg = g.storage.pointer.sendable
            let dw = Tensor(uninitializedShape: [c]), db = Tensor(uninitializedShape: [c])
            let pdw = dw.storage.pointer.sendable, pdb = db.storage.pointer.sendable
            let dx = xd ? Tensor(uninitializedShape: x.shape) : nil
            let pdx = dx?.storage.pointer.sendable
            Parallel.forRange(c, grain: 1) { r in
                for ch in r {
                    let mu = pm[ch], rs = pr[ch]
                    var sg: Double = 0, sgx: Double = 0
                    for b in 0..<n {
                        let xp = px + (b * c + ch) * hw, gp = pg + (b * c + ch) * hw
                        var t1: Float = 0, t2: Float = 0
                        for k in 0..<hw { t1 += gp[k]; t2 += gp[k] * (xp[k] - mu) }
                        sg += Double(t1); sgx += Double(t2)
                    }
                    let sumG = Float(sg), sumGXh = Float(sgx) * rs
                    pdb[ch] = sumG; pdw[ch] = sumGXh
                    guard let pdx else { continue }
                    let w = pw[ch]
                    if training {
                        // dx = w·rstd/M · (M·g − Σg − x̂·Σ(g·x̂))
                        let a = w * rs, mg = sumG / Float(m), mgx = sumGXh / Float(m)
                        for b in 0..<n {
                            let xp = px + (b * c + ch) * hw, gp = pg + (b * c + ch) * hw, dp = pdx + (b * c + ch) * hw
                            for k in 0..<hw { dp[k] = a * (gp[k] - mg - (xp[k] - mu) * rs * mgx) }
                        }
                    } else {
                        let a = w * rs
                        for b in 0..<n {
                            let gp = pg + (b * c + ch) * hw, dp = pdx + (b * c + ch) * hw
                            for k in 0..<hw { dp[k] = a * gp[k] }
                        }
                    }
                }
            }
            return [dx, dw, db]
        }
    }
}
