import Foundation

// Softmax, log-softmax and cross-entropy: row kernels over the last axis (other axes are moved
// last first). Backward reuses the saved output.

/// y = softmax(x) along a row of length n (y may be x). Max-shifted, so large logits do not overflow.
@inline(__always)
func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let m = vmax(x, n)
    let inv = 1 / expShiftedSum(x, y, n, shift: m)
    for i in 0..<n { y[i] *= inv }
}

/// In-place softmax of a row. A separate function from `softmaxRow(x, x, n)`: with two pointers
/// that overlap, the vectorizer's runtime alias check fails and the exp loop runs scalar.
@inline(__always)
func softmaxRowInPlace(_ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let m = vmax(y, n)
    let inv = 1 / expShiftedSum(UnsafePointer(y), y, n, shift: m)
    for i in 0..<n { y[i] *= inv }
}

/// dx = scale · y ⊙ (g − Σ g⊙y) along a row of length n, the softmax backward (softmax, attention and
/// GPSA's mix share it); returns Σ g⊙y. `dx` may be `g` (vector loads and stores, so the in-place
/// call keeps its speed).
@inline(__always) @discardableResult
func softmaxBackwardRow(_ y: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int,
                        scale: Float = 1) -> Float {
    let dot = vdot(g, y, n)
    let dv = Vec(repeating: dot), sv = Vec(repeating: scale)
    var i = 0
    while i + 16 <= n { vstore(vload(y + i) * (vload(g + i) - dv) * sv, dx + i); i += 16 }
    while i < n { dx[i] = y[i] * (g[i] - dot) * scale; i += 1 }
    return dot
}

/// log Σ e^{x[i]} over a row of length n, max-shifted so large logits do not overflow; leaves
/// e^{x[i] − max} in `exps` (which may be x) and returns Σ exps beside the result. The one
/// log-sum-exp of the engine: log-softmax, the cross-entropy and the evaluator's loss use it.
@inline(__always)
func logSumExpRow(_ x: UnsafePointer<Float>, _ n: Int, exps: UnsafeMutablePointer<Float>) -> (lse: Float, sum: Float) {
    let m = vmax(x, n)
    let s = expShiftedSum(x, exps, n, shift: m)
    return (m + Foundation.log(s), s)
}

/// y = log softmax(x) along a row: x − (m + log Σ e^{x−m}).
@inline(__always)
func logSoftmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let lse = logSumExpRow(x, n, exps: y).lse
    for i in 0..<n { y[i] = x[i] - lse }
}

extension Tensor {
    /// Applies `body` to the tensor with `axis` moved last and moves it back.
    func alongLastAxis(_ axis: Int, _ body: (Tensor) -> Tensor) -> Tensor {
        let a = Shape.axis(axis, rank: rank)
        if a == rank - 1 { return body(self) }
        return body(transposed(a, -1)).transposed(a, -1)
    }

