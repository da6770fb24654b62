import Foundation

// Dropout and drop-path (stochastic depth), from a seeded generator. The mask (already scaled by
// 1/(1−p)) is saved for backward.

extension Tensor {
    /// Zeroes each element with probability `p` and scales the rest by 1/(1−p). Identity when `p`
    /// is 0 or not `training`.
    public func dropout(_ p: Float, training: Bool, generator: inout RandomGenerator) -> Tensor {
        guard training, p > 0 else { return self }
        precondition(p < 1, "dropout probability \(p) must be below 1")
        let mask = Tensor(uninitializedShape: shape)
        let pm = mask.storage.pointer
        let keep = 1 / (1 - p)
        for i in 0..<count { pm[i] = generator.nextFloat() >= p ? keep : 0 }
        return applyMask(mask, op: "dropout")
    }

    /// Per-sample stochastic depth: zeroes the whole residual branch of a sample (dimension
    /// `batchAxis`, 0 unless the batch is stacked inside the map) with probability `p` and scales the
    /// kept ones by 1/(1−p) (timm's `drop_path`, scale_by_keep). One draw per sample, in sample order.
    public func dropPath(_ p: Float, training: Bool, batchAxis: Int = 0, generator: inout RandomGenerator) -> Tensor {
        guard training, p > 0 else { return self }
        precondition(p < 1, "drop-path probability \(p) must be below 1")
        var maskShape = [Int](repeating: 1, count: rank); maskShape[batchAxis] = shape[batchAxis]
        return self * Tensor(shape: maskShape, Tensor.dropPathScales(shape[batchAxis], p, generator: &generator))
    }

    /// Drop-path's per-sample factors: 0 with probability `p`, else 1/(1−p), one draw per sample in order.
    public static func dropPathScales(_ count: Int, _ p: Float, generator: inout RandomGenerator) -> [Float] {
        let keep = 1 / (1 - p)
        return (0..<count).map { _ in generator.nextFloat() >= p ? keep : 0 }
    }

    func applyMask(_ mask: Tensor, op: String) -> Tensor {
        let out = zipMap(self, mask) { x, m, o, n in for i in 0..<n { o[i] = x[i] * m[i] } }
        return Tensor.record(op, out, inputs: [self]) { g in
            [zipMap(g, mask) { g, m, o, n in for i in 0..<n { o[i] = g[i] * m[i] } }]
        }
    }
}
