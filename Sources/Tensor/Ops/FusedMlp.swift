import Foundation

// The transformer MLP, fc1 → GELU → fc2, as one tape entry. Recorded op by op it keeps two hidden-sized
// tensors per block until backward (fc1's output for GELU, GELU's output for fc2's weight gradient);
// fused it keeps only fc1's output h and recomputes gelu(h) in backward, in the same pass that forms
// GELU's input gradient (one exp per element, as before). On pit_ti (batch 32, 224 px) this is ~125 MB
// less at the training step's peak. Below two row blocks per thread (`MlpRowBlocks`) it runs the
// composition's kernels and GEMMs on whole tensors, so the results are identical to it, bit for bit;
// from there on (PiT-Ti, PVT-Tiny and ConViT-Ti at batch 32) forward and backward run a block of rows
// at a time per thread, with the hidden-sized intermediates in cache, equal to the composition up to
// rounding.

extension Tensor {
    /// fc2(gelu(fc1(x))) with `x: [..., in]`, `fc1Weight: [hidden, in]`, `fc1Bias: [hidden]`,
    /// `fc2Weight: [out, hidden]`, `fc2Bias: [out]` → `[..., out]`. Under an op tracer (ONNX export)
    /// it records the three ops separately.
    public static func mlp(_ x: Tensor, fc1Weight w1: Tensor, fc1Bias b1: Tensor, fc2Weight w2: Tensor, fc2Bias b2: Tensor,
                           approximate: GELUApproximation) -> Tensor {
        if OpTrace.current != nil {
            return linear(linear(x, weight: w1, bias: b1).gelu(approximate: approximate), weight: w2, bias: b2)
        }
        let hidden = w1.shape[0]
        precondition(w2.shape[1] == hidden, "mlp: fc2 weight \(w2.shape) after fc1 weight \(w1.shape)")
        let inputs = [x, w1, b1, w2, b2]
        let recording = GradMode.isEnabled && inputs.contains { $0.node != nil }
        let h: Tensor, out: Tensor
        // decided once: backward takes the same blocks as forward
        let rowBlock = MlpRowBlocks.rows(rows: x.count / Swift.max(1, w1.shape[1]), hidden: hidden)
        if let block = rowBlock {
            // in row blocks; when recording, h is written out for backward and gelu(h) stays in the block's scratch
            let kept = recording ? Tensor(uninitializedShape: Array(x.shape.dropLast()) + [hidden]) : nil
            out = mlpInRowBlocks(x, w1: w1, b1: b1, w2: w2, b2: b2, blockRows: block, approximate: approximate, keeping: kept)
            guard let kept else { return out }
            h = kept
        } else {
            h = linearProduct(x, weight: w1, bias: b1)
            // Without recording GELU runs in place; with it, h is kept and y lives until fc2 has read it.
            let y = recording ? Tensor(uninitializedShape: h.shape) : h
            let ph = h.storage.pointer.sendable, py = y.storage.pointer.sendable
            Parallel.forRange(h.count) { r in
                approximate.forward(UnsafePointer(ph + r.lowerBound), py + r.lowerBound, r.count)
            }
            out = linearProduct(y, weight: w2, bias: b2)
        }
        guard recording else { return out }
        let rows = h.count / hidden
        let x0 = x.detached(), w10 = w1.detached(), w20 = w2.detached(), h0 = h.detached()
        let needs = inputs.map { $0.node != nil }
        return record("mlp", out, inputs: inputs) { g in
            if let block = rowBlock {
                return mlpBackwardInRowBlocks(g, x: x0, h: h0, w1: w10, w2: w20, blockRows: block, needs: needs, approximate: approximate)
            }
            // dY = g·W2, then in one pass y = gelu(h) (for dW2) and dH = dY·gelu′(h) in place of dY.
            let dh = LinearGradients(g, rows: rows, weight: w20, input: h0, needInput: true, needWeight: false, needBias: false).input
            guard let dh else { return [] }
            let fc2: LinearGradients
            do {
                let y = Tensor(uninitializedShape: h0.shape)
                let ph = h0.storage.pointer.sendable, py = y.storage.pointer.sendable, pd = dh.storage.pointer.sendable
                Parallel.forRange(y.count) { r in
                    let lo = r.lowerBound
                    approximate.forwardBackward(UnsafePointer(ph + lo), UnsafePointer(pd + lo), py + lo, pd + lo, r.count)
                }
                fc2 = LinearGradients(g, rows: rows, weight: w20, input: y, needInput: false, needWeight: needs[3], needBias: needs[4])
            }
            let fc1 = LinearGradients(dh, rows: rows, weight: w10, input: x0, needInput: needs[0], needWeight: needs[1], needBias: needs[2])
            return [fc1.input, fc1.weight, fc1.bias, fc2.weight, fc2.bias]
        }
    }
}

