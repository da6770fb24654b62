import Foundation

// Backward of the depthwise convolutions that run the direct kernel forward (PiT's 3×3 stride-2
// pooling conv, docs/models.md §3), on the direct kernel's layout (Sources/Tensor/Ops/ConvKernels/
// DirectConv.swift): dW through `directConvWeightGradGroup`; dx by scattering each tap's scaled dY
// row into the (phase) planes, where 16 consecutive outputs of a row touch 16 consecutive floats,
// then reading the plane interiors back out.

/// Adds Σ_o Σ_t w[o, t] · dY[o, run, q] into the (phase) planes at run base + q + offs[t], one group.
/// `dy`: `cout` rows of `s.channelPositions` (zero in the junk positions); `w`: [cout, taps].
func directConvScatterInputGradient(_ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ s: DirectConvShape,
                                    offsets: UnsafePointer<Int>, _ planes: UnsafeMutablePointer<Float>) {
    let n = s.runPositions, ld = s.channelPositions, xs = s.strideH * s.rowWidth
    for o in 0..<s.cout {
        for t in 0..<s.taps {
            let wv = Vec(repeating: w[o * s.taps + t])
            for r in 0..<s.runs {
                let src = dy + o * ld + r * n, dst = planes + r * xs + offsets[t]
                for q in stride(from: 0, to: n, by: 16) { vstore(vload(dst + q).addingProduct(vload(src + q), wv), dst + q) }
            }
        }
    }
}

/// The inverse of `directConvFillPlanes`: dx[c, y, x] = the plane interior at (y, x).
func directConvReadPlanes(_ scratch: UnsafePointer<Float>, _ s: DirectConvShape, _ dx: UnsafeMutablePointer<Float>) {
    let rw = s.rowWidth, ps = s.planeStride, sw = s.strideW
    for c in 0..<s.cin {
        for y in 0..<s.h {
            let row = dx + (c * s.h + y) * s.w, src = scratch + c * sw * ps + (y + s.padH) * rw
            for r in 0..<sw {
                let d = src + r * ps
                var m = Swift.max(0, (s.padW - r + sw - 1) / sw), xx = r + sw * m - s.padW
                while xx < s.w { row[xx] = d[m]; m += 1; xx += sw }
            }
        }
    }
}

/// dx (overwritten) and dW (zeroed by the caller) of a depthwise convolution whose forward ran the
/// direct kernel, by (sample, group) products spread over the cores; one lane buffer of dW per core
/// (DirectConvWeightGrad.swift).
func directDepthwiseBackward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gout: UnsafePointer<Float>,
                             _ dx: UnsafeMutablePointer<Float>?, _ dw: UnsafeMutablePointer<Float>?, _ g: Conv2dGeometry, batch: Int) {
    let s = g.directForwardShape, groups = g.groups
    let sched = ConvSampleSchedule(batch: batch, groups: groups)
    let offsets = UnsafeMutablePointer<Int>.allocate(capacity: s.taps)
    defer { offsets.deallocate() }
    offsets.initialize(from: directConvTapOffsets(s), count: s.taps)
    let wsize = groups * s.cout * s.taps, planesCount = s.planes * s.planeStride
    // per chunk: input planes, dY rows, dx planes
    let work = s.scratchCount + planesCount
    let scratch = Tensor(uninitializedShape: [sched.chunks, work])
    let lanes = dw != nil ? Tensor.zeros([sched.chunks, wsize * 16]) : nil
    let inPlanes = s.cin * s.h * s.w, outPlanes = s.cout * s.outH * s.outW
    let px = UnsafeMutablePointer(mutating: x).sendable, pg = UnsafeMutablePointer(mutating: gout).sendable
    let pw = UnsafeMutablePointer(mutating: w).sendable
    let ps = scratch.storage.pointer.sendable, pofs = offsets.sendable
    let pl = lanes?.storage.pointer.sendable, pdx = dx?.sendable
    sched.run { ch in
        let sp = ps + ch * work, dyp = sp + planesCount, dxp = sp + s.scratchCount
        sp.update(repeating: 0, count: work)
        for u in sched.products(ch) {
            let gi = u % groups
            directConvFillOutputRows(UnsafePointer(pg + u * outPlanes), s, dyp)
            if let pl {
                directConvFillPlanes(UnsafePointer(px + u * inPlanes), s, sp)
                directConvWeightGradGroup(UnsafePointer(sp), UnsafePointer(dyp), s, offsets: UnsafePointer(pofs.base),
                                          lanes: pl + (ch * wsize + gi * s.cout * s.taps) * 16)
            }
            if let pdx {
                dxp.update(repeating: 0, count: planesCount)
                directConvScatterInputGradient(UnsafePointer(dyp), UnsafePointer(pw + gi * s.cout * s.taps), s,
                                               offsets: UnsafePointer(pofs.base), dxp)
                directConvReadPlanes(UnsafePointer(dxp), s, pdx + u * inPlanes)
            }
        }
    }
    if let lanes, let dw {
        directConvWeightGradSumLanes(lanes.storage.pointer, chunks: sched.chunks, stride: wsize * 16, count: wsize, into: dw)
    }
    withExtendedLifetime((scratch, lanes)) {}
}
