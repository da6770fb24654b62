import Foundation

// 2-D convolution, NCHW, weights [O, C/groups, kh, kw]. General case: im2col per sample and group,
// then one GEMM; 1×1 stride-1 convolutions skip im2col; convolutions with one input channel per
// group (depthwise, with any channel multiplier) run a direct kernel (DirectConv.swift) forward and
// depthwiseBackward; so do stride-1 grouped convolutions forward and for the input gradient, and the
// strided convolutions of images (`Conv2dGeometry.usesDirectKernel`).

public struct Conv2dGeometry: Sendable, Equatable {
    public var inChannels: Int, outChannels: Int, kernelH: Int, kernelW: Int
    public var strideH: Int, strideW: Int, padH: Int, padW: Int, groups: Int
    public var inH: Int, inW: Int
    public var outH: Int { (inH + 2 * padH - kernelH) / strideH + 1 }
    public var outW: Int { (inW + 2 * padW - kernelW) / strideW + 1 }
    var cg: Int { inChannels / groups }
    var og: Int { outChannels / groups }
    var colRows: Int { cg * kernelH * kernelW }
    var isPointwise: Bool { kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0 }
    var isDepthwise: Bool { cg == 1 && groups > 1 }
}

/// Output columns `ox` whose input column `ox·s − p + j` lies inside `0..<iw`, as a half-open range.
@inline(__always)
func im2colValidColumns(_ g: Conv2dGeometry, j: Int) -> (lo: Int, hi: Int) {
    let ow = g.outW, s = g.strideW, off = j - g.padW  // xx = ox·s + off
    let lo = off >= 0 ? 0 : (-off + s - 1) / s
    let last = g.inW - 1 - off  // ox·s ≤ last
    let hi = last < 0 ? 0 : Swift.min(ow, last / s + 1)
    return (lo, Swift.max(lo, hi))
}

/// im2col rows `rows` of one group (serial): cols[(c·kh + i)·kw + j, oy·OW + ox] = x[c, oy·s − p + i, ox·s − p + j]
/// (zero outside). The valid column range of each kernel tap is computed once, so the interior is a
/// branch-free copy (a memcpy for stride 1).
@inline(__always)
func im2colRows(_ x: UnsafePointer<Float>, _ g: Conv2dGeometry, rows: Range<Int>, _ cols: UnsafeMutablePointer<Float>) {
    let oh = g.outH, ow = g.outW, ih = g.inH, iw = g.inW, sw = g.strideW
    for row in rows {
        let c = row / (g.kernelH * g.kernelW)
        let i = (row / g.kernelW) % g.kernelH
        let j = row % g.kernelW
        let (lo, hi) = im2colValidColumns(g, j: j)
        let off = j - g.padW
        let dst = cols + row * oh * ow
        let src = x + c * ih * iw
        for oy in 0..<oh {
            let y = oy * g.strideH - g.padH + i
            let d = dst + oy * ow
            if y < 0 || y >= ih || lo >= hi { d.update(repeating: 0, count: ow); continue }
            if lo > 0 { d.update(repeating: 0, count: lo) }
            let s = src + y * iw + off
            if sw == 1 {
                (d + lo).update(from: s + lo, count: hi - lo)
            } else {
                for ox in lo..<hi { d[ox] = s[ox * sw] }
            }
            if hi < ow { (d + hi).update(repeating: 0, count: ow - hi) }
        }
    }
}

/// cols[(c·kh + i)·kw + j, oy·OW + ox] = x[c, oy·s − p + i, ox·s − p + j] (zero outside), split across cores.
func im2col(_ x: UnsafePointer<Float>, _ g: Conv2dGeometry, channels: Int, _ cols: UnsafeMutablePointer<Float>) {
    let px = UnsafeMutablePointer(mutating: x).sendable, pc = cols.sendable
    let rows = channels * g.kernelH * g.kernelW
    Parallel.forRange(rows, grain: Swift.max(1, 16_384 / Swift.max(g.outH * g.outW, 1))) { r in
        im2colRows(UnsafePointer(px.base), g, rows: r, pc.base)
    }
}

