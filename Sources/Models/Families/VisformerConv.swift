// Visformer — the grouped 3×3 convolution of the spatial-conv MLPs (stages 0–1), as a local fast
// path. At 224 this conv (192 channels, 8 groups, 28×28 in visformer_tiny) is the largest single cost
// of the model: the engine's general conv2d builds its im2col with a per-element bounds check and runs
// one multi-threaded GEMM per (sample, group), each only 24 rows tall. Here the samples are split
// across cores, each with single-threaded GEMMs, and the stride-1 im2col copies whole row segments.
// It computes exactly what `Tensor.conv2d(x, weight:, bias: nil, padding: (k/2, k/2), groups:)`
// computes (checked by VisformerTests); it belongs in the engine's conv2d and can go once that has
// an equivalent path.

import Dispatch
import Tensor

/// Stride-1 convolution with "same" zero padding (k odd, pad k/2) and no bias.
/// `x: [B, C, H, W]`, `weight: [O, C/groups, k, k]` → `[B, O, H, W]`.
func visformerGroupedConv(_ x: Tensor, weight: Tensor, groups: Int) -> Tensor {
    let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    let o = weight.shape[0], cg = weight.shape[1], k = weight.shape[2]
    precondition(x.rank == 4 && weight.rank == 4 && weight.shape[3] == k && k % 2 == 1 && c == cg * groups && o % groups == 0,
                 "grouped conv: input \(x.shape), weight \(weight.shape), groups \(groups)")
    let og = o / groups, kk = cg * k * k, hw = h * w
    let geometry = VisformerConvGeometry(channelsPerGroup: cg, height: h, width: w, kernel: k)
    let out = Tensor(uninitializedShape: [b, o, h, w])
    let chunks = min(Parallel.threads, b)
    let scratch = Tensor(uninitializedShape: [chunks, kk * hw])
    withExtendedLifetime((x, weight, out, scratch)) {
        let px = x.storage.pointer.sendable, pw = weight.storage.pointer.sendable, po = out.storage.pointer.sendable
        let ps = scratch.storage.pointer.sendable
        BLASRuntime.withSingleThreadedBLAS {
            DispatchQueue.concurrentPerform(iterations: chunks) { ch in
                let cols = ps + ch * kk * hw
                for s in (b * ch / chunks)..<(b * (ch + 1) / chunks) {
                    for g in 0..<groups {
                        geometry.im2col(px + (s * c + g * cg) * hw, cols)
                        sgemm(transA: false, transB: false, m: og, n: hw, k: kk, a: pw + g * og * kk, lda: kk, b: cols, ldb: hw,
                              c: po + (s * o + g * og) * hw, ldc: hw)
                    }
                }
            }
        }
    }
    let x0 = x.detached(), w0 = weight.detached()
    let needX = x.node != nil, needW = weight.node != nil
    return Tensor.record("visformer_grouped_conv", out, inputs: [x, weight]) { grad in
        let dx = needX ? Tensor(uninitializedShape: x0.shape) : nil
        let partial = needW ? Tensor.zeros([chunks, o * kk]) : nil
        let scratch = Tensor(uninitializedShape: [chunks, kk * hw])
        withExtendedLifetime((x0, w0, grad, dx, partial, scratch)) {
            let px = x0.storage.pointer.sendable, pw = w0.storage.pointer.sendable, pg = grad.storage.pointer.sendable
            let pdx = dx?.storage.pointer.sendable, pp = partial?.storage.pointer.sendable
            let ps = scratch.storage.pointer.sendable
            BLASRuntime.withSingleThreadedBLAS {
                DispatchQueue.concurrentPerform(iterations: chunks) { ch in
                    let cols = ps + ch * kk * hw
                    for s in (b * ch / chunks)..<(b * (ch + 1) / chunks) {
                        for g in 0..<groups {
                            let gOut = pg + (s * o + g * og) * hw
                            if let pp {
                                // dW_g += dOut_g · colsᵀ
                                geometry.im2col(px + (s * c + g * cg) * hw, cols)
                                sgemm(transA: false, transB: true, m: og, n: kk, k: hw, a: gOut, lda: hw, b: cols, ldb: hw,
                                      beta: 1, c: pp + ch * o * kk + g * og * kk, ldc: kk)
                            }
                            if let pdx {
                                // dcols = W_gᵀ · dOut_g, scattered back onto dx
                                sgemm(transA: true, transB: false, m: kk, n: hw, k: og, a: pw + g * og * kk, lda: kk, b: gOut,
                                      ldb: hw, c: cols, ldc: hw)
                                geometry.col2im(cols, pdx + (s * c + g * cg) * hw)
                            }
                        }
                    }
                }
            }
        }
        var dw: Tensor? = nil
        if let partial { dw = chunks == 1 ? partial.reshaped([o, cg, k, k]) : partial.sum(axes: [0]).reshaped([o, cg, k, k]) }
        return [dx, dw]
    }
}

/// One group's im2col / col2im for a stride-1, pad-k/2 convolution: `cols[(c·k + i)·k + j, y·W + x] =
/// in[c, y + i − p, x + j − p]` (zero outside).
private struct VisformerConvGeometry {
    let channelsPerGroup: Int, height: Int, width: Int, kernel: Int
    var pad: Int { kernel / 2 }

    /// Fills `cols` (`[cg·k·k, H·W]`) from the group's channels `src` (`[cg, H, W]`).
    func im2col(_ src: UnsafeMutablePointer<Float>, _ cols: UnsafeMutablePointer<Float>) {
        let h = height, w = width, hw = h * w
        for c in 0..<channelsPerGroup {
            let plane = src + c * hw
            for i in 0..<kernel {
                for j in 0..<kernel {
                    let dst = cols + ((c * kernel + i) * kernel + j) * hw
                    let dx = j - pad
                    let lo = max(0, -dx), hi = min(w, w - dx)  // output columns that read inside the row
                    for y in 0..<h {
                        let row = dst + y * w
                        let sy = y + i - pad
                        if sy < 0 || sy >= h || lo >= hi { row.update(repeating: 0, count: w); continue }
                        if lo > 0 { row.update(repeating: 0, count: lo) }
                        (row + lo).update(from: plane + sy * w + lo + dx, count: hi - lo)
                        if hi < w { (row + hi).update(repeating: 0, count: w - hi) }
                    }
                }
            }
        }
    }

    /// Writes the adjoint of `im2col`: `dst` (`[cg, H, W]`) = Σ over kernel taps of the shifted `cols` rows.
    func col2im(_ cols: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>) {
        let h = height, w = width, hw = h * w
        dst.update(repeating: 0, count: channelsPerGroup * hw)
        for c in 0..<channelsPerGroup {
            let plane = dst + c * hw
            for i in 0..<kernel {
                for j in 0..<kernel {
                    let src = cols + ((c * kernel + i) * kernel + j) * hw
                    let dx = j - pad
                    let lo = max(0, -dx), hi = min(w, w - dx)
                    if lo >= hi { continue }
                    for y in 0..<h {
                        let sy = y + i - pad
                        if sy < 0 || sy >= h { continue }
                        let d = plane + sy * w + lo + dx, s = src + y * w + lo
                        for t in 0..<(hi - lo) { d[t] += s[t] }
                    }
                }
            }
        }
    }
}
