import Foundation

// Direct convolution of one group, without im2col: Visformer's grouped 3×3 MLP conv (docs/models.md §7)
// forward and input gradient (the same kernel on dY with the kernel flipped and the channel roles
// swapped), the 7×7 stride-2 stem and PiT's depthwise pooling conv forward.
//
// The group's input planes are copied into zero-padded planes of width PW = W + 2·padW. At stride 1,
// output positions are computed over that padded width as one flattened run, q = oy·PW + ox (the
// last kw − 1 columns of each row are junk and dropped), so kernel tap (c, i, j) reads the input at
// q + c·plane + i·PW + j: a plain shift, one contiguous vector load per tap for 16 consecutive
// outputs. At stride s > 1 each padded row is split into s phase planes (columns ≡ r mod s) so that
// 16 consecutive outputs of one row again read 16 consecutive floats: tap (c, i, j) of output row oy
// reads phase plane j mod s at row oy·s + i, column ox + ⌊j/s⌋; each output row is its own run.
// A register tile of output channels × vectors of 16 positions accumulates with fused
// multiply-adds, the weight of each (tap, channel) broadcast from a [taps, out channels] copy of
// the kernel.

/// The tiles of the direct kernels held in registers: output channels × 16-wide position vectors
/// (AVX-512 has 32 vector registers: 24 accumulators; AVX2's 16 ymm registers: 4 × 2 halves), and
/// output channels × taps of the weight gradient (DirectConvWeightGrad.swift).
enum DirectConv {
    #if VITZOO_AVX512
    static let tileChannels = 8, tileVectors = 3, gradChannels = 4, gradTaps = 4
    /// Strided runs two at a time (`directConvNarrowPairTile`, 16 accumulators).
    static let pairedRuns = true
    #else
    static let tileChannels = 4, tileVectors = 1, gradChannels = 2, gradTaps = 2
    static let pairedRuns = false
    #endif
}

/// One group's convolution: `cin` input planes H×W → `cout` output planes OH×OW.
struct DirectConvShape: Equatable {
    let cin: Int, cout: Int, h: Int, w: Int, kh: Int, kw: Int, padH: Int, padW: Int
    var strideH = 1, strideW = 1
    var paddedW: Int { w + 2 * padW }
    var paddedH: Int { h + 2 * padH }
    var outH: Int { (paddedH - kh) / strideH + 1 }
    var outW: Int { (paddedW - kw) / strideW + 1 }
    var taps: Int { cin * kh * kw }
    /// Stride 1: all output rows form one run over the padded width; strided: one run per output row.
    var flattened: Bool { strideH == 1 && strideW == 1 }
    /// Vectors of 16 positions per register tile (the wide tile for flattened runs).
    var tileVectors: Int { flattened ? DirectConv.tileVectors : 1 }
    var runs: Int { flattened ? 1 : outH }
    /// Positions computed per run, rounded up to whole tiles.
    var runPositions: Int {
        let block = 16 * tileVectors, n = flattened ? outH * paddedW : outW
        return (n + block - 1) / block * block
    }
    /// Positions computed per output channel (all runs).
    var channelPositions: Int { runs * runPositions }
    /// From one output row to the next in the computed runs.
    var outRowStride: Int { flattened ? paddedW : runPositions }
    /// Row width of the (phase) planes.
    var rowWidth: Int { (paddedW + strideW - 1) / strideW }
    var planes: Int { cin * strideW }
    /// Floats per (phase) plane: the rows, then slack for the last tile's overreach, rounded to 16.
    var planeStride: Int { (paddedH * rowWidth + runPositions + kw + 15) / 16 * 16 }
    /// Scratch floats one worker needs: the (phase) planes, then the computed runs.
    var scratchCount: Int { planes * planeStride + cout * channelPositions }
}

/// Offsets of the kernel taps (c, i, j), in weight order, into the (phase) planes.
func directConvTapOffsets(_ s: DirectConvShape) -> [Int] {
    var offs: [Int] = []
    offs.reserveCapacity(s.taps)
    for c in 0..<s.cin {
        for i in 0..<s.kh {
            for j in 0..<s.kw { offs.append((c * s.strideW + j % s.strideW) * s.planeStride + i * s.rowWidth + j / s.strideW) }
        }
    }
    return offs
}

/// Zeroes a worker's (phase) planes (their borders stay zero: `directConvGroup` only writes interiors).
func directConvClearScratch(_ s: DirectConvShape, _ scratch: UnsafeMutablePointer<Float>) {
    scratch.update(repeating: 0, count: s.planes * s.planeStride)
}