/// Adds cols rows of `channels` into dx (the adjoint of im2col), serial.
@inline(__always)
func col2imChannels(_ cols: UnsafePointer<Float>, _ g: Conv2dGeometry, channels: Range<Int>, _ dx: UnsafeMutablePointer<Float>) {
    let oh = g.outH, ow = g.outW, ih = g.inH, iw = g.inW, sw = g.strideW
    for c in channels {
        let plane = dx + c * ih * iw
        for i in 0..<g.kernelH {
            for j in 0..<g.kernelW {
                let row = (c * g.kernelH + i) * g.kernelW + j
                let (lo, hi) = im2colValidColumns(g, j: j)
                if lo >= hi { continue }
                let off = j - g.padW
                let src = cols + row * oh * ow
                for oy in 0..<oh {
                    let y = oy * g.strideH - g.padH + i
                    if y < 0 || y >= ih { continue }
                    let d = plane + y * iw + off, s = src + oy * ow
                    if sw == 1 {
                        for ox in lo..<hi { d[ox] += s[ox] }
                    } else {
                        for ox in lo..<hi { d[ox * sw] += s[ox] }
                    }
                }
            }
        }
    }
}

/// Adds cols back into dx (the adjoint of im2col).
func col2im(_ cols: UnsafePointer<Float>, _ g: Conv2dGeometry, channels: Int, _ dx: UnsafeMutablePointer<Float>) {
    let pc = UnsafeMutablePointer(mutating: cols).sendable, pd = dx.sendable
    // parallel over channels: each channel's rows write only that channel's plane
    Parallel.forRange(channels, grain: 1) { r in col2imChannels(UnsafePointer(pc.base), g, channels: r, pd.base) }
}

/// Sets rows `0..<rows` of `count` floats, `stride` apart, to `bias[row]`, or (`adding`) adds it to
/// them: a product's bias before its GEMM accumulates onto it (conv2d and the fused blocks).
@inline(__always)
func writeRowBias(_ dst: UnsafeMutablePointer<Float>, rows: Int, count: Int, stride: Int, bias: UnsafePointer<Float>, adding: Bool) {
    for r in 0..<rows {
        let v = bias[r], row = dst + r * stride
        if adding { for k in 0..<count { row[k] += v } } else { row.update(repeating: v, count: count) }
    }
}

/// Whether conv2d splits its (sample, group) products across cores (single-threaded im2col and GEMMs
/// per sample and group) rather than threading each GEMM: per-sample GEMMs are small (a grouped conv's
/// are only O/groups rows), so one run of them per core beats a threaded GEMM each. Needs at least
/// one (sample, group) product per core from whole samples or, at a batch smaller than the core count,
/// from the groups (Visformer's 8-group 3×3 at batch 1: one hand-off instead of 16).
@inline(__always)
func convSplitsWork(batch: Int, groups: Int) -> Bool {
    Conv2dOptions.sampleSplit && Parallel.threads > 1 && (batch >= Parallel.threads || batch * groups >= Parallel.threads)
}

/// Switches for the convolution strategy (tests compare the two paths).
public enum Conv2dOptions {
    nonisolated(unsafe) public static var sampleSplit = true
    /// The direct kernel where `Conv2dGeometry.usesDirectKernel` says so (else im2col + GEMM, or the scalar depthwise loops).
    nonisolated(unsafe) public static var directKernel = true
    /// The weight gradient of stride-1 grouped convolutions through the direct kernel too (else im2col + GEMM).
    nonisolated(unsafe) public static var directWeightGradient = true
    /// Small output planes through one GEMM per group over the batch (BatchedPlaneConv.swift).
    nonisolated(unsafe) public static var batchedPlanes = true
    /// Largest output plane (OH·OW) taken by the batched-plane path: per-sample GEMMs with up to 14×14
    /// columns run OpenBLAS's small-matrix kernels.
    nonisolated(unsafe) public static var batchedPlaneMaxPositions = 256
    /// Largest column buffer (floats) of the batched-plane path (64 M floats = 256 MB).
    nonisolated(unsafe) public static var batchedPlaneMaxFloats = 64 << 20
}

