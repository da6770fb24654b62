import Foundation

// Weight gradient without im2col (Visformer's grouped 3×3 MLP conv and its 7×7 stride-2 stem):
//   dW[o, (c, i, j)] = Σ_samples Σ_runs Σ_q dY_runs[o, q] · x_planes[tap (c, i, j) shifted to q],
// over the runs of the forward kernel (Sources/Tensor/Ops/ConvKernels/DirectConv.swift), with dY
// copied to that layout and zero in the junk positions, so every term is a product of two
// contiguous 16-wide vectors. A register tile of output channels × taps keeps one vector
// accumulator per (channel, tap) over all positions and adds it, still 16 lanes wide, into a lane
// buffer `[cout, taps, 16]` that carries on over the samples of a core; the 16 lanes are summed
// once at the end (`directConvWeightGradSumLanes`). Summing each accumulator across its lanes per
// (sample, group) instead cost as much as a third of the multiply-adds: a 16-lane horizontal sum
// is a chain of 15 scalar adds, and each one spilled the tile's accumulators around a call.

/// Copies dY's `cout` planes OH×OW into padded-width rows (`s.outRowStride` apart, `s.runPositions`
/// per channel); the junk columns and the tail keep the zeros they were cleared to.
func directConvFillOutputRows(_ gout: UnsafePointer<Float>, _ s: DirectConvShape, _ dst: UnsafeMutablePointer<Float>) {
    let oh = s.outH, ow = s.outW, n = s.channelPositions, rs = s.outRowStride
    for o in 0..<s.cout {
        for y in 0..<oh { copyRow(dst + o * n + y * rs, gout + (o * oh + y) * ow, ow) }
    }
}

/// lanes[o, t, 0..<16] += Σ_runs Σ_q dy[o, run, q] · x[run base + q + offs[t]] (lane by lane: the
/// lanes add up to dW[o, t]) for one (sample, group). `x`: the filled (phase) planes; `dy`: `cout`
/// rows of `s.channelPositions`; `lanes`: [cout, taps, 16].
func directConvWeightGradGroup(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ s: DirectConvShape,
                               offsets: UnsafePointer<Int>, lanes: UnsafeMutablePointer<Float>) {
    let n = s.runPositions, ld = s.channelPositions, taps = s.taps, co = DirectConv.gradChannels, ct = DirectConv.gradTaps
    let runs = s.runs, xs = s.strideH * s.rowWidth
    /// One (channel, tap) at a time, for the remainders of the tiling.
    func single(_ o: Int, _ t: Int) {
        var a = Vec()
        for r in 0..<runs {
            let xr = x + r * xs + offsets[t], d = dy + o * ld + r * n
            for q in stride(from: 0, to: n, by: 16) { a = a.addingProduct(vload(d + q), vload(xr + q)) }
        }
        vstore(vload(lanes + (o * taps + t) * 16) + a, lanes + (o * taps + t) * 16)
    }
    var o = 0
    while o + co <= s.cout {
        var t = 0
        while t + ct <= taps {
            directConvWeightGradTile(x, offsets + t, dy + o * ld, ld, n, runs, xs, lanes + (o * taps + t) * 16, taps * 16)
            t += ct
        }
        for oo in o..<(o + co) { for tt in t..<taps { single(oo, tt) } }
        o += co
    }
    for oo in o..<s.cout { for tt in 0..<taps { single(oo, tt) } }
}

#if VITZOO_AVX512
@inline(__always)
func directConvWeightGradTile(_ x: UnsafePointer<Float>, _ offs: UnsafePointer<Int>, _ dy: UnsafePointer<Float>, _ ld: Int,
                              _ n: Int, _ runs: Int, _ xs: Int, _ lanes: UnsafeMutablePointer<Float>, _ ldl: Int) {
    var a00 = Vec(), a01 = Vec(), a02 = Vec(), a03 = Vec(), a10 = Vec(), a11 = Vec(), a12 = Vec(), a13 = Vec()
    var a20 = Vec(), a21 = Vec(), a22 = Vec(), a23 = Vec(), a30 = Vec(), a31 = Vec(), a32 = Vec(), a33 = Vec()
    for r in 0..<runs {
        let x0 = x + r * xs + offs[0], x1 = x + r * xs + offs[1], x2 = x + r * xs + offs[2], x3 = x + r * xs + offs[3]
        let d0 = dy + r * n, d1 = d0 + ld, d2 = d0 + 2 * ld, d3 = d0 + 3 * ld
        for q in stride(from: 0, to: n, by: 16) {
            let v0 = vload(x0 + q), v1 = vload(x1 + q), v2 = vload(x2 + q), v3 = vload(x3 + q)
            var g = vload(d0 + q)
            a00 = a00.addingProduct(g, v0); a01 = a01.addingProduct(g, v1); a02 = a02.addingProduct(g, v2); a03 = a03.addingProduct(g, v3)
            g = vload(d1 + q)
            a10 = a10.addingProduct(g, v0); a11 = a11.addingProduct(g, v1); a12 = a12.addingProduct(g, v2); a13 = a13.addingProduct(g, v3)
            g = vload(d2 + q)
            a20 = a20.addingProduct(g, v0); a21 = a21.addingProduct(g, v1); a22 = a22.addingProduct(g, v2); a23 = a23.addingProduct(g, v3)
            g = vload(d3 + q)
            a30 = a30.addingProduct(g, v0); a31 = a31.addingProduct(g, v1); a32 = a32.addingProduct(g, v2); a33 = a33.addingProduct(g, v3)
        }
    }
    addLanes(lanes, a00, a01, a02, a03)
    addLanes(lanes + ldl, a10, a11, a12, a13)
    addLanes(lanes + 2 * ldl, a20, a21, a22, a23)
    addLanes(lanes + 3 * ldl, a30, a31, a32, a33)
}

