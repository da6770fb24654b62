#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An affine map from output to input coordinates, PIL's `Image.transform(AFFINE)` convention:
/// the output pixel (x, y), whose centre is at (x + ½, y + ½), samples the input at
/// `(a·(x+½) + b·(y+½) + c, d·(x+½) + e·(y+½) + f)` (continuous coordinates, pixel centres at i + ½).
public struct AffineMatrix: Sendable, Equatable {
    public var a: Double, b: Double, c: Double, d: Double, e: Double, f: Double
    public init(a: Double, b: Double, c: Double, d: Double, e: Double, f: Double) {
        self.a = a; self.b = b; self.c = c; self.d = d; self.e = e; self.f = f
    }
    public static let identity = AffineMatrix(a: 1, b: 0, c: 0, d: 0, e: 1, f: 0)

    /// Counter-clockwise rotation by `degrees` about the centre of a `width x height` image (PIL `rotate`).
    public static func rotation(degrees: Double, width: Int, height: Int) -> AffineMatrix {
        let angle = -degrees * Double.pi / 180
        let cosA = cos(angle), sinA = sin(angle)
        let cx = Double(width) / 2, cy = Double(height) / 2
        // input = M · (output − centre) + centre, M = [[cos, sin], [−sin, cos]].
        return AffineMatrix(a: cosA, b: sinA, c: cx - cosA * cx - sinA * cy,
                            d: -sinA, e: cosA, f: cy + sinA * cx - cosA * cy)
    }
}

public extension RGBImage {
    /// Mirrors left–right.
    func flippedHorizontally() -> RGBImage {
        var copy = self
        copy.flipHorizontally()
        return copy
    }

    /// Mirrors top–bottom.
    func flippedVertically() -> RGBImage {
        var copy = self
        copy.flipVertically()
        return copy
    }

    /// Mirrors left–right in place.
    mutating func flipHorizontally() {
        let w = width, h = height
        pixels.withUnsafeMutableBufferPointer { buffer in
            let p = buffer.baseAddress!
            for y in 0..<h {
                let row = p + y * w * 3
                var i = 0, j = w - 1
                while i < j {
                    let a = row + 3 * i, b = row + 3 * j
                    let t0 = a[0], t1 = a[1], t2 = a[2]
                    a[0] = b[0]; a[1] = b[1]; a[2] = b[2]
                    b[0] = t0; b[1] = t1; b[2] = t2
                    i += 1; j -= 1
                }
            }
        }
    }

    /// Mirrors top–bottom in place.
    mutating func flipVertically() {
        let stride = width * 3, h = height
        guard stride > 0 else { return }
        pixels.withUnsafeMutableBufferPointer { buffer in
            let p = buffer.baseAddress!
            let tmp = UnsafeMutablePointer<UInt8>.allocate(capacity: stride)
            defer { tmp.deallocate() }
            var i = 0, j = h - 1
            while i < j {
                tmp.update(from: p + i * stride, count: stride)
                (p + i * stride).update(from: p + j * stride, count: stride)
                (p + j * stride).update(from: tmp, count: stride)
                i += 1; j -= 1
            }
        }
    }

    /// Applies an affine map (output → input, see `AffineMatrix`) on a canvas of the same size.
    /// Samples falling outside the image read `fill` (so edges blend into it, as OpenCV's
    /// constant border does).
    func warped(_ m: AffineMatrix, interpolation: Interpolation, fill: (UInt8, UInt8, UInt8)) -> RGBImage {
        Warp.affine(self, m, filter: interpolation.warpFilter, fill: fill)
    }

    /// Counter-clockwise rotation about the centre, same canvas (PIL `rotate`).
    func rotated(degrees: Double, interpolation: Interpolation, fill: (UInt8, UInt8, UInt8)) -> RGBImage {
        warped(.rotation(degrees: degrees, width: width, height: height), interpolation: interpolation, fill: fill)
    }
}

