import Foundation

// Convolutions whose output planes are small (Visformer's 14×14 and 7×7 stages, its 4×4 and 2×2 maps
// at 32 px, PVT's spatial reductions, every patch embedding): one GEMM per group over the whole batch
// instead of one per sample and group. A per-sample GEMM there has only OH·OW columns (4 to 196), so
// OpenBLAS runs its small-matrix kernels far below the sgemm peak; laid out as [rows, batch · OH·OW]
// the same product is one large GEMM. The price is two copies (the batch-major columns in, the
// outputs back to NCHW), each one pass over a small activation.

extension Conv2dGeometry {
    /// Whether conv2d takes the batched-plane path (`Conv2dOptions.batchedPlanes`): planes of at most
    /// `batchedPlaneMaxPositions` outputs, a batch of two or more, not depthwise and not the direct
    /// kernel, and the batch's columns within `batchedPlaneMaxFloats`.
    func usesBatchedPlanes(batch: Int) -> Bool {
        let p = outH * outW
        return Conv2dOptions.batchedPlanes && batch >= 2 && p <= Conv2dOptions.batchedPlaneMaxPositions
            && !isDepthwise && !usesDirectKernel && groups * colRows * batch * p <= Conv2dOptions.batchedPlaneMaxFloats
    }
}

/// One core's share of the samples and its `colRows × P` staging buffer for one group's im2col
/// (none for pointwise convs), taken from the buffer pool once per call.
private struct BatchedPlaneScratch {
    let batch: Int, chunks: Int, count: Int
    let buffer: Tensor?

    init(_ geo: Conv2dGeometry, batch: Int) {
        self.batch = batch
        chunks = Swift.max(1, Swift.min(Parallel.threads, batch))
        count = geo.colRows * geo.outH * geo.outW
        buffer = geo.isPointwise ? nil : Tensor(uninitializedShape: [chunks, count])
    }

    /// `body(samples, staging)` on every core.
    func run(_ body: (Range<Int>, UnsafeMutablePointer<Float>?) -> Void) {
        let pb = buffer?.storage.pointer.sendable
        Parallel.forEach(chunks) { ch in body((batch * ch / chunks)..<(batch * (ch + 1) / chunks), pb.map { $0 + ch * count }) }
        withExtendedLifetime(buffer) {}
    }
}

/// cols[g, r, b·P + q] for sample b: the im2col rows of every group, batch-major within each row, so
/// that group g's GEMM reads `colRows × (batch·P)` with leading dimension batch·P.
private func batchedIm2col(_ x: UnsafePointer<Float>, _ geo: Conv2dGeometry, batch: Int, _ cols: UnsafeMutablePointer<Float>) {
    let p = geo.outH * geo.outW, rows = geo.colRows, ld = batch * p
    let inPlane = geo.inChannels * geo.inH * geo.inW, groupIn = geo.cg * geo.inH * geo.inW
    let px = UnsafeMutablePointer(mutating: x).sendable, pc = cols.sendable
    let scratch = BatchedPlaneScratch(geo, batch: batch)
    scratch.run { samples, tmp in
        for b in samples {
            for gi in 0..<geo.groups {
                let xin = UnsafePointer(px + b * inPlane + gi * groupIn)
                var src = xin
                if let tmp { im2colRows(xin, geo, rows: 0..<rows, tmp); src = UnsafePointer(tmp) }
                let dst = pc + gi * rows * ld + b * p
                for r in 0..<rows { (dst + r * ld).update(from: src + r * p, count: p) }
            }
        }
    }
}

/// The adjoint of `batchedIm2col`: adds dcols back into dx, sample by sample.
private func batchedCol2im(_ dcols: UnsafePointer<Float>, _ geo: Conv2dGeometry, batch: Int, _ dx: UnsafeMutablePointer<Float>) {
    let p = geo.outH * geo.outW, rows = geo.colRows, ld = batch * p
    let inPlane = geo.inChannels * geo.inH * geo.inW, groupIn = geo.cg * geo.inH * geo.inW
    let pc = UnsafeMutablePointer(mutating: dcols).sendable, pd = dx.sendable
    let scratch = BatchedPlaneScratch(geo, batch: batch)
    scratch.run { samples, tmp in
        for b in samples {
            for gi in 0..<geo.groups {
                let src = pc + gi * rows * ld + b * p
                let dxin = pd + b * inPlane + gi * groupIn
                if let tmp {
                    for r in 0..<rows { (tmp + r * p).update(from: src + r * ld, count: p) }
                    col2imChannels(UnsafePointer(tmp), geo, channels: 0..<geo.cg, dxin)
                } else {
                    for r in 0..<rows { (dxin + r * p).update(from: src + r * ld, count: p) }  // 1×1: dx is dcols
                }
            }
        }
    }
}

