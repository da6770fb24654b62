import Foundation

// conv2d's direct path (Sources/Tensor/Ops/ConvKernels/DirectConv.swift) over a batch: the forward
// pass and the input gradient, spread over the cores by (sample, group) like the im2col path.

extension Conv2dGeometry {
    /// Convolutions whose forward pass takes the direct kernel: stride-1 grouped ones (Visformer's
    /// 3×3 MLP conv), depthwise ones (PiT's pooling) and strided ones on at most 4 input channels per
    /// group with overlapping windows of at most 64 taps per channel (Visformer's 7×7 stride-2 stem);
    /// never pointwise ones, and padding stays below the kernel size. Patch embeddings (kernel =
    /// stride: im2col is a mere rearrangement) and PiT's 16×16 stride-8 one measured faster through
    /// im2col + GEMM (opbench --only conv).
    var usesDirectKernel: Bool {
        guard Conv2dOptions.directKernel, !isPointwise, padH < kernelH, padW < kernelW, colRows <= 1024 else { return false }
        let strided = strideH > 1 || strideW > 1
        if isDepthwise { return true }
        if !strided { return groups > 1 }
        return cg <= 4 && kernelH * kernelW <= 64 && kernelH > strideH && kernelW > strideW
    }

    /// Whether the input gradient takes the direct kernel too (stride 1, not depthwise).
    var usesDirectInputGradient: Bool { usesDirectKernel && strideH == 1 && strideW == 1 && !isDepthwise }

    /// Whether the weight gradient takes the direct kernel's layout too (not depthwise: that has its own backward).
    var usesDirectWeightGradient: Bool { usesDirectKernel && !isDepthwise && Conv2dOptions.directWeightGradient }

    /// One group of the forward pass.
    var directForwardShape: DirectConvShape {
        DirectConvShape(cin: cg, cout: og, h: inH, w: inW, kh: kernelH, kw: kernelW, padH: padH, padW: padW,
                        strideH: strideH, strideW: strideW)
    }

    /// One group of the input gradient: dY's `og` planes, the flipped kernel, the complementary padding.
    var directInputGradientShape: DirectConvShape {
        DirectConvShape(cin: og, cout: cg, h: outH, w: outW, kh: kernelH, kw: kernelW, padH: kernelH - 1 - padH,
                        padW: kernelW - 1 - padW)
    }
}

extension Tensor {
    /// Whether conv2d takes the direct kernel for this convolution of a square kernel (benchmarks print
    /// it beside their timings).
    public static func convUsesDirectKernel(inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int,
                                            groups: Int) -> Bool {
        Conv2dGeometry(inChannels: inChannels, outChannels: outChannels, kernelH: kernel, kernelW: kernel, strideH: stride,
                       strideW: stride, padH: padding, padW: padding, groups: groups, inH: 1, inW: 1).usesDirectKernel
    }
}