    /// A row kernel along `axis`: `forward(x, y, n)` per row, and `backward(y, g, dx, n)` per row
    /// from the saved output; rows are split across the cores.
    private func rowwise(_ op: String, axis: Int,
                         forward: @escaping (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
                         backward: @escaping (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        alongLastAxis(axis) { x in
            let n = x.shape.last!, rows = x.count / n
            let out = Tensor(uninitializedShape: x.shape)
            let px = x.storage.pointer.sendable, po = out.storage.pointer.sendable
            Parallel.forRange(rows, grain: Swift.max(1, 8192 / n)) { r in
                for i in r { forward(px + i * n, po + i * n, n) }
            }
            return Tensor.record(op, out, inputs: [x]) { g in
                let dx = Tensor(uninitializedShape: g.shape)
                let py = out.storage.pointer.sendable, pg = g.storage.pointer.sendable, pd = dx.storage.pointer.sendable
                Parallel.forRange(rows, grain: Swift.max(1, 8192 / n)) { r in
                    for i in r { backward(py + i * n, pg + i * n, pd + i * n, n) }
                }
                return [dx]
            }
        }
    }

    public func softmax(axis: Int = -1) -> Tensor {
        rowwise("softmax", axis: axis, forward: { softmaxRow($0, $1, $2) },
                backward: { softmaxBackwardRow($0, $1, $2, $3) })
    }

    public func logSoftmax(axis: Int = -1) -> Tensor {
        rowwise("log_softmax", axis: axis, forward: { logSoftmaxRow($0, $1, $2) }) { y, g, dx, n in
            // dx = g − softmax · Σg
            let s = vsum(g, n)
            for k in 0..<n { dx[k] = g[k] - fastExp(y[k]) * s }
        }
    }

    /// log Σ_k e^{x[b, k]} for each row of `logits: [B, K]`, from the kernel the cross-entropy uses
    /// (so a validation loss computed from it matches the training loss's arithmetic).
    public func rowLogSumExp() -> [Float] {
        precondition(rank == 2, "rowLogSumExp: logits \(shape) must be [B, K]")
        let b = shape[0], k = shape[1]
        let scratch = Tensor(uninitializedShape: [k])
        let px = storage.pointer, ps = scratch.storage.pointer
        return (0..<b).map { logSumExpRow(px + $0 * k, k, exps: ps).lse }
    }

    /// Mean cross-entropy of `logits: [B, K]` against integer `labels` with label smoothing ε:
    /// the target is (1−ε)·onehot + ε/K. Fused log-softmax forward and backward.
    public static func crossEntropy(logits: Tensor, labels: [Int], labelSmoothing: Float = 0) -> Tensor {
        precondition(logits.rank == 2 && logits.shape[0] == labels.count,
                     "crossEntropy: logits \(logits.shape) for \(labels.count) labels")
        let k = logits.shape[1]
        for l in labels { precondition(l >= 0 && l < k, "crossEntropy: label \(l) outside 0..<\(k)") }
        let targets = Tensor.zeros(logits.shape)
        let pt = targets.storage.pointer
        let off = labelSmoothing / Float(k), on = 1 - labelSmoothing + off
        for b in 0..<labels.count {
            for j in 0..<k { pt[b * k + j] = off }
            pt[b * k + labels[b]] = on
        }
        return softCrossEntropy(logits: logits, targets: targets)
    }

    /// Mean cross-entropy of `logits: [B, K]` against soft targets `[B, K]` (rows summing to 1),
    /// with optional label smoothing applied to the targets: (1−ε)·t + ε/K.
    public static func crossEntropy(logits: Tensor, targets: Tensor, labelSmoothing: Float = 0) -> Tensor {
        precondition(targets.shape == logits.shape, "crossEntropy: targets \(targets.shape) for logits \(logits.shape)")
        if labelSmoothing == 0 { return softCrossEntropy(logits: logits, targets: targets.detached()) }
        let k = Float(logits.shape[1])
        return softCrossEntropy(logits: logits, targets: targets.detached().affine(scale: 1 - labelSmoothing, shift: labelSmoothing / k))
    }

    static func softCrossEntropy(logits: Tensor, targets: Tensor) -> Tensor {
        let bsz = logits.shape[0], k = logits.shape[1]
        let probs = Tensor(uninitializedShape: logits.shape)
        let px = logits.storage.pointer, pp = probs.storage.pointer, pt = targets.storage.pointer
        var total: Double = 0
        let rowSums = Tensor(uninitializedShape: [bsz, 1])
        let prs = rowSums.storage.pointer
        for b in 0..<bsz {
            let x = px + b * k, p = pp + b * k, t = pt + b * k
            let (lse, s) = logSumExpRow(x, k, exps: p)
            let inv = 1 / s
            var row: Double = 0
            var tsum: Double = 0
            for j in 0..<k { row += Double(t[j]) * (Double(lse) - Double(x[j])); p[j] *= inv; tsum += Double(t[j]) }
            prs[b] = Float(tsum)
            total += row
        }
        let out = Tensor(Float(total / Double(bsz)))
        return record("cross_entropy", out, inputs: [logits]) { g in
            // d/dx_j Σ_i t_i·(lse − x_i) = p_j·Σt − t_j, averaged over the batch
            let scale = g.item / Float(bsz)
            let dx = Tensor(uninitializedShape: [bsz, k])
            let pp = probs.storage.pointer, pt = targets.storage.pointer, pd = dx.storage.pointer, prs = rowSums.storage.pointer
            for b in 0..<bsz {
                let ts = prs[b]
                for j in 0..<k { pd[b * k + j] = (pp[b * k + j] * ts - pt[b * k + j]) * scale }
            }
            return [dx]
        }
    }
}