extension Tensor {
    /// conv2d through one GEMM per group over the whole batch (`Conv2dGeometry.usesBatchedPlanes`).
    /// Same contract and numerics as `conv2d` (sums in a different order).
    static func conv2dBatchedPlanes(_ x: Tensor, weight: Tensor, bias: Tensor?, geo: Conv2dGeometry,
                                    attributes: @autoclosure () -> OpAttributes) -> Tensor {
        let n = x.shape[0], p = geo.outH * geo.outW, o = geo.outChannels, og = geo.og, rows = geo.colRows, ld = n * p
        let out = Tensor(uninitializedShape: [n, o, geo.outH, geo.outW])
        let cols = Tensor(uninitializedShape: [geo.groups * rows * ld])
        let yb = Tensor(uninitializedShape: [o * ld])  // [O, batch·P]
        batchedIm2col(x.storage.pointer, geo, batch: n, cols.storage.pointer)
        for gi in 0..<geo.groups {
            sgemm(transA: false, transB: false, m: og, n: ld, k: rows, a: weight.storage.pointer + gi * og * rows, lda: rows,
                  b: cols.storage.pointer + gi * rows * ld, ldb: ld, c: yb.storage.pointer + gi * og * ld, ldc: ld)
        }
        // [O, batch, P] → [batch, O, P], adding the bias on the way
        let pyb = yb.storage.pointer.sendable, po = out.storage.pointer.sendable, pb = bias?.storage.pointer.sendable
        Parallel.forRange(n * o, grain: Swift.max(1, 16_384 / p)) { r in
            for bo in r {
                let b = bo / o, c = bo % o
                let src = pyb + c * ld + b * p, dst = po + bo * p
                if let pb { let v = pb[c]; for q in 0..<p { dst[q] = src[q] + v } } else { dst.update(from: src, count: p) }
            }
        }
        withExtendedLifetime((x, weight, bias, cols, yb)) {}

        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        let xd = x.node != nil, wd = weight.node != nil
        let x0 = x.detached(), w0 = weight.detached()
        return record("conv2d", out, inputs: inputs, attributes: attributes()) { g in
            // dY as [O, batch·P]
            let gb = Tensor(uninitializedShape: [o * ld])
            let pg = g.storage.pointer.sendable, pgb = gb.storage.pointer.sendable
            Parallel.forRange(n * o, grain: Swift.max(1, 16_384 / p)) { r in
                for bo in r { let b = bo / o, c = bo % o; (pgb + c * ld + b * p).update(from: pg + bo * p, count: p) }
            }
            var dw: Tensor? = nil, dx: Tensor? = nil
            if wd {
                // dW_g = dY_g · cols_gᵀ (the columns are rebuilt rather than kept from the forward pass)
                let cols = Tensor(uninitializedShape: [geo.groups * rows * ld])
                batchedIm2col(x0.storage.pointer, geo, batch: n, cols.storage.pointer)
                let w = Tensor(uninitializedShape: w0.shape)
                for gi in 0..<geo.groups {
                    sgemm(transA: false, transB: true, m: og, n: rows, k: ld, a: gb.storage.pointer + gi * og * ld, lda: ld,
                          b: cols.storage.pointer + gi * rows * ld, ldb: ld, c: w.storage.pointer + gi * og * rows, ldc: rows)
                }
                withExtendedLifetime(cols) {}
                dw = w
            }
            if xd {
                // dcols_g = W_gᵀ · dY_g, scattered back (col2im adds, so dx starts at zero)
                let dcols = Tensor(uninitializedShape: [geo.groups * rows * ld])
                for gi in 0..<geo.groups {
                    sgemm(transA: true, transB: false, m: rows, n: ld, k: og, a: w0.storage.pointer + gi * og * rows, lda: rows,
                          b: gb.storage.pointer + gi * og * ld, ldb: ld, c: dcols.storage.pointer + gi * rows * ld, ldc: ld)
                }
                let d = geo.isPointwise ? Tensor(uninitializedShape: x0.shape) : Tensor.zeros(x0.shape)
                batchedCol2im(dcols.storage.pointer, geo, batch: n, d.storage.pointer)
                withExtendedLifetime(dcols) {}
                dx = d
            }
            withExtendedLifetime((gb, g, x0, w0)) {}
            var grads: [Tensor?] = [dx, dw]
            if bias != nil { grads.append(g.sum(axes: [0, 2, 3])) }
            return grads
        }
    }
}
