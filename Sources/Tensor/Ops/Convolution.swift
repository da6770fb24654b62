import Foundation

// 2-D convolution, NCHW, weights [O, C/groups, kh, kw]. General case: im2col per sample and group,
// then one GEMM; 1×1 stride-1 convolutions skip im2col; convolutions with one input channel per
// group (depthwise, with any channel multiplier) run a direct kernel.

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

/// cols[(c·kh + i)·kw + j, oy·OW + ox] = x[c, oy·s − p + i, ox·s − p + j] (zero outside).
func im2col(_ x: UnsafePointer<Float>, _ g: Conv2dGeometry, channels: Int, _ cols: UnsafeMutablePointer<Float>) {
    let oh = g.outH, ow = g.outW, ih = g.inH, iw = g.inW
    let px = UnsafeMutablePointer(mutating: x).sendable, pc = cols.sendable
    let rows = channels * g.kernelH * g.kernelW
    Parallel.forRange(rows, grain: Swift.max(1, 16_384 / Swift.max(oh * ow, 1))) { r in
        for row in r {
            let c = row / (g.kernelH * g.kernelW)
            let i = (row / g.kernelW) % g.kernelH
            let j = row % g.kernelW
            let dst = pc + row * oh * ow
            let src = px + c * ih * iw
            for oy in 0..<oh {
                let y = oy * g.strideH - g.padH + i
                let d = dst + oy * ow
                if y < 0 || y >= ih { for ox in 0..<ow { d[ox] = 0 }; continue }
                let s = src + y * iw
                if g.strideW == 1 {
                    for ox in 0..<ow { let xx = ox - g.padW + j; d[ox] = (xx >= 0 && xx < iw) ? s[xx] : 0 }
                } else {
                    for ox in 0..<ow { let xx = ox * g.strideW - g.padW + j; d[ox] = (xx >= 0 && xx < iw) ? s[xx] : 0 }
                }
            }
        }
    }
}

