#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Colour and tone operations on 8-bit RGB images with PIL's semantics (the auto-augment ops are
/// defined in terms of PIL's `ImageOps` / `ImageEnhance`): enhancement factors blend with a
/// "degenerate" image, `out = trunc(degenerate + f·(img − degenerate))` clipped to 0…255.
public extension RGBImage {
    /// Maps every byte of channel c through `tables[c]` (three 256-entry tables).
    mutating func applyLookupTables(_ r: [UInt8], _ g: [UInt8], _ b: [UInt8]) {
        precondition(r.count == 256 && g.count == 256 && b.count == 256)
        let n = width * height
        pixels.withUnsafeMutableBufferPointer { buffer in
            let p = buffer.baseAddress!
            r.withUnsafeBufferPointer { tr in
                g.withUnsafeBufferPointer { tg in
                    b.withUnsafeBufferPointer { tb in
                        for i in 0..<n {
                            p[3 * i] = tr[Int(p[3 * i])]
                            p[3 * i + 1] = tg[Int(p[3 * i + 1])]
                            p[3 * i + 2] = tb[Int(p[3 * i + 2])]
                        }
                    }
                }
            }
        }
    }

    /// Applies one 256-entry table to all channels.
    mutating func applyLookupTable(_ table: [UInt8]) { applyLookupTables(table, table, table) }

    /// Per-channel 256-bin histograms.
    func histograms() -> [[Int]] {
        var h = [[Int]](repeating: [Int](repeating: 0, count: 256), count: 3)
        pixels.withUnsafeBufferPointer { buffer in
            let p = buffer.baseAddress!
            var h0 = [Int](repeating: 0, count: 256), h1 = h0, h2 = h0
            for i in 0..<(width * height) {
                h0[Int(p[3 * i])] &+= 1; h1[Int(p[3 * i + 1])] &+= 1; h2[Int(p[3 * i + 2])] &+= 1
            }
            h = [h0, h1, h2]
        }
        return h
    }

    /// PIL luminance `L = (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16` of every pixel.
    func luminance() -> [UInt8] {
        let n = width * height
        return pixels.withUnsafeBufferPointer { buffer in
            let p = buffer.baseAddress!
            return [UInt8](unsafeUninitializedCapacity: max(n, 1)) { out, count in
                for i in 0..<n {
                    let v = UInt32(p[3 * i]) &* 19595 &+ UInt32(p[3 * i + 1]) &* 38470 &+ UInt32(p[3 * i + 2]) &* 7471 &+ 0x8000
                    out[i] = UInt8(truncatingIfNeeded: v >> 16)
                }
                count = n
            }
        }
    }

    // MARK: - ImageOps

    /// Per channel, stretches [min, max] to [0, 255] (PIL `autocontrast`, cutoff 0); flat channels are unchanged.
    mutating func autocontrast() {
        let tables = histograms().map { h -> [UInt8] in
            guard let lo = h.firstIndex(where: { $0 > 0 }), let hi = h.lastIndex(where: { $0 > 0 }), hi > lo else {
                return (0..<256).map { UInt8($0) }
            }
            let scale = 255.0 / Double(hi - lo)
            let offset = -Double(lo) * scale
            return (0..<256).map { UInt8(min(max(Int(Double($0) * scale + offset), 0), 255)) }
        }
        applyLookupTables(tables[0], tables[1], tables[2])
    }

    /// Per-channel histogram equalisation (PIL `equalize`).
    mutating func equalize() {
        let tables = histograms().map { h -> [UInt8] in
            let used = h.filter { $0 > 0 }
            let identity = (0..<256).map { UInt8($0) }
            guard used.count > 1 else { return identity }
            let step = (used.reduce(0, +) - used[used.count - 1]) / 255
            guard step > 0 else { return identity }
            var n = step / 2
            var table = [UInt8](repeating: 0, count: 256)
            for i in 0..<256 {
                table[i] = UInt8(min(n / step, 255))
                n += h[i]
            }
            return table
        }
        applyLookupTables(tables[0], tables[1], tables[2])
    }

    /// `p → 255 − p`.
    mutating func invert() {
        applyLookupTable((0..<256).map { UInt8(255 - $0) })
    }

    /// Keeps the `bits` most significant bits of every channel (PIL `posterize`); `bits ≥ 8` is the
    /// identity and `bits ≤ 0` gives black.
    mutating func posterize(bits: Int) {
        guard bits < 8 else { return }
        let keep = max(bits, 0)
        let mask = UInt8(truncatingIfNeeded: ~((1 << (8 - keep)) - 1))
        applyLookupTable((0..<256).map { UInt8($0) & mask })
    }

