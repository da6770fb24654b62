import Foundation

// LayerNorm over the last axis and BatchNorm over (N, H, W), fused forward and backward.
// Forward saves exactly what backward needs: the per-row (per-channel) mean and 1/σ.

extension Tensor {
    /// LayerNorm over the last axis: (x − μ)/√(σ² + eps)·weight + bias, `x: [..., C]`.
    public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) -> Tensor {
        let c = x.shape.last!, rows = x.count / Swift.max(c, 1)
        if let weight { precondition(weight.shape == [c], "layerNorm: weight \(weight.shape) for input \(x.shape)") }
        if let bias { precondition(bias.shape == [c], "layerNorm: bias \(bias.shape) for input \(x.shape)") }
        let out = Tensor(uninitializedShape: x.shape)
        let stats = Tensor(uninitializedShape: [rows, 2])  // mean, rstd per row
        let px = x.storage.pointer.sendable, po = out.storage.pointer.sendable, ps = stats.storage.pointer.sendable
        let pw = weight?.storage.pointer.sendable, pb = bias?.storage.pointer.sendable
        let invC = 1 / Float(c)
        Parallel.forRange(rows, grain: Swift.max(1, 8192 / Swift.max(c, 1))) { r in
            for i in r {
                let xi = UnsafePointer(px + i * c), yi = po + i * c
                // two passes (mean, then squared deviations): no cancellation for rows with a large mean
                let mean = vsum(xi, c) * invC
                let rstd = 1 / (vsumSquaredDeviation(xi, c, mean) * invC + eps).squareRoot()
                ps[2 * i] = mean; ps[2 * i + 1] = rstd
                if let pw, let pb {
                    for k in 0..<c { yi[k] = (xi[k] - mean) * rstd * pw[k] + pb[k] }
                } else if let pw {
                    for k in 0..<c { yi[k] = (xi[k] - mean) * rstd * pw[k] }
                } else if let pb {
                    for k in 0..<c { yi[k] = (xi[k] - mean) * rstd + pb[k] }
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
        let x0 = x.detached(), w0 = weight?.detached()
        return record("layer_norm", out, inputs: inputs, attributes: ["eps": .float(eps), "hasWeight": .bool(hasW), "hasBias": .bool(hasB)]) { g in
            // x̂ = (x − μ)·rstd, ĝ = g·w:  dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)),
            // dw = Σ_rows g·x̂, db = Σ_rows g (per-thread partial sums, reduced after)
            let dx = xd ? Tensor(uninitializedShape: x0.shape) : nil
            let chunks = Swift.max(1, Swift.min(Parallel.threads, rows / Swift.max(1, 8192 / Swift.max(c, 1))))
            let partial = Tensor.zeros([chunks, 2, c])
            withExtendedLifetime((x0, w0, stats, g)) {
                let px = x0.storage.pointer.sendable, ps = stats.storage.pointer.sendable
                let pw = w0?.storage.pointer.sendable
                let pg = g.storage.pointer.sendable, pdx = dx?.storage.pointer.sendable
                let pp = partial.storage.pointer.sendable
                Parallel.forEach(chunks) { ch in
                    let lo = rows * ch / chunks, hi = rows * (ch + 1) / chunks
                    layerNormBackwardRows(x: px.base, g: pg.base, weight: pw?.base, stats: ps.base, dx: pdx?.base,
                                          dw: pp + ch * 2 * c, db: pp + ch * 2 * c + c, rows: lo..<hi, c: c)
                }
            }
            var grads: [Tensor?] = [dx]
            if hasW || hasB {
                let red = chunks == 1 ? partial.reshapedNoGrad([2, c]) : partial.sum(axes: [0])  // [2, c]
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
                    for b in 0..<n { s += Double(vsum(UnsafePointer(px + (b * c + ch) * hw), hw)) }
                    let mu = Float(s / Double(m))
                    var v: Double = 0
                    for b in 0..<n { v += Double(vsumSquaredDeviation(UnsafePointer(px + (b * c + ch) * hw), hw, mu)) }
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
        let x0 = x.detached(), w0 = weight.detached()
        return record("batch_norm", out, inputs: [x, weight, bias],
                      attributes: ["eps": .float(eps), "training": .bool(training), "runningMean": .tensor(runningMean), "runningVar": .tensor(runningVar)]) { g in
            // the closure owns what it reads: the input, the weight and the statistics
            let px = x0.storage.pointer.sendable, pw = w0.storage.pointer.sendable
            let pm = mean.storage.pointer.sendable, pr = rstd.storage.pointer.sendable
            let pg = g.storage.pointer.sendable
            let dw = Tensor(uninitializedShape: [c]), db = Tensor(uninitializedShape: [c])
            let pdw = dw.storage.pointer.sendable, pdb = db.storage.pointer.sendable
            let dx = xd ? Tensor(uninitializedShape: x0.shape) : nil
            let pdx = dx?.storage.pointer.sendable
            Parallel.forRange(c, grain: 1) { r in
                for ch in r {
                    let mu = pm[ch], rs = pr[ch]
                    var sg: Double = 0, sgx: Double = 0
                    for b in 0..<n {
                        let xp = px + (b * c + ch) * hw, gp = pg + (b * c + ch) * hw
                        sg += Double(vsum(UnsafePointer(gp), hw))
                        sgx += Double(vdotCentered(UnsafePointer(gp), UnsafePointer(xp), hw, mu))
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
            return withExtendedLifetime((x0, w0, mean, rstd, g)) { [dx, dw, db] }
        }
    }
}

/// LayerNorm backward over `rows`: accumulates Σ g·x̂ into `dw` and Σ g into `db` (both length c)
/// and writes dx when asked. SIMD accumulators for the two row sums; the dx loop vectorizes.
@inline(__always)
func layerNormBackwardRows(x: UnsafeMutablePointer<Float>, g: UnsafeMutablePointer<Float>, weight: UnsafeMutablePointer<Float>?,
                           stats: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                           dw: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>, rows: Range<Int>, c: Int) {
    let invC = 1 / Float(c)
    for i in rows {
        let xi = x + i * c, gi = g + i * c
        let mean = stats[2 * i], rstd = stats[2 * i + 1]
        let mv = Vec(repeating: mean), rv = Vec(repeating: rstd)
        var sg = Vec(), sgx = Vec()
        var k = 0
        while k + 16 <= c {
            let xh = (vload(xi + k) - mv) * rv
            let gk = vload(gi + k)
            vstore(vload(dw + k) + gk * xh, dw + k)
            vstore(vload(db + k) + gk, db + k)
            let gw = weight.map { gk * vload($0 + k) } ?? gk
            sg += gw; sgx += gw * xh
            k += 16
        }
        var sumG = sg.sum(), sumGX = sgx.sum()
        while k < c {
            let xh = (xi[k] - mean) * rstd, gk = gi[k]
            dw[k] += gk * xh; db[k] += gk
            let gw = weight.map { gk * $0[k] } ?? gk
            sumG += gw; sumGX += gw * xh
            k += 1
        }
        guard let dx else { continue }
        let di = dx + i * c
        let mg = sumG * invC, mgx = sumGX * invC
        if let w = weight {
            for k in 0..<c { di[k] = rstd * (gi[k] * w[k] - mg - (xi[k] - mean) * rstd * mgx) }
        } else {
            for k in 0..<c { di[k] = rstd * (gi[k] - mg - (xi[k] - mean) * rstd * mgx) }
        }
    }
}
