import Foundation

// A transformer block of 1×1 convolutions on the batch-stacked channel-major map `[1, C, B·H, W]`
// (Visformer's attention stages, Sources/Models/Families/Visformer.swift), with its BatchNorms
// folded into the qkv and fc1 weights:
//   y = x + Wp·attention(Wqkv·x + bqkv) + bp,    out = y + W2·gelu(W1·y + b1) + b2.
// Op by op, every step is a pass over the whole batch: the qkv map, the attention output and the
// hidden map (up to 19 MB at 224 px, batch 32) go to memory and back. Here each core takes whole
// samples, reads sample b's columns of x in place (leading dimension B·H·W) and carries it through
// the block in its own scratch, which stays in cache; only x is read and the result written. The
// per-sample GEMMs have H·W = 196 columns, where OpenBLAS runs at full single-core speed. Same
// kernels as the composition (the GEMMs, the attention pair loop, the GELU kernel), the bias and
// residual entering as in `conv2d(…, adding:)`.

extension Tensor {
    /// The block above for `x: [1, C, B·H, W]` (sample b owns rows b·H ..< (b+1)·H), `qkvWeight: [3·h·d,
    /// C, 1, 1]` with output channels (which ∈ {q, k, v}, head, d), `projWeight: [C, h·d, 1, 1]`,
    /// `fc1Weight: [D, C, 1, 1]`, `fc2Weight: [C, D, 1, 1]` and optional biases; logits scaled by
    /// `scale`. While recording, under an op tracer, at a batch smaller than the thread count or on
    /// maps of fewer than `stackedBlockMinimumPositions` positions per sample (there one GEMM over the
    /// whole batch beats per-sample ones) it runs as the composition: conv2d, `stackedSelfAttention`,
    /// conv2d adding x, conv2d, gelu, conv2d adding y.
    public static func stackedTransformerBlock(_ x: Tensor, batch b: Int, heads: Int, scale: Float,
                                               qkvWeight wq: Tensor, qkvBias bq: Tensor?, projWeight wp: Tensor, projBias bp: Tensor?,
                                               fc1Weight w1: Tensor, fc1Bias b1: Tensor?, fc2Weight w2: Tensor, fc2Bias b2: Tensor?,
                                               approximate: GELUApproximation) -> Tensor {
        let c = x.shape[1], rows = x.shape[2], w = x.shape[3], c3 = wq.shape[0], width = c3 / 3, hidden = w1.shape[0]
        precondition(x.rank == 4 && x.shape[0] == 1 && b > 0 && rows % b == 0 && heads > 0 && c3 % (3 * heads) == 0
                     && wq.shape == [c3, c, 1, 1] && wp.shape == [c, width, 1, 1] && w1.shape == [hidden, c, 1, 1]
                     && w2.shape == [c, hidden, 1, 1] && (bq == nil || bq!.shape == [c3]) && (bp == nil || bp!.shape == [c])
                     && (b1 == nil || b1!.shape == [hidden]) && (b2 == nil || b2!.shape == [c]),
                     "stacked transformer block: x \(x.shape) (batch \(b)), weights \(wq.shape), \(wp.shape), \(w1.shape), \(w2.shape) do not fit")
        let inputs = [x, wq, wp, w1, w2] + [bq, bp, b1, b2].compactMap { $0 }
        let recording = GradMode.isEnabled && inputs.contains { $0.node != nil }
        let p = rows / b * w
        guard !recording, OpTrace.current == nil, b >= Parallel.threads, p >= stackedBlockMinimumPositions else {
            let attention = stackedSelfAttention(qkv: conv2d(x, weight: wq, bias: bq), batch: b, heads: heads, scale: scale)
            let y = conv2d(attention, weight: wp, bias: bp, adding: x)
            return conv2d(conv2d(y, weight: w1, bias: b1).gelu(approximate: approximate), weight: w2, bias: b2, adding: y)
        }
        let ld = b * p, d = width / heads
        let out = Tensor(uninitializedShape: x.shape)
        let workers = Swift.min(Parallel.threads, b)
        // per core: the qkv map, the attention output, one pair's exponentials, the hidden map, the row scales
        let per = c3 * p + width * p + p * p + hidden * p + p
        let scratch = Tensor(uninitializedShape: [workers, per])
        let geometry = AttentionGeometry(pairs: heads, queries: p, keys: p, depth: d, valueDepth: d, scale: scale)
        let px = x.storage.pointer.sendable, po = out.storage.pointer.sendable, ps = scratch.storage.pointer.sendable
        let (pwq, pwp, pw1, pw2) = (wq.storage.pointer.sendable, wp.storage.pointer.sendable, w1.storage.pointer.sendable,
                                    w2.storage.pointer.sendable)
        let (pbq, pbp, pb1, pb2) = (bq?.storage.pointer.sendable, bp?.storage.pointer.sendable, b1?.storage.pointer.sendable,
                                    b2?.storage.pointer.sendable)
        BLASRuntime.withSingleThreadedBLAS {
            Parallel.forEach(workers) { wk in
                let qkv = ps + wk * per, att = qkv + c3 * p, probs = att + width * p, h = probs + p * p
                for s in (b * wk / workers)..<(b * (wk + 1) / workers) {
                    let xs = UnsafePointer(px + s * p), ys = po + s * p  // sample s's columns, `ld` apart
                    // qkv = Wqkv·x + bqkv
                    if let pbq { writeRowBias(qkv, rows: c3, count: p, stride: p, bias: pbq.base, adding: false) }
                    sgemm(transA: false, transB: false, m: c3, n: p, k: c, a: pwq.base, lda: c, b: xs, ldb: ld,
                          beta: pbq == nil ? 0 : 1, c: qkv, ldc: p)
                    // per head, channel-major [d, p] operands
                    for hh in 0..<heads {
                        func view(_ base: UnsafeMutablePointer<Float>, _ block: Int) -> MatrixView {
                            MatrixView(pointer: base + (block * width + hh * d) * p, transposed: true, ld: p)
                        }
                        geometry.forward(view(qkv, 0), view(qkv, 1), view(qkv, 2), view(att, 0), exponentials: probs,
                                         rowScales: h + hidden * p)
                    }
                    // y = x + bp + Wp·attention, in the output's columns
                    for r in 0..<c { (ys + r * ld).update(from: xs + r * ld, count: p) }
                    if let pbp { writeRowBias(ys, rows: c, count: p, stride: ld, bias: pbp.base, adding: true) }
                    sgemm(transA: false, transB: false, m: c, n: p, k: width, a: pwp.base, lda: width, b: UnsafePointer(att), ldb: p,
                          beta: 1, c: ys, ldc: ld)
                    // out = y + b2 + W2·gelu(W1·y + b1)
                    if let pb1 { writeRowBias(h, rows: hidden, count: p, stride: p, bias: pb1.base, adding: false) }
                    sgemm(transA: false, transB: false, m: hidden, n: p, k: c, a: pw1.base, lda: c, b: UnsafePointer(ys), ldb: ld,
                          beta: pb1 == nil ? 0 : 1, c: h, ldc: p)
                    approximate.forward(UnsafePointer(h), h, hidden * p)
                    if let pb2 { writeRowBias(ys, rows: c, count: p, stride: ld, bias: pb2.base, adding: true) }
                    sgemm(transA: false, transB: false, m: c, n: p, k: hidden, a: pw2.base, lda: hidden, b: UnsafePointer(h), ldb: p,
                          beta: 1, c: ys, ldc: ld)
                }
            }
        }
        return withExtendedLifetime((inputs, scratch)) { out }
    }
}

/// Smallest map (H·W per sample) that `Tensor.stackedTransformerBlock` runs sample by sample.
nonisolated(unsafe) public var stackedBlockMinimumPositions = 128
