// Bicubic resampling of position embeddings, as timm's `resample_abs_pos_embed` does it (PyTorch's
// antialiased bicubic interpolation, docs/finetuning.md §3).

import Tensor

/// The per-output weights of a 1-D antialiased bicubic resize from `from` to `to` samples: output
/// `i` is `Σ w·input[j]` over its `(j, w)` pairs. Centre `(i + 0.5)·s` with `s = from/to`, kernel
/// the cubic with a = −0.5 stretched by `max(s, 1)` (so downsampling averages), taps outside the
/// input dropped and the weights renormalised to sum to 1.
public func bicubicResampleWeights(from: Int, to: Int) -> [[(index: Int, weight: Float)]] {
    func cubic(_ x: Double) -> Double {
        let a = -0.5, x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }
    let scale = Double(from) / Double(to)
    let stretch = max(scale, 1), support = 2 * stretch
    return (0..<to).map { i in
        let centre = scale * (Double(i) + 0.5)
        let lo = max(Int(centre - support + 0.5), 0), hi = min(Int(centre + support + 0.5), from)
        var taps: [(Int, Double)] = []
        for j in lo..<max(hi, lo) { taps.append((j, cubic((Double(j) - centre + 0.5) / stretch))) }
        let total = taps.reduce(0) { $0 + $1.1 }
        return taps.map { (index: $0.0, weight: Float(total != 0 ? $0.1 / total : 0)) }
    }
}

/// Resizes a stack of `[H, W]` grids to `[H', W']` with `bicubicResampleWeights` on each axis.
/// `channelsLast`: the values are `[H, W, C]` (token sequences); otherwise `[C, H, W]` (maps).
public func bicubicResample(_ values: [Float], channels c: Int, from: (Int, Int), to: (Int, Int), channelsLast: Bool) -> [Float] {
    let wy = bicubicResampleWeights(from: from.0, to: to.0), wx = bicubicResampleWeights(from: from.1, to: to.1)
    func at(_ y: Int, _ x: Int, _ ch: Int, _ w: Int, _ h: Int) -> Int { channelsLast ? (y * w + x) * c + ch : (ch * h + y) * w + x }
    // Rows first: [from.0 × to.1] per channel, then columns.
    var rows = [Float](repeating: 0, count: c * from.0 * to.1)
    for ch in 0..<c {
        for y in 0..<from.0 {
            for ox in 0..<to.1 {
                var s: Float = 0
                for (x, w) in wx[ox] { s += w * values[at(y, x, ch, from.1, from.0)] }
                rows[(ch * from.0 + y) * to.1 + ox] = s
            }
        }
    }
    var out = [Float](repeating: 0, count: c * to.0 * to.1)
    for ch in 0..<c {
        for oy in 0..<to.0 {
            for ox in 0..<to.1 {
                var s: Float = 0
                for (y, w) in wy[oy] { s += w * rows[(ch * from.0 + y) * to.1 + ox] }
                out[at(oy, ox, ch, to.1, to.0)] = s
            }
        }
    }
    return out
}