/// The MLP's backward a block of rows at a time per thread (the blocks of its forward): dY = g·W2,
/// y = gelu(h) and dH = dY·gelu′(h) in one pass, dx = dH·W1 for the block's rows, and each thread's
/// partial dW2 += gᵀ·y, dW1 += dHᵀ·x, db1, db2, added up in thread order at the end. Whole products
/// write dY (rows × hidden) and y to memory and read them back four times; here both stay in cache.
/// `needs`: whether x, W1, b1, W2, b2 want gradients. Returns the gradients in that order.
private func mlpBackwardInRowBlocks(_ g: Tensor, x: Tensor, h: Tensor, w1: Tensor, w2: Tensor, blockRows block: Int, needs: [Bool],
                                    approximate: GELUApproximation) -> [Tensor?] {
    let inF = w1.shape[1], hidden = w1.shape[0], outF = w2.shape[0], rows = h.count / hidden
    let blocks = (rows + block - 1) / block, workers = Swift.min(Parallel.threads, blocks)
    let dx = needs[0] ? Tensor(uninitializedShape: x.shape) : nil
    // per thread: y and dH of a block, then the partial dW1, db1, dW2, db2 (zeroed)
    let w1n = hidden * inF, w2n = outF * hidden, partials = w1n + hidden + w2n + outF
    let per = 2 * block * hidden + partials
    let scratch = Tensor(uninitializedShape: [workers, per])
    let pg = g.storage.pointer.sendable, px = x.storage.pointer.sendable, ph = h.storage.pointer.sendable
    let pw1 = w1.storage.pointer.sendable, pw2 = w2.storage.pointer.sendable, ps = scratch.storage.pointer.sendable
    let pdx = dx?.storage.pointer.sendable
    BLASRuntime.withSingleThreadedBLAS {
        Parallel.forEach(workers) { wk in
            let y = ps + wk * per, dh = y + block * hidden
            let dW1 = dh + block * hidden, db1 = dW1 + w1n, dW2 = db1 + hidden, db2 = dW2 + w2n
            dW1.update(repeating: 0, count: partials)
            for bi in (blocks * wk / workers)..<(blocks * (wk + 1) / workers) {
                let r0 = bi * block, nr = Swift.min(block, rows - r0)
                let gb = UnsafePointer(pg + r0 * outF), xb = UnsafePointer(px + r0 * inF)
                sgemm(transA: false, transB: false, m: nr, n: hidden, k: outF, a: gb, lda: outF, b: UnsafePointer(pw2.base), ldb: hidden,
                      c: dh, ldc: hidden)
                approximate.forwardBackward(UnsafePointer(ph + r0 * hidden), UnsafePointer(dh), y, dh, nr * hidden)
                if needs[3] {
                    sgemm(transA: true, transB: false, m: outF, n: hidden, k: nr, a: gb, lda: outF, b: UnsafePointer(y), ldb: hidden,
                          beta: 1, c: dW2, ldc: hidden)
                }
                if needs[4] { accumulateRows(gb, rows: nr, outF, into: db2) }
                if needs[1] {
                    sgemm(transA: true, transB: false, m: hidden, n: inF, k: nr, a: UnsafePointer(dh), lda: hidden, b: xb, ldb: inF,
                          beta: 1, c: dW1, ldc: inF)
                }
                if needs[2] { accumulateRows(UnsafePointer(dh), rows: nr, hidden, into: db1) }
                if let pdx {
                    sgemm(transA: false, transB: false, m: nr, n: inF, k: hidden, a: UnsafePointer(dh), lda: hidden,
                          b: UnsafePointer(pw1.base), ldb: inF, c: pdx + r0 * inF, ldc: inF)
                }
            }
        }
    }
    /// The threads' partials at `offset` (`count` floats), added in thread order.
    func total(_ offset: Int, _ count: Int, _ shape: [Int]) -> Tensor {
        sumOfPartials(ps + 2 * block * hidden + offset, copies: workers, stride: per, count: count, shape: shape)
    }
    let grads: [Tensor?] = [dx, needs[1] ? total(0, w1n, [hidden, inF]) : nil, needs[2] ? total(w1n, hidden, [hidden]) : nil,
                            needs[3] ? total(w1n + hidden, w2n, [outF, hidden]) : nil,
                            needs[4] ? total(w1n + hidden + w2n, outF, [outF]) : nil]
    withExtendedLifetime((g, x, h, w1, w2, scratch)) {}
    return grads
}

