import Foundation

// conv2d's direct path (Sources/Tensor/Ops/ConvKernels/DirectConv.swift) over a batch: the forward
// pass and the input gradient, spread over the cores by (sample, group) like the im2col path.

extension Conv2dGeometry {
    /// Stride-1 grouped convolutions (not depthwise, not pointwise) with padding below the kernel
    /// size take the direct kernel for the forward pass and the input gradient (the weight gradient
    /// stays im2col + GEMM).
    var usesDirectKernel: Bool {
        Conv2dOptions.directKernel && strideH == 1 && strideW == 1 && groups > 1 && !isDepthwise && !isPointwise
            && padH < kernelH && padW < kernelW && kernelH * kernelW <= 49
    }

    /// One group of the forward pass.
    var directForwardShape: DirectConvShape {
        DirectConvShape(cin: cg, cout: og, h: inH, w: inW, kh: kernelH, kw: kernelW, padH: padH, padW: padW)
    }

    /// One group of the input gradient: dY's `og` planes, the flipped kernel, the complementary padding.
    var directInputGradientShape: DirectConvShape {
        DirectConvShape(cin: og, cout: cg, h: outH, w: outW, kh: kernelH, kw: kernelW, padH: kernelH - 1 - padH,
                        padW: kernelW - 1 - padW)
    }
}

/// Runs `directConvGroup` over every (sample, group) product: `x` has `groups · s.cin` planes per
/// sample, `out` `groups · s.cout`; `wt` is [groups, taps, cout].
func directConvBatch(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                     _ s: DirectConvShape, batch: Int, groups: Int) {
    MACCounter.add(batch * groups * s.cout * s.outH * s.outW * s.taps)
    let sched = ConvSampleSchedule(batch: batch, groups: groups)
    let scratch = Tensor(uninitializedShape: [sched.chunks, s.scratchCount])
    let offsets = UnsafeMutablePointer<Int>.allocate(capacity: s.taps)
    defer { offsets.deallocate() }
    offsets.initialize(from: directConvTapOffsets(s), count: s.taps)
    let inPlanes = s.cin * s.h * s.w, outPlanes = s.cout * s.outH * s.outW
    let px = UnsafeMutablePointer(mutating: x).sendable, pw = UnsafeMutablePointer(mutating: wt).sendable
    let po = out.sendable, ps = scratch.storage.pointer.sendable, pofs = offsets.sendable
    sched.run { ch in
        let sp = ps + ch * s.scratchCount
        directConvClearScratch(s, sp)
        for u in sched.products(ch) {
            let gi = u % groups
            directConvGroup(UnsafePointer(px + u * inPlanes), UnsafePointer(pw + gi * s.taps * s.cout), po + u * outPlanes, s,
                            offsets: UnsafePointer(pofs.base), scratch: sp)
        }
    }
    withExtendedLifetime(scratch) {}
}

/// Forward: wt[g, (c, i, j), o] = w[g·og + o, c, i, j].
func directConvForward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                       _ g: Conv2dGeometry, batch: Int) {
    let taps = g.colRows, og = g.og
    let wt = Tensor(uninitializedShape: [g.groups * taps * og])
    let pt = wt.storage.pointer
    for gi in 0..<g.groups {
        for o in 0..<og { for t in 0..<taps { pt[(gi * taps + t) * og + o] = w[(gi * og + o) * taps + t] } }
    }
    directConvBatch(x, UnsafePointer(pt), out, g.directForwardShape, batch: batch, groups: g.groups)
    withExtendedLifetime(wt) {}
}

/// Input gradient: dx = dY ⋆ (the kernel flipped, input and output channels swapped per group),
/// wt[g, (o, i, j), c] = w[g·og + o, c, kh−1−i, kw−1−j]. Overwrites dx.
func directConvInputGradient(_ gout: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                             _ g: Conv2dGeometry, batch: Int) {
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
    directConvBatch(gout, UnsafePointer(pt), dx, g.directInputGradientShape, batch: batch, groups: g.groups)
    withExtendedLifetime(wt) {}
}