/// Runs `directConvGroup` over every (sample, group) product: `x` has `groups · s.cin` planes per
/// sample, `out` `groups · s.cout`; `wt` is [groups, taps, cout].
func directConvBatch(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                     _ s: DirectConvShape, batch: Int, groups: Int) {
    MACCounter.add(batch * groups * s.cout * s.outH * s.outW * s.taps)
    let sched = ConvSampleSchedule(batch: batch, groups: groups)
    let offsets = UnsafeMutablePointer<Int>.allocate(capacity: s.taps)
    defer { offsets.deallocate() }
    offsets.initialize(from: directConvTapOffsets(s), count: s.taps)
    let inPlanes = s.cin * s.h * s.w, outPlanes = s.cout * s.outH * s.outW
    let px = UnsafeMutablePointer(mutating: x).sendable, pw = UnsafeMutablePointer(mutating: wt).sendable
    let po = out.sendable, pofs = offsets.sendable
    // Fewer (sample, group) products than cores (a batch-1 ungrouped conv): every core takes a share
    // of each product's output channels, in whole register tiles, with its own copy of the planes.
    let parts = sched.splits || Parallel.threads == 1 || !Conv2dOptions.sampleSplit ? 1
        : Swift.min(Parallel.threads, (s.cout + DirectConv.tileChannels - 1) / DirectConv.tileChannels)
    let scratch = Tensor(uninitializedShape: [Swift.max(sched.chunks, parts), s.scratchCount])
    let ps = scratch.storage.pointer.sendable
    if parts > 1 {
        let tiles = (s.cout + DirectConv.tileChannels - 1) / DirectConv.tileChannels
        Parallel.forEach(parts) { part in
            let lo = Swift.min(s.cout, tiles * part / parts * DirectConv.tileChannels)
            let hi = Swift.min(s.cout, tiles * (part + 1) / parts * DirectConv.tileChannels)
            guard lo < hi else { return }
            let sp = ps + part * s.scratchCount
            directConvClearScratch(s, sp)
            for u in 0..<(batch * groups) {
                directConvGroup(UnsafePointer(px + u * inPlanes), UnsafePointer(pw + (u % groups) * s.taps * s.cout), po + u * outPlanes,
                                s, offsets: UnsafePointer(pofs.base), scratch: sp, channels: lo..<hi)
            }
        }
    } else {
        sched.run { ch in
            let sp = ps + ch * s.scratchCount
            directConvClearScratch(s, sp)
            for u in sched.products(ch) {
                directConvGroup(UnsafePointer(px + u * inPlanes), UnsafePointer(pw + (u % groups) * s.taps * s.cout), po + u * outPlanes,
                                s, offsets: UnsafePointer(pofs.base), scratch: sp)
            }
        }
    }
    withExtendedLifetime(scratch) {}
}

/// The forward weights in the direct kernel's layout: wt[g, (c, i, j), o] = w[g·og + o, c, i, j].
func directConvForwardWeights(_ w: UnsafePointer<Float>, _ g: Conv2dGeometry) -> Tensor {
    let taps = g.colRows, og = g.og
    let wt = Tensor(uninitializedShape: [g.groups * taps * og])
    let pt = wt.storage.pointer
    for gi in 0..<g.groups {
        for o in 0..<og { for t in 0..<taps { pt[(gi * taps + t) * og + o] = w[(gi * og + o) * taps + t] } }
    }
    return wt
}

func directConvForward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                       _ g: Conv2dGeometry, batch: Int) {
    let wt = directConvForwardWeights(w, g)
    directConvBatch(x, UnsafePointer(wt.storage.pointer), out, g.directForwardShape, batch: batch, groups: g.groups)
    withExtendedLifetime(wt) {}
}

/// Input gradient: dx = dY ⋆ (the kernel flipped, input and output channels swapped per group),
/// wt[g, (o, i, j), c] = w[g·og + o, c, kh−1−i, kw−1−j]. Overwrites dx.
func directConvInputGradient(_ gout: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                             _ g: Conv2dGeometry, batch: Int) {
    let wt = directConvInputGradientWeights(w, g)
    directConvBatch(gout, UnsafePointer(wt.storage.pointer), dx, g.directInputGradientShape, batch: batch, groups: g.groups)
    withExtendedLifetime(wt) {}
}

/// The input gradient's weights in the direct kernel's layout, wt[g, (o, i, j), c] = w[g·og + o, c, kh−1−i, kw−1−j].
func directConvInputGradientWeights(_ w: UnsafePointer<Float>, _ g: Conv2dGeometry) -> Tensor {
    let kh = g.kernelH, kw = g.kernelW, cg = g.cg, og = g.og, taps = g.colRows
    let wt = Tensor(uninitializedShape: [g.groups * og * kh * kw * cg])
    let pt = wt.storage.pointer
    for gi in 0..<g.groups {
        for o in 0..<og {
            for c in 0..<cg {
                for i in 0..<kh {
                    for j in 0..<kw {
                        pt[((gi * og + o) * kh * kw + i * kw + j) * cg + c] = w[(gi * og + o) * taps + (c * kh + kh - 1 - i) * kw + kw - 1 - j]
                    }
                }
            }
        }
    }
    return wt
}