/// How conv2d spreads the batch's (sample, group) products over the cores: `chunks` contiguous runs
/// of the products in sample-major order, one per core with single-threaded im2col, col2im and GEMMs
/// (when `convSplitsWork`), or a single run whose im2col, col2im and GEMMs each use every core.
/// Forward and backward are written once against it.
struct ConvSampleSchedule {
    let batch: Int, groups: Int, chunks: Int
    var splits: Bool { chunks > 1 }

    init(batch: Int, groups: Int) {
        self.batch = batch; self.groups = groups
        chunks = convSplitsWork(batch: batch, groups: groups) ? Swift.min(Parallel.threads, batch * groups) : 1
    }

    /// The (sample, group) products of chunk `ch`, as `sample · groups + group`.
    func products(_ ch: Int) -> Range<Int> {
        let total = batch * groups
        return (total * ch / chunks)..<(total * (ch + 1) / chunks)
    }

    /// Runs `body(chunk)` for every chunk: concurrently under single-threaded BLAS when split, inline
    /// (with threaded kernels inside) otherwise.
    func run(_ body: (Int) -> Void) {
        if splits { BLASRuntime.withSingleThreadedBLAS { Parallel.forEach(chunks, body) } } else { body(0) }
    }

    /// im2col of one group's `cg` channels.
    func im2colGroup(_ x: UnsafePointer<Float>, _ g: Conv2dGeometry, _ cols: UnsafeMutablePointer<Float>) {
        if splits { im2colRows(x, g, rows: 0..<g.colRows, cols) } else { im2col(x, g, channels: g.cg, cols) }
    }

    /// col2im of one group's `cg` channels (adds into dx).
    func col2imGroup(_ cols: UnsafePointer<Float>, _ g: Conv2dGeometry, _ dx: UnsafeMutablePointer<Float>) {
        if splits { col2imChannels(cols, g, channels: 0..<g.cg, dx) } else { col2im(cols, g, channels: g.cg, dx) }
    }
}

