import Foundation

// Movement ops: reshape (shares storage), permute, slice, concatenate, gather (copies).

extension Tensor {
    func resolve(_ newShape: [Int]) -> [Int] {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            s[i] = count / known
        }
        precondition(s.reduce(1, *) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        return s
    }

    func reshapedNoGrad(_ newShape: [Int]) -> Tensor { Tensor(storage: storage, shape: resolve(newShape)) }

    /// Same elements, new shape (one dimension may be -1). Shares storage.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        let s = resolve(newShape)
        if s == shape { return self }
        let inShape = shape
        return Tensor.record("reshape", Tensor(storage: storage, shape: s), inputs: [self]) { g in [g.reshapedNoGrad(inShape)] }
    }

    /// Flattens dimensions `start...end` into one.
    public func flattened(from start: Int = 0, to end: Int = -1) -> Tensor {
        let s = Shape.axis(start, rank: rank), e = Shape.axis(end, rank: rank)
        let merged = shape[s...e].reduce(1, *)
        return reshaped(Array(shape[..<s]) + [merged] + Array(shape[(e + 1)...]))
    }

    /// Reorders dimensions: result dim i is input dim `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permute order \(order) for rank \(rank)")
        if order == Array(0..<rank) { return self }
        let out = Tensor(uninitializedShape: order.map { shape[$0] })
        permuteCopy(from: storage.pointer, shape: shape, order: order, to: out.storage.pointer)
        var inverse = [Int](repeating: 0, count: rank)
        for (i, o) in order.enumerated() { inverse[o] = i }
        return Tensor.record("permute", out, inputs: [self], attributes: ["order": .ints(order)]) { g in [g.permuted(inverse)] }
    }

    /// Swaps two dimensions.
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(Shape.axis(a, rank: rank), Shape.axis(b, rank: rank))
        return permuted(order)
    }

    /// Elements `range` along `axis` (copy).
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = Shape.axis(axis, rank: rank)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[a], "slice \(range) out of 0..<\(shape[a]) on axis \(a)")
        if range.count == shape[a] { return self }
        let (outer, n, inner) = Tensor.split(shape, axis: a)
        var s = shape; s[a] = range.count
        let out = Tensor(uninitializedShape: s)
        let src = storage.pointer, dst = out.storage.pointer
        let chunk = range.count * inner
        for o in 0..<outer {
            (dst + o * chunk).update(from: src + (o * n + range.lowerBound) * inner, count: chunk)
        }
        let inShape = shape
        return Tensor.record("slice", out, inputs: [self], attributes: ["axis": .int(a), "start": .int(range.lowerBound), "end": .int(range.upperBound)]) { g in
            let dx = Tensor.zeros(inShape)
            let pg = g.storage.pointer, pd = dx.storage.pointer
            for o in 0..<outer { (pd + (o * n + range.lowerBound) * inner).update(from: pg + o * chunk, count: chunk) }
            return [dx]
        }
    }

    /// Index `i` along `axis`, removing the axis.
    public func select(axis: Int, index: Int) -> Tensor {
        let a = Shape.axis(axis, rank: rank)
        var s = shape; s.remove(at: a)
        return slice(axis: a, index..<(index + 1)).reshaped(s)
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat of nothing")
        let a = Shape.axis(axis, rank: parts[0].rank)
        var s = parts[0].shape
        for p in parts.dropFirst() {
            var q = p.shape; q[a] = s[a]
            precondition(q == s, "concat: shape \(p.shape) does not fit \(parts[0].shape) along axis \(a)")
        }
        s[a] = parts.reduce(0) { $0 + $1.shape[a] }
        let (outer, total, inner) = Tensor.split(s, axis: a)
        let out = Tensor(uninitializedShape: s)
        var offset = 0
        var ranges: [Range<Int>] = []
        for p in parts {
            let n = p.shape[a]
            let src = p.storage.pointer, dst = out.storage.pointer
            for o in 0..<outer { (dst + (o * total + offset) * inner).update(from: src + o * n * inner, count: n * inner) }
            ranges.append(offset..<(offset + n))
            offset += n
        }
        return record("concat", out, inputs: parts, attributes: ["axis": .int(a)]) { g in ranges.map { g.slice(axis: a, $0) } }
    }

    /// Rows `indices` along `axis` (index_select); the gradient scatters back with accumulation.
    public func gather(_ indices: [Int], axis: Int) -> Tensor {
        let a = Shape.axis(axis, rank: rank)
        let (outer, n, inner) = Tensor.split(shape, axis: a)
        for i in indices { precondition(i >= 0 && i < n, "gather index \(i) out of 0..<\(n)") }
        var s = shape; s[a] = indices.count
        let out = Tensor(uninitializedShape: s)
        let src = storage.pointer, dst = out.storage.pointer
        let m = indices.count
        for o in 0..<outer {
            for (j, i) in indices.enumerated() { (dst + (o * m + j) * inner).update(from: src + (o * n + i) * inner, count: inner) }
        }
        let inShape = shape
        return Tensor.record("gather", out, inputs: [self], attributes: ["axis": .int(a), "indices": .ints(indices)]) { g in
            let dx = Tensor.zeros(inShape)
            let pg = g.storage.pointer, pd = dx.storage.pointer
            for o in 0..<outer {
                for (j, i) in indices.enumerated() {
                    let d = pd + (o * n + i) * inner, s = pg + (o * m + j) * inner
                    for k in 0..<inner { d[k] += s[k] }
                }
            }
            return [dx]
        }
    }
}

/// Strided copy for permute: out[i0..ik] = in[order-mapped]. The innermost output dimension runs
/// as a loop with the matching input stride (a plain copy when that stride is 1).
func permuteCopy(from src: UnsafeMutablePointer<Float>, shape: [Int], order: [Int], to dst: UnsafeMutablePointer<Float>) {
    let inStrides = Shape.strides(shape)
    let outShape = order.map { shape[$0] }
    let st = order.map { inStrides[$0] }
    let rank = outShape.count
    let inner = outShape[rank - 1], innerStride = st[rank - 1]
    let rows = outShape.dropLast().reduce(1, *)
    let ps = src.sendable, pd = dst.sendable
    Parallel.forRange(rows, grain: max(1, 16_384 / max(inner, 1))) { rr in
        // decode the first row index, then step like an odometer
        var idx = [Int](repeating: 0, count: max(rank - 1, 0))
        var rem = rr.lowerBound
        var off = 0
        for d in stride(from: rank - 2, through: 0, by: -1) {
            idx[d] = rem % outShape[d]; rem /= outShape[d]; off += idx[d] * st[d]
        }
        for r in rr {
            let o = pd + r * inner
            let s = ps + off
            if innerStride == 1 { o.update(from: s, count: inner) } else { for k in 0..<inner { o[k] = s[k * innerStride] } }
            var d = rank - 2
            while d >= 0 {
                idx[d] += 1; off += st[d]
                if idx[d] < outShape[d] { break }
                off -= idx[d] * st[d]; idx[d] = 0; d -= 1
            }
        }
    }
}
