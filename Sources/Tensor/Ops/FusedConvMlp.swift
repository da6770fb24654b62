import Foundation

// A convolutional MLP block with its residual, one sample at a time per core:
//   out = r + s_b · conv3(gelu(conv2(gelu(conv1(x) + b1))))
// with 1×1 conv1 and conv3, a grouped "same" conv2 and a per-sample branch scale s_b (drop-path's
// 0 or 1/(1−p), else 1): Visformer's stage-1 block, where x is BatchNorm(r) (in evaluation the
// BatchNorm is folded into conv1 and x = r). Op by op, each conv and each GELU is a pass over the
// whole batch's hidden maps (19 MB each at 224 px, batch 32) from and to memory. Here every core takes
// whole samples and carries each through all steps in its own scratch, where a sample's hidden maps
// (600 KB each at 224 px) stay in cache. Training keeps only the two pre-activations, conv1's and
// conv2's outputs; backward recomputes the GELUs from them, again sample by sample, with each core
// summing its own weight gradients (added up at the end in core order, as conv2d's do). Same kernels
// as the composition — the per-sample GEMMs, the bias pass, the GELU kernels, the direct grouped
// kernels (Sources/Tensor/Ops/ConvKernels/DirectConv.swift) — so the results are the composition's up
// to the order of a few sums. A sample whose branch scale is 0 (dropped path) skips its branch.

extension Tensor {
    /// `residual + s_b · conv3(gelu(conv2(gelu(conv1(x) + conv1Bias))))` per sample b, for `x`,
    /// `residual: [B, C, H, W]`, `conv1Weight: [D, C, 1, 1]`, `conv1Bias: [D]` (optional),
    /// `conv2Weight: [D, D/groups, k, k]` (stride 1, padding k/2, k odd, no bias), `conv3Weight: [C,
    /// D, 1, 1]` (no bias) and `branchScales` s (B values, all 1 when nil). Under an op tracer, at a
    /// batch smaller than the thread count (one sample's work is never split) or where conv2 would not
    /// take the direct kernel, it runs as the composition of conv2d, gelu, mul and add.
    public static func residualConvMlp(_ x: Tensor, residual: Tensor, conv1Weight w1: Tensor, conv1Bias b1: Tensor?,
                                       conv2Weight w2: Tensor, groups: Int, conv3Weight w3: Tensor, branchScales: [Float]? = nil,
                                       approximate: GELUApproximation) -> Tensor {
        let n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3], p = h * w, d = w1.shape[0], k = w2.shape[2]
        precondition(x.rank == 4 && residual.shape == x.shape && w1.shape == [d, c, 1, 1] && w2.shape == [d, d / groups, k, k]
                     && k % 2 == 1 && d % groups == 0 && w3.shape == [c, d, 1, 1] && (b1 == nil || b1!.shape == [d])
                     && (branchScales == nil || branchScales!.count == n),
                     "residual conv MLP: x \(x.shape), residual \(residual.shape), weights \(w1.shape), \(w2.shape) in \(groups) groups, \(w3.shape) do not fit")
        let geo = Conv2dGeometry(inChannels: d, outChannels: d, kernelH: k, kernelW: k, strideH: 1, strideW: 1,
                                 padH: k / 2, padW: k / 2, groups: groups, inH: h, inW: w)
        var inputs = [x, residual, w1]
        if let b1 { inputs.append(b1) }
        inputs += [w2, w3]
        let recording = GradMode.isEnabled && inputs.contains { $0.node != nil }
        guard OpTrace.current == nil, n >= Parallel.threads, geo.usesDirectKernel,
              !recording || (geo.usesDirectInputGradient && geo.usesDirectWeightGradient) else {
            let a = conv2d(x, weight: w1, bias: b1).gelu(approximate: approximate)
            var branch = conv2d(conv2d(a, weight: w2, bias: nil, padding: (k / 2, k / 2), groups: groups).gelu(approximate: approximate),
                                weight: w3, bias: nil)
            if let branchScales { branch = branch * Tensor(shape: [n, 1, 1, 1], branchScales) }
            return residual + branch
        }
        let plan = ResidualConvMlpPlan(batch: n, channels: c, hidden: d, positions: p, geometry: geo, approximate: approximate,
                                       scales: branchScales ?? [Float](repeating: 1, count: n), w2: w2.storage.pointer)
        let out = Tensor(uninitializedShape: x.shape)
        // the pre-activations conv1 + b1 and conv2, kept for backward (else per-core scratch)
        let saved = recording ? Tensor(uninitializedShape: [2, n, d, h, w]) : nil
        plan.forward(x: x.storage.pointer, residual: residual.storage.pointer, w1: w1.storage.pointer, b1: b1?.storage.pointer,
                     w3: w3.storage.pointer, out: out.storage.pointer, saved: saved?.storage.pointer)
        withExtendedLifetime((x, residual, w1, b1, w2, w3)) {}
        guard recording, let saved else { return out }
        let needs = inputs.map { $0.node != nil }
        let x0 = x.detached(), w10 = w1.detached(), w20 = w2.detached(), w30 = w3.detached()
        return record("residual_conv_mlp", out, inputs: inputs) { g in
            let grads = plan.backward(g.storage.pointer, x: x0.storage.pointer, w1: w10.storage.pointer, w2: w20.storage.pointer,
                                      w3: w30.storage.pointer,
                                      saved: UnsafePointer(saved.storage.pointer), needInput: needs[0], needW1: needs[2],
                                      needB1: b1 != nil && needs[3], needW2: needs[b1 == nil ? 3 : 4], needW3: needs[b1 == nil ? 4 : 5])
            withExtendedLifetime((g, x0, w10, w20, w30, saved)) {}
            var result: [Tensor?] = [grads.x, g, grads.w1]
            if b1 != nil { result.append(grads.b1) }
            return result + [grads.w2, grads.w3]
        }
    }
}