/// Sizes of the MLP's row blocks (`Tensor.mlpInRowBlocks`, `mlpBackwardInRowBlocks`).
enum MlpRowBlocks {
    /// Floats of one block's hidden map: 1 MB, which stays in L2 or L3 between the two products.
    nonisolated(unsafe) static var hiddenFloats = 1 << 18
    /// Fewest rows per block: each block packs both weight matrices again, which costs about
    /// 16 / rows of the products' time on AVX2.
    nonisolated(unsafe) static var minimumRows = 256

    /// Rows per block, or nil where whole products are better: fewer than two blocks per thread, or
    /// a hidden width so large (ViT-B's 3,072) that a block of `minimumRows` would spill the caches.
    /// The block count is a multiple of the thread count, so the threads get equal work.
    static func rows(rows: Int, hidden: Int) -> Int? {
        let target = Swift.max(minimumRows, hiddenFloats / Swift.max(hidden, 1)), threads = Parallel.threads
        guard OpTrace.current == nil, hidden * minimumRows <= 2 * hiddenFloats, rows >= 2 * target * threads else { return nil }
        let blocks = ((rows + target - 1) / target + threads - 1) / threads * threads
        return (rows + blocks - 1) / blocks
    }
}

extension Tensor {
    /// fc2(gelu(fc1(x))) a block of rows at a time per thread: the block's hidden map is biased,
    /// multiplied, put through GELU and multiplied again while it is in cache, where whole products
    /// write the `rows × hidden` map to memory and read it back three times (PiT-Ti's first stage:
    /// 23,360 rows × 256; PVT-Tiny's: 100,352 rows × 512, 205 MB). With `keeping` (training), fc1's
    /// output goes there for backward and GELU writes the block's scratch; without, GELU runs in
    /// place. The same products and GELU kernel; OpenBLAS may take other kernels for a block than for
    /// the whole product, so results agree with whole products up to rounding.
    static func mlpInRowBlocks(_ x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, blockRows block: Int,
                               approximate: GELUApproximation, keeping kept: Tensor? = nil) -> Tensor {
        let inF = w1.shape[1], hidden = w1.shape[0], outF = w2.shape[0], rows = x.count / inF
        precondition(x.shape.last == inF && b1.shape == [hidden] && b2.shape == [outF],
                     "mlp: input \(x.shape), fc1 \(w1.shape) + \(b1.shape), fc2 \(w2.shape) + \(b2.shape) do not fit")
        let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outF])
        let blocks = (rows + block - 1) / block, workers = Swift.min(Parallel.threads, blocks)
        let scratch = Tensor(uninitializedShape: [workers, block * hidden])
        let px = x.storage.pointer.sendable, po = out.storage.pointer.sendable, ps = scratch.storage.pointer.sendable
        let pk = kept?.storage.pointer.sendable
        let pw1 = w1.storage.pointer.sendable, pb1 = b1.storage.pointer.sendable
        let pw2 = w2.storage.pointer.sendable, pb2 = b2.storage.pointer.sendable
        BLASRuntime.withSingleThreadedBLAS {
            Parallel.forEach(workers) { wk in
                let y = ps + wk * block * hidden
                for bi in (blocks * wk / workers)..<(blocks * (wk + 1) / workers) {
                    let r0 = bi * block, nr = Swift.min(block, rows - r0), o = po + r0 * outF
                    let h = pk.map { $0 + r0 * hidden } ?? y
                    fillRows(h, rows: nr, stride: hidden, with: UnsafePointer(pb1.base), hidden)
                    sgemm(transA: false, transB: true, m: nr, n: hidden, k: inF, a: UnsafePointer(px + r0 * inF), lda: inF,
                          b: UnsafePointer(pw1.base), ldb: inF, beta: 1, c: h, ldc: hidden)
                    approximate.forward(UnsafePointer(h), y, nr * hidden)
                    fillRows(o, rows: nr, stride: outF, with: UnsafePointer(pb2.base), outF)
                    sgemm(transA: false, transB: true, m: nr, n: outF, k: hidden, a: UnsafePointer(y), lda: hidden,
                          b: UnsafePointer(pw2.base), ldb: hidden, beta: 1, c: o, ldc: outF)
                }
            }
        }
        withExtendedLifetime((x, w1, b1, w2, b2, scratch, kept)) {}
        return out
    }
}