enum Warp {
    /// Inverse-maps every output pixel through `m` and samples the source with `filter`.
    static func affine(_ image: RGBImage, _ m: AffineMatrix, filter: WarpFilter, fill: (UInt8, UInt8, UInt8)) -> RGBImage {
        let w = image.width, h = image.height
        // Sample position in index space for output (x, y): A·(x+½, y+½) + t − ½ = (a·x + b·y + c, d·x + e·y + f).
        let map = (a: Float(m.a), b: Float(m.b), c: Float(m.c + 0.5 * m.a + 0.5 * m.b - 0.5),
                   d: Float(m.d), e: Float(m.e), f: Float(m.f + 0.5 * m.d + 0.5 * m.e - 0.5))
        return image.pixels.withUnsafeBufferPointer { buffer in
            let src = buffer.baseAddress!
            return RGBImage(width: w, height: h) { out in
                switch filter {
                case .nearest: nearest(src, w, h, map, fill, out)
                case .bilinear: bilinear(src, w, h, map, fill, out)
                case .bicubic(let a): bicubic(src, w, h, map, fill, a, out)
                }
            }
        }
    }

    typealias Map = (a: Float, b: Float, c: Float, d: Float, e: Float, f: Float)

    /// Source position of output (x, y), or nil when it is far outside (also catches NaN from a degenerate matrix).
    @inline(__always)
    private static func position(_ m: Map, _ x: Int, _ y: Int) -> (Float, Float)? {
        let fx = Float(x), fy = Float(y)
        let sx = m.a * fx + m.b * fy + m.c, sy = m.d * fx + m.e * fy + m.f
        guard abs(sx) < 1e7 && abs(sy) < 1e7 else { return nil }
        return (sx, sy)
    }

    @inline(__always)
    private static func put(_ dst: UnsafeMutablePointer<UInt8>, _ fill: (UInt8, UInt8, UInt8)) {
        dst[0] = fill.0; dst[1] = fill.1; dst[2] = fill.2
    }

    private static func nearest(_ src: UnsafePointer<UInt8>, _ w: Int, _ h: Int, _ m: Map,
                                _ fill: (UInt8, UInt8, UInt8), _ out: UnsafeMutablePointer<UInt8>) {
        let stride = w * 3
        for y in 0..<h {
            for x in 0..<w {
                let dst = out + y * stride + x * 3
                guard let (sx, sy) = position(m, x, y) else { put(dst, fill); continue }
                let ix = Int((sx + 0.5).rounded(.down)), iy = Int((sy + 0.5).rounded(.down))
                if ix >= 0 && ix < w && iy >= 0 && iy < h {
                    let p = src + iy * stride + ix * 3
                    dst[0] = p[0]; dst[1] = p[1]; dst[2] = p[2]
                } else {
                    put(dst, fill)
                }
            }
        }
    }

    private static func bilinear(_ src: UnsafePointer<UInt8>, _ w: Int, _ h: Int, _ m: Map,
                                 _ fill: (UInt8, UInt8, UInt8), _ out: UnsafeMutablePointer<UInt8>) {
        let stride = w * 3
        let fillF = (Float(fill.0), Float(fill.1), Float(fill.2))
        for y in 0..<h {
            for x in 0..<w {
                let dst = out + y * stride + x * 3
                guard let (sx, sy) = position(m, x, y) else { put(dst, fill); continue }
                let fx0 = sx.rounded(.down), fy0 = sy.rounded(.down)
                let x0 = Int(fx0), y0 = Int(fy0)
                if x0 < -1 || x0 >= w || y0 < -1 || y0 >= h { put(dst, fill); continue }
                let tx = sx - fx0, ty = sy - fy0
                let wx = (1 - tx, tx), wy = (1 - ty, ty)
                var r: Float = 0, g: Float = 0, b: Float = 0
                if x0 >= 0 && x0 + 1 < w && y0 >= 0 && y0 + 1 < h {
                    let p = src + y0 * stride + x0 * 3, q = p + stride
                    r = wy.0 * (wx.0 * Float(p[0]) + wx.1 * Float(p[3])) + wy.1 * (wx.0 * Float(q[0]) + wx.1 * Float(q[3]))
                    g = wy.0 * (wx.0 * Float(p[1]) + wx.1 * Float(p[4])) + wy.1 * (wx.0 * Float(q[1]) + wx.1 * Float(q[4]))
                    b = wy.0 * (wx.0 * Float(p[2]) + wx.1 * Float(p[5])) + wy.1 * (wx.0 * Float(q[2]) + wx.1 * Float(q[5]))
                } else {
                    // Border: taps outside the image read the fill colour.
                    for j in 0..<2 {
                        let yy = y0 + j
                        let wyj = j == 0 ? wy.0 : wy.1
                        for i in 0..<2 {
                            let xx = x0 + i
                            let wgt = wyj * (i == 0 ? wx.0 : wx.1)
                            if xx >= 0 && xx < w && yy >= 0 && yy < h {
                                let p = src + yy * stride + xx * 3
                                r += wgt * Float(p[0]); g += wgt * Float(p[1]); b += wgt * Float(p[2])
                            } else {
                                r += wgt * fillF.0; g += wgt * fillF.1; b += wgt * fillF.2
                            }
                        }
                    }
                }
                dst[0] = clampByte(r); dst[1] = clampByte(g); dst[2] = clampByte(b)
            }
        }
    }