/// Copies the group's `cin` input planes into the interiors of the (phase) planes at the start of `scratch`.
func directConvFillPlanes(_ x: UnsafePointer<Float>, _ s: DirectConvShape, _ scratch: UnsafeMutablePointer<Float>) {
    let rw = s.rowWidth, ps = s.planeStride, sw = s.strideW
    for c in 0..<s.cin {
        let src = x + c * s.h * s.w
        if sw == 1 {
            let dst = scratch + c * ps + s.padH * rw + s.padW
            for y in 0..<s.h { copyRow(dst + y * rw, src + y * s.w, s.w) }
        } else {
            // phase r holds padded columns r, r + sw, …: input columns xx = r + sw·m − padW
            for y in 0..<s.h {
                let row = src + y * s.w, dst = scratch + c * sw * ps + (y + s.padH) * rw
                for r in 0..<sw {
                    let d = dst + r * ps
                    var m = Swift.max(0, (s.padW - r + sw - 1) / sw), xx = r + sw * m - s.padW
                    while xx < s.w { d[m] = row[xx]; m += 1; xx += sw }
                }
            }
        }
    }
}

/// out[o, oy, ox] = Σ_(c,i,j) wt[(c, i, j), o] · x[c, oy·sh − padH + i, ox·sw − padW + j] (zero outside), one group.
/// `x`: `cin` planes H×W; `wt`: [taps, cout]; `out`: `cout` planes OH×OW (overwritten);
/// `scratch`: `s.scratchCount` floats whose plane borders are zero (`directConvClearScratch`);
/// `channels`: the output channels to compute (all by default).
func directConvGroup(_ x: UnsafePointer<Float>, _ wt: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                     _ s: DirectConvShape, offsets: UnsafePointer<Int>, scratch: UnsafeMutablePointer<Float>,
                     channels: Range<Int>? = nil) {
    let channels = channels ?? 0..<s.cout
    directConvFillPlanes(x, s, scratch)
    let rw = s.rowWidth, ps = s.planeStride
    let xp = UnsafePointer(scratch), op = scratch + s.planes * ps
    let n = s.runPositions, ldo = s.runs * n, taps = s.taps, tc = DirectConv.tileChannels
    var r = 0
    while r < s.runs {
        let base = xp + r * s.strideH * rw, dst = op + r * n
        // strided runs (one output row each) two at a time where the registers allow: the 7×7 stem's
        // rows are 112 outputs, 7 vectors, and one row's tile alone is bound by its weight broadcasts
        let pair = DirectConv.pairedRuns && s.tileVectors != DirectConv.tileVectors && r + 1 < s.runs
        var o = channels.lowerBound
        while o + tc <= channels.upperBound {
            if s.tileVectors == DirectConv.tileVectors {
                for q in stride(from: 0, to: n, by: 16 * DirectConv.tileVectors) {
                    directConvTile(base + q, wt + o, s.cout, offsets, taps, dst + o * ldo + q, ldo)
                }
            } else if pair {
                for q in stride(from: 0, to: n, by: 16) {
                    directConvNarrowPairTile(base + q, s.strideH * rw, wt + o, s.cout, offsets, taps, dst + o * ldo + q, n, ldo)
                }
            } else {
                for q in stride(from: 0, to: n, by: 16) { directConvNarrowTile(base + q, wt + o, s.cout, offsets, taps, dst + o * ldo + q, ldo) }
            }
            o += tc
        }
        for rr in r..<(r + (pair ? 2 : 1)) {
            let base = xp + rr * s.strideH * rw, dst = op + rr * n
            for oc in o..<channels.upperBound {
                for q in stride(from: 0, to: n, by: 16) { directConvColumn(base + q, wt + oc, s.cout, offsets, taps, dst + oc * ldo + q) }
            }
        }
        r += pair ? 2 : 1
    }
    // drop the junk columns
    let oh = s.outH, ow = s.outW, rs = s.outRowStride
    for o in channels {
        let src = op + o * ldo, dst = out + o * oh * ow
        for y in 0..<oh { copyRow(dst + y * ow, src + y * rs, ow) }
    }
}

/// One output channel × 16 positions.
@inline(__always)
func directConvColumn(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ ldw: Int, _ offs: UnsafePointer<Int>,
                      _ taps: Int, _ out: UnsafeMutablePointer<Float>) {
    var a = Vec()
    for t in 0..<taps { a = a.addingProduct(vload(x + offs[t]), Vec(repeating: w[t * ldw])) }
    vstore(a, out)
}