/// Adds four accumulators into four consecutive lane vectors.
@inline(__always)
private func addLanes(_ l: UnsafeMutablePointer<Float>, _ a: Vec, _ b: Vec, _ c: Vec, _ d: Vec) {
    vstore(vload(l) + a, l); vstore(vload(l + 16) + b, l + 16); vstore(vload(l + 32) + c, l + 32); vstore(vload(l + 48) + d, l + 48)
}
#else
@inline(__always)
func directConvWeightGradTile(_ x: UnsafePointer<Float>, _ offs: UnsafePointer<Int>, _ dy: UnsafePointer<Float>, _ ld: Int,
                              _ n: Int, _ runs: Int, _ xs: Int, _ lanes: UnsafeMutablePointer<Float>, _ ldl: Int) {
    var a00 = Vec(), a01 = Vec(), a10 = Vec(), a11 = Vec()
    for r in 0..<runs {
        let x0 = x + r * xs + offs[0], x1 = x + r * xs + offs[1], d0 = dy + r * n, d1 = d0 + ld
        for q in stride(from: 0, to: n, by: 16) {
            let v0 = vload(x0 + q), v1 = vload(x1 + q), g0 = vload(d0 + q), g1 = vload(d1 + q)
            a00 = a00.addingProduct(g0, v0); a01 = a01.addingProduct(g0, v1)
            a10 = a10.addingProduct(g1, v0); a11 = a11.addingProduct(g1, v1)
        }
    }
    vstore(vload(lanes) + a00, lanes); vstore(vload(lanes + 16) + a01, lanes + 16)
    vstore(vload(lanes + ldl) + a10, lanes + ldl); vstore(vload(lanes + ldl + 16) + a11, lanes + ldl + 16)
}
#endif

/// dw[k] += Σ_ch Σ_lane lanes[ch][k, lane] for `count` weights, over `chunks` lane buffers of
/// `count`·16 floats, `stride` apart (the cores' buffers, added in core order).
func directConvWeightGradSumLanes(_ lanes: UnsafePointer<Float>, chunks: Int, stride: Int, count: Int,
                                  into dw: UnsafeMutablePointer<Float>) {
    for ch in 0..<chunks {
        let l = lanes + ch * stride
        for k in 0..<count { dw[k] += vload(l + k * 16).sum() }
    }
}

/// dW (zeroed by the caller, [groups·og, cg, kh, kw]) of a convolution on the direct kernel's layout
/// (`Conv2dGeometry.usesDirectWeightGradient`), by (sample, group) products spread over the cores like
/// the forward pass; one lane buffer per core, summed after.
func directConvWeightGradient(_ x: UnsafePointer<Float>, _ gout: UnsafePointer<Float>, _ dw: UnsafeMutablePointer<Float>,
                              _ g: Conv2dGeometry, batch: Int) {
    let s = g.directForwardShape, groups = g.groups
    MACCounter.add(batch * groups * s.cout * s.outH * s.outW * s.taps)
    let sched = ConvSampleSchedule(batch: batch, groups: groups)
    let offsets = UnsafeMutablePointer<Int>.allocate(capacity: s.taps)
    defer { offsets.deallocate() }
    offsets.initialize(from: directConvTapOffsets(s), count: s.taps)
    let wsize = groups * s.cout * s.taps, work = s.scratchCount
    let scratch = Tensor(uninitializedShape: [sched.chunks, work])
    let lanes = Tensor.zeros([sched.chunks, wsize * 16])
    let inPlanes = s.cin * s.h * s.w, outPlanes = s.cout * s.outH * s.outW
    let px = UnsafeMutablePointer(mutating: x).sendable, pg = UnsafeMutablePointer(mutating: gout).sendable
    let ps = scratch.storage.pointer.sendable, pofs = offsets.sendable, pl = lanes.storage.pointer.sendable
    sched.run { ch in
        let sp = ps + ch * work, dyp = sp + s.planes * s.planeStride
        sp.update(repeating: 0, count: work)
        let acc = pl + ch * wsize * 16
        for u in sched.products(ch) {
            let gi = u % groups
            directConvFillPlanes(UnsafePointer(px + u * inPlanes), s, sp)
            directConvFillOutputRows(UnsafePointer(pg + u * outPlanes), s, dyp)
            directConvWeightGradGroup(UnsafePointer(sp), UnsafePointer(dyp), s, offsets: UnsafePointer(pofs.base),
                                      lanes: acc + gi * s.cout * s.taps * 16)
        }
    }
    directConvWeightGradSumLanes(lanes.storage.pointer, chunks: sched.chunks, stride: wsize * 16, count: wsize, into: dw)
    withExtendedLifetime((scratch, lanes)) {}
}
