import Foundation
import Tensor

/// What random erasing writes into the erased rectangle (MindCV `re_value`, in normalised units).
public enum ErasingValue: Sendable, Equatable {
    /// One constant for all channels (0 = the mean colour after normalisation).
    case constant(Float)
    /// One constant per channel.
    case perChannel([Float])
    /// I.i.d. N(0, 1) per channel and pixel (`"random"`).
    case random
}

/// Random erasing on the normalised CHW image (MindCV / timm `RandomErasing`, docs/training.md §6.7).
///
/// With probability `probability`, up to `maxAttempts` tries: area A = U(scale)·H·W, aspect
/// r = U(ratio) (uniform, as MindCV; timm draws it log-uniformly), w = round(√(A·r)),
/// h = round(w / r); the first rectangle with h < H and w < W is filled at a uniformly random
/// position. At most one rectangle per image.
public struct RandomErasing: Sendable, Equatable {
    /// `re_prob`.
    public let probability: Double
    /// `re_scale`: erased-area fraction range.
    public let scale: ClosedRange<Double>
    /// `re_ratio`: aspect range of the rectangle.
    public let ratio: ClosedRange<Double>
    /// `re_value`.
    public let value: ErasingValue
    /// `re_max_attempts`.
    public let maxAttempts: Int

    public init(probability: Double, scale: ClosedRange<Double> = 0.02...0.33, ratio: ClosedRange<Double> = 0.3...3.3,
                value: ErasingValue = .constant(0), maxAttempts: Int = 10) throws(DataError) {
        guard probability >= 0, probability <= 1 else {
            throw .invalidConfig(key: "re_prob", reason: "must be in [0, 1], got \(probability)")
        }
        guard scale.lowerBound >= 0, scale.upperBound <= 1 else {
            throw .invalidConfig(key: "re_scale", reason: "area fractions must lie in [0, 1], got \(scale)")
        }
        guard ratio.lowerBound > 0 else { throw .invalidConfig(key: "re_ratio", reason: "must be > 0, got \(ratio)") }
        if case .perChannel(let v) = value, v.count != 3 {
            throw .invalidConfig(key: "re_value", reason: "expected a number, \"random\" or 3 numbers")
        }
        guard maxAttempts >= 1 else { throw .invalidConfig(key: "re_max_attempts", reason: "must be ≥ 1") }
        self.probability = probability
        self.scale = scale
        self.ratio = ratio
        self.value = value
        self.maxAttempts = maxAttempts
    }

    /// Parses MindCV's `re_value`: a number, the string `"random"`, or three numbers.
    public static func value(mindcv text: String) throws(DataError) -> ErasingValue {
        let trimmed = text.trimmingCharacters(in: [" ", "[", "]"])
        if trimmed.lowercased() == "random" { return .random }
        let numbers = trimmed.split(separator: ",").map { Float($0.trimmingCharacters(in: [" "])) }
        if numbers.count == 1, let v = numbers[0] { return .constant(v) }
        if numbers.count == 3, numbers.allSatisfy({ $0 != nil }) { return .perChannel(numbers.map { $0! }) }
        throw .invalidConfig(key: "re_value", reason: "expected a number, \"random\" or 3 numbers, got '\(text)'")
    }

    /// Draws the erased rectangle for an `width x height` image, or nil (not erased this time).
    public func rectangle(width: Int, height: Int, rng: inout RandomGenerator) -> PixelRect? {
        guard probability > 0, rng.nextDouble() < probability else { return nil }
        let area = Double(width * height)
        for _ in 0..<maxAttempts {
            let target = rng.uniform(scale.lowerBound, scale.upperBound) * area
            let r = rng.uniform(ratio.lowerBound, ratio.upperBound)
            let w = Int((target * r).squareRoot().rounded())
            let h = Int((Double(w) / r).rounded())
            if h < height && w < width {
                let y = rng.integer(0, through: height - h)
                let x = rng.integer(0, through: width - w)
                return PixelRect(x: x, y: y, width: w, height: h)
            }
        }
        return nil
    }

    /// Erases in place in a CHW float image of 3 channels.
    public func apply(to chw: UnsafeMutablePointer<Float>, width: Int, height: Int, rng: inout RandomGenerator) {
        guard let rect = rectangle(width: width, height: height, rng: &rng), rect.width > 0, rect.height > 0 else { return }
        let plane = width * height
        switch value {
        case .constant(let v):
            for c in 0..<3 { fill(chw + c * plane, rect: rect, width: width, value: v) }
        case .perChannel(let v):
            for c in 0..<3 { fill(chw + c * plane, rect: rect, width: width, value: v[c]) }
        case .random:
            var noise = BulkNoise(&rng)
            var pending: Float? = nil
            for c in 0..<3 {
                for y in rect.y..<(rect.y + rect.height) {
                    let row = chw + c * plane + y * width
                    for x in rect.x..<(rect.x + rect.width) {
                        if let p = pending {
                            row[x] = p
                            pending = nil
                        } else {
                            let (a, b) = noise.normalPair()
                            row[x] = a
                            pending = b
                        }
                    }
                }
            }
        }
    }

    private func fill(_ plane: UnsafeMutablePointer<Float>, rect: PixelRect, width: Int, value v: Float) {
        for y in rect.y..<(rect.y + rect.height) {
            (plane + y * width + rect.x).update(repeating: v, count: rect.width)
        }
    }
}