/// Adds cols back into dx (the adjoint of im2col).
func col2im(_ cols: UnsafePointer<Float>, _ g: Conv2dGeometry, channels: Int, _ dx: UnsafeMutablePointer<Float>) {
    let oh = g.outH, ow = g.outW, ih = g.inH, iw = g.inW
    let pc = UnsafeMutablePointer(mutating: cols).sendable, pd = dx.sendable
    // parallel over channels: each channel's rows write only that channel's plane
    Parallel.forRange(channels, grain: 1) { r in
        for c in r {
            for i in 0..<g.kernelH {
                for j in 0..<g.kernelW {
                    let row = (c * g.kernelH + i) * g.kernelW + j
                    let src = pc + row * oh * ow
                    let plane = pd + c * ih * iw
                    for oy in 0..<oh {
                        let y = oy * g.strideH - g.padH + i
                        if y < 0 || y >= ih { continue }
                        let d = plane + y * iw, s = src + oy * ow
                        for ox in 0..<ow {
                            let xx = ox * g.strideW - g.padW + j
                            if xx >= 0 && xx < iw { d[xx] += s[ox] }
                        }
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// 2-D convolution. `x: [N, C, H, W]`, `weight: [O, C/groups, kh, kw]`, `bias: [O]`.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: (Int, Int) = (1, 1),
                              padding: (Int, Int) = (0, 0), groups: Int = 1) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4, "conv2d: input \(x.shape), weight \(weight.shape) must be rank 4")
        let n = x.shape[0]
        let geo = Conv2dGeometry(inChannels: x.shape[1], outChannels: weight.shape[0], kernelH: weight.shape[2],
                                 kernelW: weight.shape[3], strideH: stride.0, strideW: stride.1, padH: padding.0,
                                 padW: padding.1, groups: groups, inH: x.shape[2], inW: x.shape[3])
        precondition(geo.inChannels % groups == 0 && geo.outChannels % groups == 0 && weight.shape[1] == geo.cg,
                     "conv2d: weight \(weight.shape) does not fit \(geo.inChannels) input channels in \(groups) groups")
        precondition(geo.outH > 0 && geo.outW > 0, "conv2d: kernel larger than padded input \(x.shape)")
        if let bias { precondition(bias.shape == [geo.outChannels], "conv2d: bias \(bias.shape) for \(geo.outChannels) outputs") }
        let oh = geo.outH, ow = geo.outW, p = oh * ow
        let out = Tensor(uninitializedShape: [n, geo.outChannels, oh, ow])
        let px = x.storage.pointer, pw = weight.storage.pointer, po = out.storage.pointer
        let inPlane = geo.inChannels * geo.inH * geo.inW, outPlane = geo.outChannels * p
        if geo.isDepthwise {
            depthwiseForward(px, pw, po, geo, batch: n)
        } else {
            let cols = geo.isPointwise ? nil : Tensor(uninitializedShape: [geo.groups * geo.colRows, p])
            for b in 0..<n {
                for gi in 0..<geo.groups {
                    let xin = px + b * inPlane + gi * geo.cg * geo.inH * geo.inW
                    let colPtr: UnsafePointer<Float>
                    if let cols {
                        let cp = cols.storage.pointer + gi * geo.colRows * p
                        im2col(xin, geo, channels: geo.cg, cp)
                        colPtr = UnsafePointer(cp)
                    } else {
                        colPtr = UnsafePointer(xin)
                    }
                    sgemm(transA: false, transB: false, m: geo.og, n: p, k: geo.colRows,
                          a: pw + gi * geo.og * geo.colRows, lda: geo.colRows, b: colPtr, ldb: p,
                          c: po + b * outPlane + gi * geo.og * p, ldc: p)
                }
            }
            withExtendedLifetime(cols) {}  // the GEMMs above read it through pointers
        }
        if let bias {
            let pb = bias.storage.pointer.sendable, pos = po.sendable
            Parallel.forRange(n * geo.outChannels, grain: Swift.max(1, 32_768 / p)) { r in
                for bc in r { let v = pb[bc % geo.outChannels]; let d = pos + bc * p; for k in 0..<p { d[k] += v } }
            }
        }
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        let xd = x.node != nil, wd = weight.node != nil
        let x0 = x.detached(), w0 = weight.detached()
        return record("conv2d", out, inputs: inputs) { g in
            let pg = g.storage.pointer
            let dx = xd ? Tensor.zeros(x0.shape) : nil
            let dw = wd ? Tensor.zeros(w0.shape) : nil
            if geo.isDepthwise {
                depthwiseBackward(x0.storage.pointer, w0.storage.pointer, pg, dx?.storage.pointer, dw?.storage.pointer, geo, batch: n)
            } else {
                let cols = geo.isPointwise ? nil : Tensor(uninitializedShape: [geo.colRows, p])
                for b in 0..<n {
                    for gi in 0..<geo.groups {
                        let xin = x0.storage.pointer + b * inPlane + gi * geo.cg * geo.inH * geo.inW
                        let gout = pg + b * outPlane + gi * geo.og * p
                        let wg = w0.storage.pointer + gi * geo.og * geo.colRows
                        if let dw {
                            // dW_g += dY_g · colsᵀ
                            let colPtr: UnsafePointer<Float>
                            if let cols { im2col(xin, geo, channels: geo.cg, cols.storage.pointer); colPtr = UnsafePointer(cols.storage.pointer) } else { colPtr = UnsafePointer(xin) }
                            sgemm(transA: false, transB: true, m: geo.og, n: geo.colRows, k: p, a: gout, lda: p,
                                  b: colPtr, ldb: p, beta: 1, c: dw.storage.pointer + gi * geo.og * geo.colRows, ldc: geo.colRows)
                        }
                        if let dx {
                            let dxin = dx.storage.pointer + b * inPlane + gi * geo.cg * geo.inH * geo.inW
                            if let cols {
                                // dcols = W_gᵀ · dY_g, then scatter back
                                sgemm(transA: true, transB: false, m: geo.colRows, n: p, k: geo.og, a: wg, lda: geo.colRows,
                                      b: gout, ldb: p, c: cols.storage.pointer, ldc: p)
                                col2im(cols.storage.pointer, geo, channels: geo.cg, dxin)
                            } else {
                                sgemm(transA: true, transB: false, m: geo.colRows, n: p, k: geo.og, a: wg, lda: geo.colRows,
                                      b: gout, ldb: p, beta: 1, c: dxin, ldc: p)
                            }
                        }
                    }
                }
                withExtendedLifetime(cols) {}  // read through pointers by the GEMMs and col2im
            }
            var grads: [Tensor?] = [dx, dw]
            if bias != nil { grads.append(g.sum(axes: [0, 2, 3])) }
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
