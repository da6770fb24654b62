/// A rectangle of pixels: columns `x..<x+width`, rows `y..<y+height`.
public struct PixelRect: Sendable, Equatable, CustomStringConvertible {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }
    public var description: String { "(\(x), \(y), \(width)x\(height))" }
}

/// Per-output-pixel taps of a 1-D resampling: output `o` reads source coordinates
/// `index[o * taps + t]` (already clamped to the source range and offset to absolute coordinates)
/// with weights `weight[o * taps + t]`.
struct AxisWeights {
    var taps: Int
    var index: [Int32]
    var weight: [Float]

    /// Weights mapping `scaledLength` outputs onto the source span `sourceStart..<sourceStart+sourceLength`,
    /// for the outputs `outputOffset..<outputOffset+outputCount` of that scaled axis.
    init(sourceStart: Int, sourceLength: Int, scaledLength: Int, outputOffset: Int, outputCount: Int,
         kernel: ResampleKernel) {
        let scale = Double(sourceLength) / Double(scaledLength)
        let last = sourceLength - 1
        if case .nearest = kernel {
            // OpenCV INTER_NEAREST: floor(o · scale), no half-pixel shift.
            taps = 1
            index = (0..<outputCount).map { o in
                Int32(sourceStart + min(Int((Double(o + outputOffset) * scale).rounded(.down)), last))
            }
            weight = [Float](repeating: 1, count: outputCount)
            return
        }
        let useAA = kernel.antialias && scale > 1
        if !useAA {
            // OpenCV: centre = (o + 0.5)·scale − 0.5, taps floor(centre) − s + 1 … floor(centre) + s,
            // replicated border. `area` when enlarging is bilinear, as in OpenCV.
            let k: ResampleKernel
            if case .box = kernel { k = .triangle(antialias: false) } else { k = kernel }
            let support = Int(k.support.rounded(.up))
            taps = 2 * support
            index = [Int32](repeating: 0, count: outputCount * taps)
            weight = [Float](repeating: 0, count: outputCount * taps)
            for o in 0..<outputCount {
                let centre = (Double(o + outputOffset) + 0.5) * scale - 0.5
                let base = Int(centre.rounded(.down)) - support + 1
                var sum = 0.0
                var w = [Double](repeating: 0, count: taps)
                for t in 0..<taps {
                    w[t] = k.weight(centre - Double(base + t))
                    sum += w[t]
                }
                for t in 0..<taps {
                    index[o * taps + t] = Int32(sourceStart + min(max(base + t, 0), last))
                    weight[o * taps + t] = Float(sum != 0 ? w[t] / sum : (t == 0 ? 1 : 0))
                }
            }
            return
        }
        // PIL-style antialiased reduction: the kernel is stretched by the scale factor.
        let support = kernel.support * scale
        taps = Int((support * 2).rounded(.up)) + 1
        index = [Int32](repeating: Int32(sourceStart), count: outputCount * taps)
        weight = [Float](repeating: 0, count: outputCount * taps)
        for o in 0..<outputCount {
            let centre = (Double(o + outputOffset) + 0.5) * scale
            let lo = max(Int(centre - support + 0.5), 0)
            let hi = min(Int(centre + support + 0.5), sourceLength)
            var sum = 0.0
            var w = [Double](repeating: 0, count: taps)
            var n = 0
            for j in lo..<max(hi, lo) where n < taps {
                w[n] = kernel.weight((Double(j) - centre + 0.5) / scale)
                sum += w[n]
                index[o * taps + n] = Int32(sourceStart + j)
                n += 1
            }
            if n == 0 { index[o * taps] = Int32(sourceStart + min(max(Int(centre), 0), last)); w[0] = 1; sum = 1 }
            for t in 0..<taps { weight[o * taps + t] = Float(sum != 0 ? w[t] / sum : 0) }
        }
    }
}