extension Tensor {
    /// 2-D convolution. `x: [N, C, H, W]`, `weight: [O, C/groups, kh, kw]`, `bias: [O]`; with a
    /// `residual` of the output's shape, `residual + conv2d(x)`.
    ///
    /// On the GEMM path (not the direct kernel, not depthwise, not batched planes) the bias and the
    /// residual are written into the output before the GEMMs, which then accumulate onto them (beta
    /// 1): OpenBLAS clears C before a beta-0 product anyway, so the bias pass and the residual add cost
    /// nothing more. Elsewhere, and under an op tracer, the residual is a separate add.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: (Int, Int) = (1, 1),
                              padding: (Int, Int) = (0, 0), groups: Int = 1, adding residual: Tensor? = nil) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4, "conv2d: input \(x.shape), weight \(weight.shape) must be rank 4")
        let n = x.shape[0]
        let geo = Conv2dGeometry(inChannels: x.shape[1], outChannels: weight.shape[0], kernelH: weight.shape[2],
                                 kernelW: weight.shape[3], strideH: stride.0, strideW: stride.1, padH: padding.0,
                                 padW: padding.1, groups: groups, inH: x.shape[2], inW: x.shape[3])
        precondition(geo.inChannels % groups == 0 && geo.outChannels % groups == 0 && weight.shape[1] == geo.cg,
                     "conv2d: weight \(weight.shape) does not fit \(geo.inChannels) input channels in \(groups) groups")
        precondition(geo.outH > 0 && geo.outW > 0, "conv2d: kernel larger than padded input \(x.shape)")
        if let bias { precondition(bias.shape == [geo.outChannels], "conv2d: bias \(bias.shape) for \(geo.outChannels) outputs") }
        // built only when an op tracer asks (record and OpTrace take it as an autoclosure)
        func attributes() -> OpAttributes { ["stride": .ints([stride.0, stride.1]), "padding": .ints([padding.0, padding.1]), "groups": .int(groups)] }
        let gemmPath = !geo.usesBatchedPlanes(batch: n) && !geo.usesDirectKernel && !geo.isDepthwise
        if let residual {
            precondition(residual.shape == [n, geo.outChannels, geo.outH, geo.outW], "conv2d: residual \(residual.shape) for output \([n, geo.outChannels, geo.outH, geo.outW])")
            if !gemmPath || OpTrace.current != nil {
                return residual + conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, groups: groups)
            }
        }
        if geo.usesBatchedPlanes(batch: n) {
            return conv2dBatchedPlanes(x, weight: weight, bias: bias, geo: geo, attributes: attributes())
        }
        let oh = geo.outH, ow = geo.outW, p = oh * ow
        let out = Tensor(uninitializedShape: [n, geo.outChannels, oh, ow])
        let px = x.storage.pointer, pw = weight.storage.pointer, po = out.storage.pointer
        let inPlane = geo.inChannels * geo.inH * geo.inW, outPlane = geo.outChannels * p
        if geo.usesDirectKernel {
            directConvForward(px, pw, po, geo, batch: n)
        } else if geo.isDepthwise {
            depthwiseForward(px, pw, po, geo, batch: n)
        } else {
            let sched = ConvSampleSchedule(batch: n, groups: geo.groups)
            let cols = geo.isPointwise ? nil : Tensor(uninitializedShape: [sched.chunks, geo.colRows * p])
            let pxs = px.sendable, pws = pw.sendable, pos = po.sendable, pcs = cols?.storage.pointer.sendable
            let pbs = bias?.storage.pointer.sendable, prs = residual?.storage.pointer.sendable
            /// The residual and the bias of output rows `rows` (sample-major channel rows), before the products land on them.
            func prefill(_ rows: Range<Int>) {
                for bo in rows {
                    let row = pos + bo * p
                    if let prs { row.update(from: prs + bo * p, count: p) }
                    if let pbs { writeRowBias(row, rows: 1, count: p, stride: p, bias: pbs + bo % geo.outChannels, adding: prs != nil) }
                }
            }
            // split: each core fills its own products' rows just before their GEMMs (still in cache);
            // else every core fills a share of the whole output first
            if !sched.splits && (pbs != nil || prs != nil) { Parallel.forRange(n * geo.outChannels, grain: Swift.max(1, 16_384 / p)) { prefill($0) } }
            sched.run { ch in
                let cp = pcs.map { $0 + ch * geo.colRows * p }
                for u in sched.products(ch) {
                    let b = u / geo.groups, gi = u % geo.groups
                    let xin = UnsafePointer(pxs + b * inPlane + gi * geo.cg * geo.inH * geo.inW)
                    var colPtr = xin
                    if let cp { sched.im2colGroup(xin, geo, cp); colPtr = UnsafePointer(cp) }
                    let c = pos + b * outPlane + gi * geo.og * p
                    if sched.splits { prefill((b * geo.outChannels + gi * geo.og)..<(b * geo.outChannels + (gi + 1) * geo.og)) }
                    sgemm(transA: false, transB: false, m: geo.og, n: p, k: geo.colRows,
                          a: pws + gi * geo.og * geo.colRows, lda: geo.colRows, b: colPtr, ldb: p,
                          beta: pbs != nil || prs != nil ? 1 : 0, c: c, ldc: p)
                }
            }
            withExtendedLifetime((cols, residual)) {}  // the GEMMs above read them through pointers
        }
        if let bias, !gemmPath {
            let pb = bias.storage.pointer.sendable, pos = po.sendable
            Parallel.forRange(n * geo.outChannels, grain: Swift.max(1, 32_768 / p)) { r in
                for bc in r { writeRowBias(pos + bc * p, rows: 1, count: p, stride: p, bias: pb + bc % geo.outChannels, adding: true) }
            }
        }
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        if let residual { inputs.append(residual) }
        let xd = x.node != nil, wd = weight.node != nil
        let x0 = x.detached(), w0 = weight.detached()
        return record(residual == nil ? "conv2d" : "conv2d_residual", out, inputs: inputs, attributes: attributes()) { g in
            let pg = g.storage.pointer
            let direct = geo.usesDirectInputGradient
            // the direct kernel and a pointwise conv's GEMMs write every element of dx once; col2im adds
            let dx = xd ? (direct || geo.isPointwise ? Tensor(uninitializedShape: x0.shape) : Tensor.zeros(x0.shape)) : nil
            let dw = wd ? Tensor.zeros(w0.shape) : nil
            if geo.isDepthwise && geo.usesDirectKernel {
                directDepthwiseBackward(x0.storage.pointer, w0.storage.pointer, pg, dx?.storage.pointer, dw?.storage.pointer, geo, batch: n)
            } else if geo.isDepthwise {
                depthwiseBackward(x0.storage.pointer, w0.storage.pointer, pg, dx?.storage.pointer, dw?.storage.pointer, geo, batch: n)
            } else {
                // the direct weight gradient first; then whatever is left through im2col + GEMM
                let directW = geo.usesDirectWeightGradient
                if directW, let dw { directConvWeightGradient(x0.storage.pointer, pg, dw.storage.pointer, geo, batch: n) }
                if direct, let dx { directConvInputGradient(pg, w0.storage.pointer, dx.storage.pointer, geo, batch: n) }
                withExtendedLifetime((x0, w0, g)) {}
                if (wd && !directW) || (xd && !direct) {
                    let sched = ConvSampleSchedule(batch: n, groups: geo.groups)
                    let cols = geo.isPointwise ? nil : Tensor(uninitializedShape: [sched.chunks, geo.colRows * p])
                    let wsize = geo.outChannels * geo.colRows
                    // one dW per chunk (dW itself for a single chunk), summed after
                    let partial = wd && !directW ? (sched.splits ? Tensor.zeros([sched.chunks, wsize]) : dw) : nil
                    let pxs = x0.storage.pointer.sendable, pws = w0.storage.pointer.sendable, pgs = pg.sendable
                    let pcs = cols?.storage.pointer.sendable, pps = partial?.storage.pointer.sendable
                    let pdx = dx?.storage.pointer.sendable
                    sched.run { ch in
                        let cp = pcs.map { $0 + ch * geo.colRows * p }
                        for u in sched.products(ch) {
                            let b = u / geo.groups, gi = u % geo.groups
                            let xin = UnsafePointer(pxs + b * inPlane + gi * geo.cg * geo.inH * geo.inW)
                            let gout = pgs + b * outPlane + gi * geo.og * p
                            let wg = pws + gi * geo.og * geo.colRows
                            if let pps {
                                // dW_g += dY_g · colsᵀ
                                var colPtr = xin
                                if let cp { sched.im2colGroup(xin, geo, cp); colPtr = UnsafePointer(cp) }
                                sgemm(transA: false, transB: true, m: geo.og, n: geo.colRows, k: p, a: gout, lda: p,
                                      b: colPtr, ldb: p, beta: 1, c: pps + ch * wsize + gi * geo.og * geo.colRows, ldc: geo.colRows)
                            }
                            if let pdx, !direct {
                                let dxin = pdx + b * inPlane + gi * geo.cg * geo.inH * geo.inW
                                if let cp {
                                    // dcols = W_gᵀ · dY_g, then scatter back
                                    sgemm(transA: true, transB: false, m: geo.colRows, n: p, k: geo.og, a: wg, lda: geo.colRows,
                                          b: gout, ldb: p, c: cp, ldc: p)
                                    sched.col2imGroup(UnsafePointer(cp), geo, dxin)
                                } else {
                                    sgemm(transA: true, transB: false, m: geo.colRows, n: p, k: geo.og, a: wg, lda: geo.colRows,
                                          b: gout, ldb: p, c: dxin, ldc: p)
                                }
                            }
                        }
                    }
                    withExtendedLifetime((cols, x0, w0, g)) {}  // read through pointers by the GEMMs and col2im
                    if sched.splits, !directW, let partial, let dw {
                        let pd = dw.storage.pointer, pp = partial.storage.pointer
                        for ch in 0..<sched.chunks { let src = pp + ch * wsize; for t in 0..<wsize { pd[t] += src[t] } }
                    }
                }
            }
            var grads: [Tensor?] = [dx, dw]
            if bias != nil { grads.append(g.sum(axes: [0, 2, 3])) }
            if residual != nil { grads.append(g) }
            return grads
        }
    }
}