/// Sizes, conv2's weights in the direct kernel's layouts and the per-core split of one
/// `residualConvMlp` call; its forward and backward passes.
private struct ResidualConvMlpPlan: @unchecked Sendable {
    let n: Int, c: Int, d: Int, p: Int, groups: Int
    let approximate: GELUApproximation
    let scales: [Float]
    /// conv2 forward and input-gradient shapes (one group), forward tap offsets and weights (the
    /// input gradient's are built by `backward`).
    let geometry: Conv2dGeometry
    let fwd: DirectConvShape, bwd: DirectConvShape
    let fwdOffsets: [Int]
    let fwdWeights: Tensor
    let workers: Int

    init(batch: Int, channels: Int, hidden: Int, positions: Int, geometry geo: Conv2dGeometry, approximate: GELUApproximation,
         scales: [Float], w2: UnsafePointer<Float>) {
        n = batch; c = channels; d = hidden; p = positions; groups = geo.groups
        self.approximate = approximate; self.scales = scales
        geometry = geo; fwd = geo.directForwardShape; bwd = geo.directInputGradientShape
        fwdOffsets = directConvTapOffsets(fwd)
        fwdWeights = directConvForwardWeights(w2, geo)
        workers = Swift.min(Parallel.threads, batch)
    }

    var cg: Int { d / groups }
    var conv2Taps: Int { fwd.taps }
    /// Samples of core `wk`.
    func samples(_ wk: Int) -> Range<Int> { (n * wk / workers)..<(n * (wk + 1) / workers) }

    /// Runs `body(core)` on every core with single-threaded BLAS.
    func run(_ body: @escaping (Int) -> Void) {
        BLASRuntime.withSingleThreadedBLAS { Parallel.forEach(workers) { body($0) } }
    }