enum Resampler {
    /// Resamples the `source` rectangle of `image` as if to `scaledWidth x scaledHeight`, and returns the
    /// `window` of that scaled image (which must lie inside it). Separable: a horizontal pass over the
    /// needed source rows into a float buffer, then a vertical pass, rounding and clamping to bytes.
    static func resample(_ image: RGBImage, source: PixelRect, scaledWidth: Int, scaledHeight: Int,
                         window: PixelRect, kernel: ResampleKernel) -> RGBImage {
        precondition(source.width > 0 && source.height > 0 && source.x >= 0 && source.y >= 0
                     && source.x + source.width <= image.width && source.y + source.height <= image.height,
                     "resample source \(source) outside the \(image.width)x\(image.height) image")
        precondition(window.x >= 0 && window.y >= 0 && window.x + window.width <= scaledWidth
                     && window.y + window.height <= scaledHeight, "resample window outside the scaled image")
        let outW = window.width, outH = window.height
        if outW == 0 || outH == 0 { return RGBImage(width: outW, height: outH) }
        let hw = AxisWeights(sourceStart: source.x, sourceLength: source.width, scaledLength: scaledWidth,
                             outputOffset: window.x, outputCount: outW, kernel: kernel)
        let vw = AxisWeights(sourceStart: source.y, sourceLength: source.height, scaledLength: scaledHeight,
                             outputOffset: window.y, outputCount: outH, kernel: kernel)
        let srcStride = image.width * 3
        if hw.taps == 1 && vw.taps == 1 {
            return image.pixels.withUnsafeBufferPointer { src in
                RGBImage(width: outW, height: outH) { out in
                    for y in 0..<outH {
                        let row = src.baseAddress! + Int(vw.index[y]) * srcStride
                        let dst = out + y * outW * 3
                        for x in 0..<outW {
                            let s = Int(hw.index[x]) * 3
                            dst[3 * x] = row[s]; dst[3 * x + 1] = row[s + 1]; dst[3 * x + 2] = row[s + 2]
                        }
                    }
                }
            }
        }
        // Rows of the source that the vertical pass reads.
        var rowLo = Int.max, rowHi = Int.min
        for (i, r) in vw.index.enumerated() where vw.weight[i] != 0 {
            rowLo = min(rowLo, Int(r)); rowHi = max(rowHi, Int(r))
        }
        if rowLo > rowHi { rowLo = Int(vw.index[0]); rowHi = rowLo }
        let rows = rowHi - rowLo + 1
        var needed = [Bool](repeating: false, count: rows)
        for (i, r) in vw.index.enumerated() where vw.weight[i] != 0 { needed[Int(r) - rowLo] = true }
        let rowFloats = outW * 3
        let tmp = UnsafeMutablePointer<Float>.allocate(capacity: rows * rowFloats)
        defer { tmp.deallocate() }
        let acc = UnsafeMutablePointer<Float>.allocate(capacity: rowFloats)
        defer { acc.deallocate() }

        return image.pixels.withUnsafeBufferPointer { srcBuffer in
            let src = srcBuffer.baseAddress!
            hw.index.withUnsafeBufferPointer { hIndex in
                hw.weight.withUnsafeBufferPointer { hWeight in
                    let taps = hw.taps
                    for r in 0..<rows where needed[r] {
                        let row = src + (rowLo + r) * srcStride
                        let dst = tmp + r * rowFloats
                        for x in 0..<outW {
                            var a0: Float = 0, a1: Float = 0, a2: Float = 0
                            let base = x * taps
                            for t in 0..<taps {
                                let s = Int(hIndex[base + t]) * 3
                                let w = hWeight[base + t]
                                a0 += w * Float(row[s]); a1 += w * Float(row[s + 1]); a2 += w * Float(row[s + 2])
                            }
                            dst[3 * x] = a0; dst[3 * x + 1] = a1; dst[3 * x + 2] = a2
                        }
                    }
                }
            }
            return RGBImage(width: outW, height: outH) { out in
                let taps = vw.taps
                for y in 0..<outH {
                    var first = true
                    for t in 0..<taps {
                        let w = vw.weight[y * taps + t]
                        if w == 0 { continue }
                        let line = tmp + (Int(vw.index[y * taps + t]) - rowLo) * rowFloats
                        if first {
                            for i in 0..<rowFloats { acc[i] = w * line[i] }
                            first = false
                        } else {
                            for i in 0..<rowFloats { acc[i] += w * line[i] }
                        }
                    }
                    if first { for i in 0..<rowFloats { acc[i] = 0 } }
                    let dst = out + y * rowFloats
                    for i in 0..<rowFloats {
                        dst[i] = UInt8(min(max(acc[i] + 0.5, 0), 255))  // round half up, clamp
                    }
                }
            }
        }
    }
}

public extension RGBImage {
    /// Resizes the whole image to `width x height`.
    func resized(width: Int, height: Int, interpolation: Interpolation) -> RGBImage {
        Resampler.resample(self, source: PixelRect(x: 0, y: 0, width: self.width, height: self.height),
                           scaledWidth: width, scaledHeight: height,
                           window: PixelRect(x: 0, y: 0, width: width, height: height), kernel: interpolation.kernel)
    }

    /// Crops `rect` (which must lie inside the image) and resizes the crop to `width x height`,
    /// in one pass; borders replicate the crop's own edge pixels, as resizing a cropped copy does.
    func resizedCrop(_ rect: PixelRect, width: Int, height: Int, interpolation: Interpolation) -> RGBImage {
        Resampler.resample(self, source: rect, scaledWidth: width, scaledHeight: height,
                           window: PixelRect(x: 0, y: 0, width: width, height: height), kernel: interpolation.kernel)
    }

    /// Copies the pixels of `rect`, which must lie inside the image.
    func cropped(to rect: PixelRect) -> RGBImage {
        precondition(rect.x >= 0 && rect.y >= 0 && rect.width >= 0 && rect.height >= 0
                     && rect.x + rect.width <= width && rect.y + rect.height <= height, "crop \(rect) outside the image")
        return pixels.withUnsafeBufferPointer { src in
            RGBImage(width: rect.width, height: rect.height) { out in
                for y in 0..<rect.height {
                    (out + y * rect.width * 3).update(from: src.baseAddress! + ((rect.y + y) * width + rect.x) * 3,
                                                      count: rect.width * 3)
                }
            }
        }
    }
}