/// Direct kernel for one input channel per group: output channel o reads input channel o / multiplier.
func depthwiseForward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                      _ g: Conv2dGeometry, batch: Int) {
    let oh = g.outH, ow = g.outW, ih = g.inH, iw = g.inW, kh = g.kernelH, kw = g.kernelW
    let mult = g.og
    MACCounter.add(batch * g.outChannels * oh * ow * kh * kw)
    let px = UnsafeMutablePointer(mutating: x).sendable, pw = UnsafeMutablePointer(mutating: w).sendable, po = out.sendable
    Parallel.forRange(batch * g.outChannels, grain: Swift.max(1, 4096 / Swift.max(oh * ow * kh * kw / 4, 1))) { r in
        for bo in r {
            let b = bo / g.outChannels, o = bo % g.outChannels
            let src = px + (b * g.inChannels + o / mult) * ih * iw
            let wk = pw + o * kh * kw
            let dst = po + bo * oh * ow
            for oy in 0..<oh {
                for ox in 0..<ow {
                    var s: Float = 0
                    for i in 0..<kh {
                        let y = oy * g.strideH - g.padH + i
                        if y < 0 || y >= ih { continue }
                        for j in 0..<kw {
                            let xx = ox * g.strideW - g.padW + j
                            if xx >= 0 && xx < iw { s += src[y * iw + xx] * wk[i * kw + j] }
                        }
                    }
                    dst[oy * ow + ox] = s
                }
            }
        }
    }
}

