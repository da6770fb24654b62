import Tensor

/// Weight initialisers (for training from scratch; loaded weights overwrite them).
public enum Initializer {
    /// While set, initialisers return uninitialised memory: for building a model only to count or
    /// load its weights (nothing is drawn and large buffers are never touched).
    @TaskLocal public static var isSkipping = false

    /// Builds with initialisation skipped; every weight must be loaded or overwritten before use.
    public static func withoutInitialization<R>(_ body: () throws -> R) rethrows -> R {
        try $isSkipping.withValue(true) { try body() }
    }

    /// Normal(0, std) truncated at ±2·std, by resampling.
    public static func truncatedNormal(_ shape: [Int], std: Float, generator: inout RandomGenerator) -> Tensor {
        if isSkipping { return Tensor(uninitializedShape: shape) }
        let t = Tensor(uninitializedShape: shape)
        let p = t.storage.pointer
        for i in 0..<t.count {
            var v = generator.nextNormal()
            while abs(v) > 2 { v = generator.nextNormal() }
            p[i] = v * std
        }
        return t
    }

    /// Normal(0, √(2/fan_out)), fan_out = out·kh·kw (Kaiming, fan_out mode, ReLU).
    public static func heNormalFanOut(_ shape: [Int], generator: inout RandomGenerator) -> Tensor {
        if isSkipping { return Tensor(uninitializedShape: shape) }
        let fanOut = shape[0] * shape.dropFirst(2).reduce(1, *)
        return Tensor.randn(shape, std: (2 / Float(fanOut)).squareRoot(), generator: &generator)
    }

    /// Uniform(±√(6/(fan_in+fan_out))).
    public static func xavierUniform(_ shape: [Int], generator: inout RandomGenerator) -> Tensor {
        if isSkipping { return Tensor(uninitializedShape: shape) }
        let rf = shape.dropFirst(2).reduce(1, *)
        let fanIn = shape[1] * rf, fanOut = shape[0] * rf
        let a = (6 / Float(fanIn + fanOut)).squareRoot()
        return Tensor.uniform(shape, low: -a, high: a, generator: &generator)
    }
}