    /// Inverts every channel value `≥ threshold` (PIL `solarize`).
    mutating func solarize(threshold: Int) {
        applyLookupTable((0..<256).map { $0 < threshold ? UInt8($0) : UInt8(255 - $0) })
    }

    // MARK: - ImageEnhance

    /// `f·p` (PIL `Brightness`).
    mutating func enhanceBrightness(_ factor: Double) {
        applyLookupTable(Self.blendTable(degenerate: 0, factor: factor))
    }

    /// Blends with the mean luminance (PIL `Contrast`).
    mutating func enhanceContrast(_ factor: Double) {
        let l = luminance()
        let mean = l.isEmpty ? 0 : Int(Double(l.reduce(0) { $0 + Int($1) }) / Double(l.count) + 0.5)
        applyLookupTable(Self.blendTable(degenerate: mean, factor: factor))
    }

    /// Blends every pixel with its own luminance (PIL `Color`, i.e. saturation).
    mutating func enhanceColor(_ factor: Double) {
        let l = luminance()
        let f = Float(factor)
        let n = width * height
        pixels.withUnsafeMutableBufferPointer { buffer in
            let p = buffer.baseAddress!
            for i in 0..<n {
                let g = Float(l[i])
                for c in 0..<3 {
                    p[3 * i + c] = truncByte(g + f * (Float(p[3 * i + c]) - g))
                }
            }
        }
    }

    /// Blends with the image smoothed by the 3×3 kernel (1 1 1 / 1 5 1 / 1 1 1)/13, border pixels
    /// unchanged (PIL `Sharpness`).
    mutating func enhanceSharpness(_ factor: Double) {
        let w = width, h = height
        guard w > 2 && h > 2 else { return }
        let f = Float(factor)
        let original = pixels
        original.withUnsafeBufferPointer { srcBuffer in
            let src = srcBuffer.baseAddress!
            pixels.withUnsafeMutableBufferPointer { buffer in
                let p = buffer.baseAddress!
                let stride = w * 3
                for y in 1..<(h - 1) {
                    for x in 1..<(w - 1) {
                        let o = y * stride + x * 3
                        for c in 0..<3 {
                            let q = o + c
                            var s = Int(src[q - stride - 3]) + Int(src[q - stride]) + Int(src[q - stride + 3])
                            s += Int(src[q - 3]) + 5 * Int(src[q]) + Int(src[q + 3])
                            s += Int(src[q + stride - 3]) + Int(src[q + stride]) + Int(src[q + stride + 3])
                            let smooth = Float((s * 2 + 13) / 26)  // round(s / 13)
                            p[q] = truncByte(smooth + f * (Float(src[q]) - smooth))
                        }
                    }
                }
            }
        }
    }

    /// A 3×3 Gaussian blur with standard deviation `sigma` (borders reflected).
    mutating func gaussianBlur3x3(sigma: Double) {
        guard sigma > 0, width > 1, height > 1 else { return }
        let e = Float(exp(-1 / (2 * sigma * sigma)))
        let k0 = e / (1 + 2 * e), k1 = 1 / (1 + 2 * e)
        let w = width, h = height, stride = w * 3
        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: w * h * 3)
        defer { tmp.deallocate() }
        pixels.withUnsafeMutableBufferPointer { buffer in
            let p = buffer.baseAddress!
            for y in 0..<h {
                for x in 0..<w {
                    let xl = x == 0 ? 1 : x - 1, xr = x == w - 1 ? w - 2 : x + 1
                    for c in 0..<3 {
                        let row = p + y * stride
                        tmp[y * stride + x * 3 + c] = k0 * Float(row[xl * 3 + c]) + k1 * Float(row[x * 3 + c]) + k0 * Float(row[xr * 3 + c])
                    }
                }
            }
            for y in 0..<h {
                let yu = y == 0 ? 1 : y - 1, yd = y == h - 1 ? h - 2 : y + 1
                for i in 0..<stride {
                    p[y * stride + i] = clampByte(k0 * tmp[yu * stride + i] + k1 * tmp[y * stride + i] + k0 * tmp[yd * stride + i])
                }
            }
        }
    }

    /// The PIL blend table `trunc(d + f·(i − d))` clipped to bytes.
    internal static func blendTable(degenerate: Int, factor: Double) -> [UInt8] {
        let d = Double(degenerate)
        return (0..<256).map { i in
            let v = d + factor * (Double(i) - d)
            return v <= 0 ? 0 : (v >= 255 ? 255 : UInt8(v))
        }
    }
}

/// Truncates toward zero and clamps to 0…255 (PIL's blend rounding).
@inline(__always)
func truncByte(_ v: Float) -> UInt8 {
    v <= 0 ? 0 : (v >= 255 ? 255 : UInt8(v))
}