    func forward(x: UnsafePointer<Float>, residual: UnsafePointer<Float>, w1: UnsafePointer<Float>, b1: UnsafePointer<Float>?,
                 w3: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, saved: UnsafeMutablePointer<Float>?) {
        let hp = d * p, per = (saved == nil ? 4 : 2) * hp + fwd.scratchCount
        let scratch = Tensor(uninitializedShape: [workers, per])
        MACCounter.add(scales.filter { $0 != 0 }.count * d * p * conv2Taps)  // conv2 (the GEMMs count themselves)
        let px = UnsafeMutablePointer(mutating: x).sendable, pr = UnsafeMutablePointer(mutating: residual).sendable
        let pw1 = UnsafeMutablePointer(mutating: w1).sendable, pw3 = UnsafeMutablePointer(mutating: w3).sendable
        let pb = b1.map { UnsafeMutablePointer(mutating: $0).sendable }, po = out.sendable, psv = saved?.sendable
        let ps = scratch.storage.pointer.sendable, pwt = fwdWeights.storage.pointer.sendable
        let offs = fwdOffsets
        run { wk in
            let a = ps + wk * per, bb = a + hp
            let conv = bb + hp + (psv == nil ? 2 * hp : 0)
            directConvClearScratch(fwd, conv)
            offs.withUnsafeBufferPointer { offsets in
                for i in samples(wk) {
                    let xi = UnsafePointer(px + i * c * p), oi = po + i * c * p
                    oi.update(from: UnsafePointer(pr + i * c * p), count: c * p)
                    let s = scales[i]
                    if s == 0 { continue }
                    // h1 = conv1(x) + b1 and h2 = conv2(gelu(h1)): saved for backward, else scratch
                    let h1 = psv.map { $0 + i * hp } ?? bb + hp, h2 = psv.map { $0 + (n + i) * hp } ?? bb + 2 * hp
                    sgemm(transA: false, transB: false, m: d, n: p, k: c, a: pw1.base, lda: c, b: xi, ldb: p, c: h1, ldc: p)
                    if let pb { writeRowBias(h1, rows: d, count: p, stride: p, bias: pb.base, adding: true) }
                    approximate.forward(UnsafePointer(h1), a, hp)
                    for g in 0..<groups {
                        directConvGroup(UnsafePointer(a + g * cg * p), UnsafePointer(pwt + g * conv2Taps * cg), h2 + g * cg * p, fwd,
                                        offsets: offsets.baseAddress!, scratch: conv)
                    }
                    approximate.forward(UnsafePointer(h2), bb, hp)
                    sgemm(transA: false, transB: false, m: c, n: p, k: d, alpha: s, a: pw3.base, lda: d, b: UnsafePointer(bb), ldb: p,
                          beta: 1, c: oi, ldc: p)
                }
            }
        }
        withExtendedLifetime(scratch) {}
    }

    struct Gradients { var x, w1, b1, w2, w3: Tensor? }