#if VITZOO_AVX512
/// 8 output channels × 48 positions (24 zmm accumulators).
@inline(__always)
func directConvTile(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ ldw: Int, _ offs: UnsafePointer<Int>,
                    _ taps: Int, _ out: UnsafeMutablePointer<Float>, _ ldo: Int) {
    var a00 = Vec(), a01 = Vec(), a02 = Vec(), a10 = Vec(), a11 = Vec(), a12 = Vec()
    var a20 = Vec(), a21 = Vec(), a22 = Vec(), a30 = Vec(), a31 = Vec(), a32 = Vec()
    var a40 = Vec(), a41 = Vec(), a42 = Vec(), a50 = Vec(), a51 = Vec(), a52 = Vec()
    var a60 = Vec(), a61 = Vec(), a62 = Vec(), a70 = Vec(), a71 = Vec(), a72 = Vec()
    for t in 0..<taps {
        let p = x + offs[t], wr = w + t * ldw
        let v0 = vload(p), v1 = vload(p + 16), v2 = vload(p + 32)
        var b = Vec(repeating: wr[0])
        a00 = a00.addingProduct(v0, b); a01 = a01.addingProduct(v1, b); a02 = a02.addingProduct(v2, b)
        b = Vec(repeating: wr[1])
        a10 = a10.addingProduct(v0, b); a11 = a11.addingProduct(v1, b); a12 = a12.addingProduct(v2, b)
        b = Vec(repeating: wr[2])
        a20 = a20.addingProduct(v0, b); a21 = a21.addingProduct(v1, b); a22 = a22.addingProduct(v2, b)
        b = Vec(repeating: wr[3])
        a30 = a30.addingProduct(v0, b); a31 = a31.addingProduct(v1, b); a32 = a32.addingProduct(v2, b)
        b = Vec(repeating: wr[4])
        a40 = a40.addingProduct(v0, b); a41 = a41.addingProduct(v1, b); a42 = a42.addingProduct(v2, b)
        b = Vec(repeating: wr[5])
        a50 = a50.addingProduct(v0, b); a51 = a51.addingProduct(v1, b); a52 = a52.addingProduct(v2, b)
        b = Vec(repeating: wr[6])
        a60 = a60.addingProduct(v0, b); a61 = a61.addingProduct(v1, b); a62 = a62.addingProduct(v2, b)
        b = Vec(repeating: wr[7])
        a70 = a70.addingProduct(v0, b); a71 = a71.addingProduct(v1, b); a72 = a72.addingProduct(v2, b)
    }
    vstore(a00, out); vstore(a01, out + 16); vstore(a02, out + 32)
    var d = out + ldo
    vstore(a10, d); vstore(a11, d + 16); vstore(a12, d + 32)
    d += ldo
    vstore(a20, d); vstore(a21, d + 16); vstore(a22, d + 32)
    d += ldo
    vstore(a30, d); vstore(a31, d + 16); vstore(a32, d + 32)
    d += ldo
    vstore(a40, d); vstore(a41, d + 16); vstore(a42, d + 32)
    d += ldo
    vstore(a50, d); vstore(a51, d + 16); vstore(a52, d + 32)
    d += ldo
    vstore(a60, d); vstore(a61, d + 16); vstore(a62, d + 32)
    d += ldo
    vstore(a70, d); vstore(a71, d + 16); vstore(a72, d + 32)
}

/// 8 output channels × 16 positions (strided runs are one output row, often short).
@inline(__always)
func directConvNarrowTile(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ ldw: Int, _ offs: UnsafePointer<Int>,
                          _ taps: Int, _ out: UnsafeMutablePointer<Float>, _ ldo: Int) {
    var a0 = Vec(), a1 = Vec(), a2 = Vec(), a3 = Vec(), a4 = Vec(), a5 = Vec(), a6 = Vec(), a7 = Vec()
    for t in 0..<taps {
        let v = vload(x + offs[t]), wr = w + t * ldw
        a0 = a0.addingProduct(v, Vec(repeating: wr[0])); a1 = a1.addingProduct(v, Vec(repeating: wr[1]))
        a2 = a2.addingProduct(v, Vec(repeating: wr[2])); a3 = a3.addingProduct(v, Vec(repeating: wr[3]))
        a4 = a4.addingProduct(v, Vec(repeating: wr[4])); a5 = a5.addingProduct(v, Vec(repeating: wr[5]))
        a6 = a6.addingProduct(v, Vec(repeating: wr[6])); a7 = a7.addingProduct(v, Vec(repeating: wr[7]))
    }
    vstore(a0, out); vstore(a1, out + ldo); vstore(a2, out + 2 * ldo); vstore(a3, out + 3 * ldo)
    vstore(a4, out + 4 * ldo); vstore(a5, out + 5 * ldo); vstore(a6, out + 6 * ldo); vstore(a7, out + 7 * ldo)
}

