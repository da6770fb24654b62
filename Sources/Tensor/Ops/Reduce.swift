import Foundation

// Reductions. Each reduces one axis at a time as a [outer, n, inner] view; several axes reduce in
// sequence (adjacent axes are merged first).

/// out[o, i] = Σ_k x[o, k, i]
func sumKernel(_ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int, _ out: UnsafeMutablePointer<Float>) {
    let px = UnsafeMutablePointer(mutating: x).sendable, po = out.sendable
    if inner == 1 {
        if outer < Parallel.threads && n >= 65_536 {
            // few long rows (e.g. the sum of everything): split each row across the threads
            for o in 0..<outer {
                let chunks = Parallel.threads
                var partial = [Double](repeating: 0, count: chunks)
                partial.withUnsafeMutableBufferPointer { pp in
                    let pps = pp.baseAddress!.sendable
                    Parallel.forEach(chunks) { c in
                        let lo = n * c / chunks, hi = n * (c + 1) / chunks
                        pps[c] = Double(vsum(UnsafePointer(px + o * n + lo), hi - lo))
                    }
                }
                po[o] = Float(partial.reduce(0, +))
            }
            return
        }
        Parallel.forRange(outer, grain: max(1, 32_768 / max(n, 1))) { r in
            for o in r { po[o] = vsum(px + o * n, n) }
        }
        return
    }
    if outer >= Parallel.threads {
        Parallel.forRange(outer, grain: max(1, 32_768 / max(n * inner, 1))) { r in
            for o in r {
                let dst = po + o * inner
                for i in 0..<inner { dst[i] = 0 }
                for k in 0..<n {
                    let src = px + (o * n + k) * inner
                    for i in 0..<inner { dst[i] += src[i] }
                }
            }
        }
    } else {
        for o in 0..<outer {
            Parallel.forRange(inner, grain: max(1, 32_768 / max(n, 1))) { r in
                let dst = po + o * inner
                for i in r { dst[i] = 0 }
                for k in 0..<n {
                    let src = px + (o * n + k) * inner
                    for i in r { dst[i] += src[i] }
                }
            }
        }
    }
}

extension Tensor {
    static func split(_ shape: [Int], axis: Int) -> (Int, Int, Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// Sum over `axes` (all axes when empty).
    public func sum(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes)
        var kept = shape
        for a in ax { kept[a] = 1 }
        let finalShape = keepDims ? kept : shape.enumerated().filter { !ax.contains($0.offset) }.map { $0.element }
        // reduce each run of adjacent axes as one [outer, n, inner] pass, last run first (the
        // shape keeps its rank with 1s, so the earlier axes keep their positions)
        var runs: [ClosedRange<Int>] = []
        for a in ax {
            if let last = runs.last, last.upperBound == a - 1 { runs[runs.count - 1] = last.lowerBound...a } else { runs.append(a...a) }
        }
        var cur = detached()
        for run in runs.reversed() {
            let s0 = cur.shape
            let outer = s0[..<run.lowerBound].reduce(1, *), n = s0[run].reduce(1, *), inner = s0[(run.upperBound + 1)...].reduce(1, *)
            var s = s0
            for a in run { s[a] = 1 }
            let out = Tensor(uninitializedShape: s)
            sumKernel(cur.storage.pointer, outer: outer, n: n, inner: inner, out.storage.pointer)
            cur = out
        }
        let result = cur.reshapedNoGrad(finalShape)
        let inShape = shape
        return Tensor.record("sum", result, inputs: [self], attributes: ["axes": .ints(ax), "keepDims": .bool(keepDims)]) { g in [g.reshapedNoGrad(kept).expanded(to: inShape)] }
    }

    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { sum(axes: [axis], keepDims: keepDims) }

    /// Mean over `axes` (all axes when empty).
    public func mean(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
        let ax = normalizedAxes(axes)
        let n = ax.reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepDims: keepDims).scaled(1 / Float(n))
    }

    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { mean(axes: [axis], keepDims: keepDims) }

    /// Maximum along one axis; the gradient goes to the first maximal element.
    public func max(axis: Int, keepDims: Bool = false) -> Tensor {
        let a = Shape.axis(axis, rank: rank)
        let (outer, n, inner) = Tensor.split(shape, axis: a)
        var kept = shape; kept[a] = 1
        let out = Tensor(uninitializedShape: kept)
        var argmax = [Int32](repeating: 0, count: outer * inner)
        let px = storage.pointer, po = out.storage.pointer
        argmax.withUnsafeMutableBufferPointer { am in
            for o in 0..<outer {
                for i in 0..<inner {
                    var best = px[o * n * inner + i], bi = 0
                    for k in 1..<Swift.max(n, 1) {
                        let v = px[(o * n + k) * inner + i]
                        if v > best { best = v; bi = k }
                    }
                    po[o * inner + i] = best
                    am[o * inner + i] = Int32(bi)
                }
            }
        }
        let result = out.reshapedNoGrad(keepDims ? kept : shape.enumerated().filter { $0.offset != a }.map { $0.element })
        let inShape = shape
        return Tensor.record("max", result, inputs: [self], attributes: ["axis": .int(a), "keepDims": .bool(keepDims)]) { g in
            let dx = Tensor.zeros(inShape)
            let pg = g.storage.pointer, pd = dx.storage.pointer
            for o in 0..<outer {
                for i in 0..<inner {
                    pd[(o * n + Int(argmax[o * inner + i])) * inner + i] = pg[o * inner + i]
                }
            }
            return [dx]
        }
    }

    /// Maximum over all elements.
    public func max() -> Tensor { reshaped([-1]).max(axis: 0) }

    /// Sums this tensor down to `target`, a shape it was broadcast from (undoes broadcasting).
    public func sum(toShape target: [Int]) -> Tensor {
        if target == shape { return self }
        let lead = rank - target.count
        precondition(lead >= 0, "sum(toShape:): \(shape) has lower rank than \(target)")
        var axes = Array(0..<lead)
        for (i, d) in target.enumerated() where d == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        if axes.isEmpty { return reshaped(target) }
        return sum(axes: axes, keepDims: true).reshaped(target)
    }

    func normalizedAxes(_ axes: [Int]) -> [Int] {
        if axes.isEmpty { return Array(0..<rank) }
        return Array(Set(axes.map { Shape.axis($0, rank: rank) })).sorted()
    }
}