func depthwiseBackward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gout: UnsafePointer<Float>,
                       _ dx: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>?, _ g: Conv2dGeometry, batch: Int) {
    let oh = g.outH, ow = g.outW, ih = g.inH, iw = g.inW, kh = g.kernelH, kw = g.kernelW
    let mult = g.og
    let px = UnsafeMutablePointer(mutating: x).sendable, pw = UnsafeMutablePointer(mutating: w).sendable
    let pg = UnsafeMutablePointer(mutating: gout).sendable
    let pdx = dx?.sendable, pdw = dw?.sendable
    // parallel over input channels: each owns its dx plane and its `mult` weight kernels
    Parallel.forRange(g.inChannels, grain: 1) { r in
        for c in r {
            for m in 0..<mult {
                let o = c * mult + m
                let wk = pw + o * kh * kw
                for b in 0..<batch {
                    let src = px + (b * g.inChannels + c) * ih * iw
                    let go = pg + (b * g.outChannels + o) * oh * ow
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            let gv = go[oy * ow + ox]
                            for i in 0..<kh {
                                let y = oy * g.strideH - g.padH + i
                                if y < 0 || y >= ih { continue }
                                for j in 0..<kw {
                                    let xx = ox * g.strideW - g.padW + j
                                    if xx < 0 || xx >= iw { continue }
                                    if let pdw { pdw[o * kh * kw + i * kw + j] += gv * src[y * iw + xx] }
                                    if let pdx { pdx[(b * g.inChannels + c) * ih * iw + y * iw + xx] += gv * wk[i * kw + j] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
