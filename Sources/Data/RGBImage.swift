/// An 8-bit RGB image, pixels interleaved row-major: `pixels[(y * width + x) * 3 + c]` (HWC).
///
/// Every decoder produces this layout (grayscale is replicated, alpha dropped, CMYK converted), and the
/// per-image augmentations work on it before normalisation turns it into a float CHW tensor.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// `width * height * 3` bytes, HWC.
    public var pixels: [UInt8]

    /// Wraps existing pixels; `pixels.count` must be `width * height * 3`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3,
                     "RGBImage \(width)x\(height) needs \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image filled with one colour.
    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        self.width = width
        self.height = height
        let n = width * height
        pixels = [UInt8](unsafeUninitializedCapacity: n * 3) { buf, count in
            for i in 0..<n {
                buf[3 * i] = fill.0
                buf[3 * i + 1] = fill.1
                buf[3 * i + 2] = fill.2
            }
            count = n * 3
        }
    }

    /// An image whose pixels are written by `body` (which must write all `width * height * 3` bytes).
    @inlinable
    public init(width: Int, height: Int, initializingWith body: (UnsafeMutablePointer<UInt8>) throws -> Void) rethrows {
        self.width = width
        self.height = height
        let n = width * height * 3
        pixels = try [UInt8](unsafeUninitializedCapacity: max(n, 1)) { buf, count in
            if n > 0, let base = buf.baseAddress { try body(base) }
            count = n
        }
    }

    /// The colour at (x, y).
    public subscript(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
}