    private static func bicubic(_ src: UnsafePointer<UInt8>, _ w: Int, _ h: Int, _ m: Map,
                                _ fill: (UInt8, UInt8, UInt8), _ a: Float, _ out: UnsafeMutablePointer<UInt8>) {
        let stride = w * 3
        let fillF = (Float(fill.0), Float(fill.1), Float(fill.2))
        for y in 0..<h {
            for x in 0..<w {
                let dst = out + y * stride + x * 3
                guard let (sx, sy) = position(m, x, y) else { put(dst, fill); continue }
                let fx0 = sx.rounded(.down), fy0 = sy.rounded(.down)
                let x0 = Int(fx0) - 1, y0 = Int(fy0) - 1
                if x0 < -3 || x0 >= w || y0 < -3 || y0 >= h { put(dst, fill); continue }
                let tx = sx - fx0, ty = sy - fy0
                let wx0 = cubicWeightF(tx + 1, a: a), wx1 = cubicWeightF(tx, a: a)
                let wx2 = cubicWeightF(1 - tx, a: a), wx3 = cubicWeightF(2 - tx, a: a)
                let wy0 = cubicWeightF(ty + 1, a: a), wy1 = cubicWeightF(ty, a: a)
                let wy2 = cubicWeightF(1 - ty, a: a), wy3 = cubicWeightF(2 - ty, a: a)
                var r: Float = 0, g: Float = 0, b: Float = 0
                if x0 >= 0 && x0 + 3 < w && y0 >= 0 && y0 + 3 < h {
                    var p = src + y0 * stride + x0 * 3
                    let rowWeights = (wy0, wy1, wy2, wy3)
                    withUnsafeBytes(of: rowWeights) { raw in
                        let wyv = raw.bindMemory(to: Float.self)
                        for j in 0..<4 {
                            let rr = wx0 * Float(p[0]) + wx1 * Float(p[3]) + wx2 * Float(p[6]) + wx3 * Float(p[9])
                            let gg = wx0 * Float(p[1]) + wx1 * Float(p[4]) + wx2 * Float(p[7]) + wx3 * Float(p[10])
                            let bb = wx0 * Float(p[2]) + wx1 * Float(p[5]) + wx2 * Float(p[8]) + wx3 * Float(p[11])
                            r += wyv[j] * rr; g += wyv[j] * gg; b += wyv[j] * bb
                            p += stride
                        }
                    }
                } else {
                    // Border: taps outside the image read the fill colour.
                    let wxs = (wx0, wx1, wx2, wx3), wys = (wy0, wy1, wy2, wy3)
                    withUnsafeBytes(of: wxs) { rawX in
                        withUnsafeBytes(of: wys) { rawY in
                            let wxv = rawX.bindMemory(to: Float.self), wyv = rawY.bindMemory(to: Float.self)
                            for j in 0..<4 {
                                let yy = y0 + j
                                for i in 0..<4 {
                                    let xx = x0 + i
                                    let wgt = wyv[j] * wxv[i]
                                    if xx >= 0 && xx < w && yy >= 0 && yy < h {
                                        let p = src + yy * stride + xx * 3
                                        r += wgt * Float(p[0]); g += wgt * Float(p[1]); b += wgt * Float(p[2])
                                    } else {
                                        r += wgt * fillF.0; g += wgt * fillF.1; b += wgt * fillF.2
                                    }
                                }
                            }
                        }
                    }
                }
                dst[0] = clampByte(r); dst[1] = clampByte(g); dst[2] = clampByte(b)
            }
        }
    }
}

/// Rounds half up and clamps to 0…255.
@inline(__always)
func clampByte(_ v: Float) -> UInt8 {
    UInt8(min(max(v + 0.5, 0), 255))
}
