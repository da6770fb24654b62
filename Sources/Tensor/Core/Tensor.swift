import Foundation

/// A Float32, row-major, contiguous n-dimensional array with an optional place on the autodiff tape.
///
/// `Tensor` is a value: copies share storage until one of them is mutated (copy-on-write).
/// Reshaping shares storage; every other movement op produces a new contiguous tensor.
public struct Tensor: @unchecked Sendable {
    public internal(set) var storage: Storage
    public let shape: [Int]
    /// The tape entry: a leaf for tensors that require gradients, an op node for results computed
    /// from them while recording is on, `nil` otherwise.
    public internal(set) var node: Node?

    public init(storage: Storage, shape: [Int], node: Node? = nil) {
        precondition(storage.count == shape.reduce(1, *), "storage holds \(storage.count) elements, shape \(shape) needs \(shape.reduce(1, *))")
        self.storage = storage
        self.shape = shape
        self.node = node
    }

    /// A tensor with the given values (row-major).
    public init(shape: [Int], _ values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values do not fill shape \(shape)")
        self.init(storage: Storage(values), shape: shape)
    }

    /// A tensor with the given values (row-major), converted from Double.
    public init(shape: [Int], doubles values: [Double]) {
        self.init(shape: shape, values.map { Float($0) })
    }

    /// A rank-0 tensor.
    public init(_ scalar: Float) { self.init(shape: [], [scalar]) }

    /// Uninitialised contents; every element must be written before it is read.
    public init(uninitializedShape shape: [Int]) {
        self.init(storage: Storage(count: shape.reduce(1, *)), shape: shape)
    }

    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(storage: Storage(zeros: shape.reduce(1, *)), shape: shape) }
    public static func ones(_ shape: [Int]) -> Tensor { full(shape, 1) }
    public static func full(_ shape: [Int], _ value: Float) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        t.storage.buffer.initialize(repeating: value)
        return t
    }
    /// Standard-normal samples times `std`.
    public static func randn(_ shape: [Int], std: Float = 1, generator: inout RandomGenerator) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        let p = t.storage.pointer
        for i in 0..<t.count { p[i] = generator.nextNormal() * std }
        return t
    }
    /// Uniform samples in [low, high).
    public static func uniform(_ shape: [Int], low: Float, high: Float, generator: inout RandomGenerator) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        let p = t.storage.pointer
        for i in 0..<t.count { p[i] = low + (high - low) * generator.nextFloat() }
        return t
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var scalars: [Float] { Array(storage.buffer) }
    /// The single element of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item of a tensor with \(count) elements")
        return storage.pointer[0]
    }

    /// Read-only access to the elements.
    @inline(__always)
    public func withUnsafeBuffer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(storage.buffer))
    }

    /// Write access; copies the storage first if another tensor shares it.
    @inline(__always)
    public mutating func withUnsafeMutableBuffer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = Storage(count: storage.count)
            copy.pointer.update(from: storage.pointer, count: storage.count)
            storage = copy
        }
        return try body(storage.buffer)
    }

    /// Overwrites the elements in place, keeping this tensor's place on the tape (used by optimizers
    /// and weight loading under no-grad). `other`'s values are copied into this tensor's storage
    /// without copy-on-write, so every tensor that shares that storage (copies of this value,
    /// reshapes, `detached()` views, the parameter that owns it) sees the new values; `other` is only
    /// read and shares nothing with this tensor afterwards.
    public func assign(_ other: Tensor) {
        precondition(other.shape == shape, "assign: shape \(other.shape) into \(shape)")
        storage.pointer.update(from: other.storage.pointer, count: count)
    }

    /// A copy with its own storage and no tape entry.
    public func copy() -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        t.storage.pointer.update(from: storage.pointer, count: count)
        return t
    }

    /// The same values, cut off from the tape.
    public func detached() -> Tensor { Tensor(storage: storage, shape: shape) }

    /// Whether gradients flow to this tensor. Setting it on a tensor makes it a leaf of the tape.
    public var requiresGrad: Bool {
        get { node != nil }
        set {
            if newValue {
                if node == nil { node = Node(leafShape: shape) }
            } else {
                node = nil
            }
        }
    }

    /// The gradient accumulated into this leaf by `backward()` calls since the last `zeroGrad()`.
    public var grad: Tensor? { node?.grad }

    /// Clears the accumulated gradient of this leaf.
    public func zeroGrad() { node?.grad = nil }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let n = min(count, 8)
        let head = (0..<n).map { String(format: "%.5g", storage.pointer[$0]) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(head)\(count > n ? ", …" : "")])"
    }
}

/// Shape helpers shared by the ops.
public enum Shape {
    public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// The NumPy broadcast of two shapes, or nil when they are incompatible.
    public static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
        }
        return out
    }

    /// Normalises a possibly negative axis.
    @inline(__always)
    public static func axis(_ axis: Int, rank: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < max(rank, 1), "axis \(axis) out of range for rank \(rank)")
        return a
    }
}