    func backward(_ gout: UnsafePointer<Float>, x: UnsafePointer<Float>, w1: UnsafePointer<Float>, w2: UnsafePointer<Float>,
                  w3: UnsafePointer<Float>, saved: UnsafePointer<Float>, needInput: Bool, needW1: Bool, needB1: Bool, needW2: Bool, needW3: Bool) -> Gradients {
        let hp = d * p, w1n = d * c, w2n = d * cg * fwd.kh * fwd.kw, w3n = c * d
        // per core: gelu(h1), gelu(h2), dh2, dh1, the weight-gradient and input-gradient scratch, then
        // the core's partial dW1, dW2 (as 16-lane sums, DirectConvWeightGrad.swift), dW3, db1 (zeroed)
        let partials = w1n + 16 * w2n + w3n + d
        let per = 4 * hp + fwd.scratchCount + bwd.scratchCount + partials
        let scratch = Tensor(uninitializedShape: [workers, per])
        let dx = needInput ? Tensor(uninitializedShape: [n, c, fwd.h, fwd.w]) : nil
        let kept = scales.filter { $0 != 0 }.count
        MACCounter.add(kept * d * p * conv2Taps * (needW2 ? 2 : 1))  // conv2's input and weight gradients
        let pg = UnsafeMutablePointer(mutating: gout).sendable, px = UnsafeMutablePointer(mutating: x).sendable
        let pw1 = UnsafeMutablePointer(mutating: w1).sendable, pw3 = UnsafeMutablePointer(mutating: w3).sendable
        let psv = UnsafeMutablePointer(mutating: saved).sendable, pdx = dx?.storage.pointer.sendable
        let bwdWeights = directConvInputGradientWeights(w2, geometry)
        let ps = scratch.storage.pointer.sendable, pwt = bwdWeights.storage.pointer.sendable
        let fo = fwdOffsets, bo = directConvTapOffsets(bwd)
        run { wk in
            let a1 = ps + wk * per, a2 = a1 + hp, dh2 = a2 + hp, dh1 = dh2 + hp
            let convW = dh1 + hp, convX = convW + fwd.scratchCount, acc = convX + bwd.scratchCount
            let dW1 = acc, dW2 = dW1 + w1n, dW3 = dW2 + 16 * w2n, db1 = dW3 + w3n
            acc.update(repeating: 0, count: partials)
            convW.update(repeating: 0, count: fwd.scratchCount)  // plane borders and junk columns stay zero
            directConvClearScratch(bwd, convX)
            let dyRows = convW + fwd.planes * fwd.planeStride
            fo.withUnsafeBufferPointer { fwdOffs in
                bo.withUnsafeBufferPointer { bwdOffs in
                    for i in samples(wk) {
                        let s = scales[i], xi = UnsafePointer(px + i * c * p), gi = UnsafePointer(pg + i * c * p)
                        if s == 0 {
                            pdx.map { ($0 + i * c * p).update(repeating: 0, count: c * p) }
                            continue
                        }
                        let h1 = UnsafePointer(psv + i * hp), h2 = UnsafePointer(psv + (n + i) * hp)
                        // dh2 = (s·W3ᵀ·g) ⊙ gelu′(h2), with gelu(h2) from the same pass; dW3 += s·g·gelu(h2)ᵀ
                        sgemm(transA: true, transB: false, m: d, n: p, k: c, alpha: s, a: pw3.base, lda: d, b: gi, ldb: p, c: dh2, ldc: p)
                        approximate.forwardBackward(h2, UnsafePointer(dh2), a2, dh2, hp)
                        if needW3 {
                            sgemm(transA: false, transB: true, m: c, n: d, k: p, alpha: s, a: gi, lda: p, b: UnsafePointer(a2), ldb: p,
                                  beta: 1, c: dW3, ldc: d)
                        }
                        // conv2: dh1 = conv2ᵀ(dh2) ⊙ gelu′(h1), with gelu(h1) from the same pass; dW2 from gelu(h1) and dh2
                        for g in 0..<groups {
                            directConvGroup(UnsafePointer(dh2 + g * cg * p), UnsafePointer(pwt + g * bwd.taps * bwd.cout), dh1 + g * cg * p, bwd,
                                            offsets: bwdOffs.baseAddress!, scratch: convX)
                        }
                        approximate.forwardBackward(h1, UnsafePointer(dh1), a1, dh1, hp)
                        if needW2 {
                            for g in 0..<groups {
                                directConvFillPlanes(UnsafePointer(a1 + g * cg * p), fwd, convW)
                                directConvFillOutputRows(UnsafePointer(dh2 + g * cg * p), fwd, dyRows)
                                directConvWeightGradGroup(UnsafePointer(convW), UnsafePointer(dyRows), fwd, offsets: fwdOffs.baseAddress!,
                                                          lanes: dW2 + g * cg * conv2Taps * 16)
                            }
                        }
                        if needB1 { for r in 0..<d { db1[r] += vsum(dh1 + r * p, p) } }
                        // dW1 += dh1·xᵀ; dx = W1ᵀ·dh1
                        if needW1 {
                            sgemm(transA: false, transB: true, m: d, n: c, k: p, a: UnsafePointer(dh1), lda: p, b: xi, ldb: p,
                                  beta: 1, c: dW1, ldc: c)
                        }
                        if let pdx {
                            sgemm(transA: true, transB: false, m: c, n: p, k: d, a: pw1.base, lda: c, b: UnsafePointer(dh1), ldb: p,
                                  c: pdx + i * c * p, ldc: p)
                        }
                    }
                }
            }
        }
        // the cores' partial weight gradients, added in core order
        let firstPartial = ps + 4 * hp + fwd.scratchCount + bwd.scratchCount
        func total(_ offset: Int, _ count: Int, _ shape: [Int]) -> Tensor {
            sumOfPartials(firstPartial + offset, copies: workers, stride: per, count: count, shape: shape)
        }
        var w2: Tensor? = nil
        if needW2 {
            let t = Tensor.zeros([d, cg, fwd.kh, fwd.kw])
            directConvWeightGradSumLanes(UnsafePointer(firstPartial + w1n), chunks: workers, stride: per, count: w2n, into: t.storage.pointer)
            w2 = t
        }
        let grads = Gradients(x: dx, w1: needW1 ? total(0, w1n, [d, c, 1, 1]) : nil, b1: needB1 ? total(w1n + 16 * w2n + w3n, d, [d]) : nil,
                              w2: w2, w3: needW3 ? total(w1n + 16 * w2n, w3n, [c, d, 1, 1]) : nil)
        withExtendedLifetime((scratch, bwdWeights)) {}
        return grads
    }
}