/// `directConvNarrowTile` on two runs at once, the second `runStride` floats further in the planes
/// and `outStride` further in the output (16 accumulators): each weight broadcast serves two
/// vectors of positions.
@inline(__always)
func directConvNarrowPairTile(_ x: UnsafePointer<Float>, _ runStride: Int, _ w: UnsafePointer<Float>, _ ldw: Int,
                              _ offs: UnsafePointer<Int>, _ taps: Int, _ out: UnsafeMutablePointer<Float>, _ outStride: Int,
                              _ ldo: Int) {
    var a0 = Vec(), a1 = Vec(), a2 = Vec(), a3 = Vec(), a4 = Vec(), a5 = Vec(), a6 = Vec(), a7 = Vec()
    var c0 = Vec(), c1 = Vec(), c2 = Vec(), c3 = Vec(), c4 = Vec(), c5 = Vec(), c6 = Vec(), c7 = Vec()
    for t in 0..<taps {
        let p = x + offs[t], wr = w + t * ldw
        let v = vload(p), u = vload(p + runStride)
        var b = Vec(repeating: wr[0]); a0 = a0.addingProduct(v, b); c0 = c0.addingProduct(u, b)
        b = Vec(repeating: wr[1]); a1 = a1.addingProduct(v, b); c1 = c1.addingProduct(u, b)
        b = Vec(repeating: wr[2]); a2 = a2.addingProduct(v, b); c2 = c2.addingProduct(u, b)
        b = Vec(repeating: wr[3]); a3 = a3.addingProduct(v, b); c3 = c3.addingProduct(u, b)
        b = Vec(repeating: wr[4]); a4 = a4.addingProduct(v, b); c4 = c4.addingProduct(u, b)
        b = Vec(repeating: wr[5]); a5 = a5.addingProduct(v, b); c5 = c5.addingProduct(u, b)
        b = Vec(repeating: wr[6]); a6 = a6.addingProduct(v, b); c6 = c6.addingProduct(u, b)
        b = Vec(repeating: wr[7]); a7 = a7.addingProduct(v, b); c7 = c7.addingProduct(u, b)
    }
    vstore(a0, out); vstore(a1, out + ldo); vstore(a2, out + 2 * ldo); vstore(a3, out + 3 * ldo)
    vstore(a4, out + 4 * ldo); vstore(a5, out + 5 * ldo); vstore(a6, out + 6 * ldo); vstore(a7, out + 7 * ldo)
    let o2 = out + outStride
    vstore(c0, o2); vstore(c1, o2 + ldo); vstore(c2, o2 + 2 * ldo); vstore(c3, o2 + 3 * ldo)
    vstore(c4, o2 + 4 * ldo); vstore(c5, o2 + 5 * ldo); vstore(c6, o2 + 6 * ldo); vstore(c7, o2 + 7 * ldo)
}
#else
/// Not taken on AVX2 (`DirectConv.pairedRuns`: 16 ymm registers hold one run's tile).
@inline(__always)
func directConvNarrowPairTile(_ x: UnsafePointer<Float>, _ runStride: Int, _ w: UnsafePointer<Float>, _ ldw: Int,
                              _ offs: UnsafePointer<Int>, _ taps: Int, _ out: UnsafeMutablePointer<Float>, _ outStride: Int,
                              _ ldo: Int) {
    directConvTile(x, w, ldw, offs, taps, out, ldo)
    directConvTile(x + runStride, w, ldw, offs, taps, out + outStride, ldo)
}

/// 4 output channels × 16 positions (8 ymm accumulators on AVX2); the narrow tile is the same.
@inline(__always)
func directConvNarrowTile(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ ldw: Int, _ offs: UnsafePointer<Int>,
                          _ taps: Int, _ out: UnsafeMutablePointer<Float>, _ ldo: Int) {
    directConvTile(x, w, ldw, offs, taps, out, ldo)
}

/// 4 output channels × 16 positions.
@inline(__always)
func directConvTile(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ ldw: Int, _ offs: UnsafePointer<Int>,
                    _ taps: Int, _ out: UnsafeMutablePointer<Float>, _ ldo: Int) {
    var a0 = Vec(), a1 = Vec(), a2 = Vec(), a3 = Vec()
    for t in 0..<taps {
        let v = vload(x + offs[t]), wr = w + t * ldw
        a0 = a0.addingProduct(v, Vec(repeating: wr[0])); a1 = a1.addingProduct(v, Vec(repeating: wr[1]))
        a2 = a2.addingProduct(v, Vec(repeating: wr[2])); a3 = a3.addingProduct(v, Vec(repeating: wr[3]))
    }
    vstore(a0, out); vstore(a1, out + ldo); vstore(a2, out + 2 * ldo); vstore(a3, out + 3 * ldo)
}
#endif
