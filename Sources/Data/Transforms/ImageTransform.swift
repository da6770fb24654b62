import Tensor

/// A per-image transform from a decoded image to a normalised float CHW tensor of a fixed size.
/// Implementations are values that many threads use at once; all randomness comes from `rng`.
public protocol ImageTransform: Sendable {
    /// Output height H.
    var outputHeight: Int { get }
    /// Output width W.
    var outputWidth: Int { get }
    /// Transforms `image` and writes `3 · H · W` floats, channel-major (CHW), to `output`.
    func apply(_ image: RGBImage, rng: inout RandomGenerator, into output: UnsafeMutablePointer<Float>)
}

public extension ImageTransform {
    /// Transforms one image into a `[3, H, W]` tensor.
    func callAsFunction(_ image: RGBImage, rng: inout RandomGenerator) -> Tensor {
        let t = Tensor(uninitializedShape: [3, outputHeight, outputWidth])
        apply(image, rng: &rng, into: t.storage.pointer)
        return t
    }
}

/// MindCV's defaults and a parser for its `[lo, hi]` pairs.
public enum MindCVDefaults {
    /// ImageNet mean on the 0–255 scale (255 · [0.485, 0.456, 0.406]).
    public static let mean: [Double] = [123.675, 116.28, 103.53]
    /// ImageNet std on the 0–255 scale (255 · [0.229, 0.224, 0.225]).
    public static let std: [Double] = [58.395, 57.12, 57.375]

    /// A `[lo, hi]` list as a closed range; `key` names the config key in the error.
    public static func range(_ values: [Double], key: String) throws(DataError) -> ClosedRange<Double> {
        guard values.count == 2, values[0].isFinite, values[1].isFinite else {
            throw .invalidConfig(key: key, reason: "expected two finite numbers [lo, hi], got \(values)")
        }
        guard values[0] <= values[1] else {
            throw .invalidConfig(key: key, reason: "lower bound \(values[0]) exceeds upper bound \(values[1])")
        }
        return values[0]...values[1]
    }
}

/// Per-channel normalisation `x = (pixel − mean) / std` with mean and std on the 0–255 scale, and the
/// HWC → CHW transpose, fused through a 256-entry table per channel.
public struct Normalization: Sendable, Equatable {
    public let mean: [Float]
    public let std: [Float]
    /// tables[c * 256 + v] = (v − mean[c]) / std[c].
    let tables: [Float]

    public init(mean: [Double] = MindCVDefaults.mean, std: [Double] = MindCVDefaults.std) throws(DataError) {
        guard mean.count == 3, mean.allSatisfy({ $0.isFinite }) else {
            throw .invalidConfig(key: "mean", reason: "expected 3 finite numbers (0–255 scale), got \(mean)")
        }
        guard std.count == 3, std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw .invalidConfig(key: "std", reason: "expected 3 positive numbers (0–255 scale), got \(std)")
        }
        self.mean = mean.map { Float($0) }
        self.std = std.map { Float($0) }
        var t = [Float](repeating: 0, count: 768)
        for c in 0..<3 {
            for v in 0..<256 { t[c * 256 + v] = Float((Double(v) - mean[c]) / std[c]) }
        }
        tables = t
    }

    /// The fill colour geometric augmentations use: round(mean) (MindCV: (124, 116, 104)).
    public var fillColor: (UInt8, UInt8, UInt8) {
        func byte(_ v: Float) -> UInt8 { UInt8(min(max(v.rounded(), 0), 255)) }
        return (byte(mean[0]), byte(mean[1]), byte(mean[2]))
    }

    /// Writes `image` normalised and transposed to CHW into `output` (3 · H · W floats).
    public func write(_ image: RGBImage, into output: UnsafeMutablePointer<Float>) {
        let n = image.width * image.height
        image.pixels.withUnsafeBufferPointer { buffer in
            tables.withUnsafeBufferPointer { t in
                let p = buffer.baseAddress!
                let t0 = t.baseAddress!, t1 = t0 + 256, t2 = t0 + 512
                let o0 = output, o1 = output + n, o2 = output + 2 * n
                for i in 0..<n {
                    o0[i] = t0[Int(p[3 * i])]
                    o1[i] = t1[Int(p[3 * i + 1])]
                    o2[i] = t2[Int(p[3 * i + 2])]
                }
            }
        }
    }
}
