import Tensor

/// A trainable tensor: a leaf of the tape whose gradient the optimizer reads. Optimizers and
/// weight loading write `value` in place (under no-grad) so the tape entry stays the same.
public final class Parameter: @unchecked Sendable {
    public var value: Tensor
    public init(_ value: Tensor) {
        self.value = value.detached()
        self.value.requiresGrad = true
    }
    public var grad: Tensor? { value.grad }
    public var shape: [Int] { value.shape }
    public func zeroGrad() { value.zeroGrad() }
}

/// A non-trainable stored tensor (BatchNorm running statistics), part of the state dict.
public final class Buffer: @unchecked Sendable {
    public var value: Tensor
    public init(_ value: Tensor) { self.value = value.detached() }
    public var shape: [Int] { value.shape }
}

/// State shared by all modules of one model: the train/eval flag and the generator that dropout
/// and drop-path draw from.
public final class ModelState: @unchecked Sendable {
    public var training: Bool = true
    public var generator: RandomGenerator
    public init(seed: UInt64 = 0) { generator = RandomGenerator(seed: seed) }
}

/// Walks a module tree in a fixed order, yielding each parameter and buffer under its canonical
/// dotted name (the checkpoint key).
public struct ModuleVisitor {
    public enum Entry {
        case parameter(Parameter)
        case buffer(Buffer)
    }
    var prefix: String = ""
    let onEntry: (String, Entry) -> Void

    public init(_ onEntry: @escaping (String, Entry) -> Void) { self.onEntry = onEntry }

    public mutating func param(_ name: String, _ p: Parameter?) {
        if let p { onEntry(prefix + name, .parameter(p)) }
    }
    public mutating func buffer(_ name: String, _ b: Buffer?) {
        if let b { onEntry(prefix + name, .buffer(b)) }
    }
    public mutating func child(_ name: String, _ m: (any Module)?) {
        guard let m else { return }
        let saved = prefix
        prefix += name + "."
        m.visit(&self)
        prefix = saved
    }
    /// A list of modules named `name.0`, `name.1`, … (an empty name gives `0.`, `1.`, …).
    public mutating func children(_ name: String, _ ms: [any Module]) {
        for (i, m) in ms.enumerated() { child(name.isEmpty ? "\(i)" : "\(name).\(i)", m) }
    }
}

/// Anything with parameters. Conformers list what they own in `visit`, in a fixed order.
public protocol Module: AnyObject {
    func visit(_ visitor: inout ModuleVisitor)
}

extension Module {
    /// Every parameter, by canonical name, in visit order.
    public func namedParameters() -> [(name: String, parameter: Parameter)] {
        var out: [(String, Parameter)] = []
        var v = ModuleVisitor { name, e in if case .parameter(let p) = e { out.append((name, p)) } }
        visit(&v)
        return out
    }

    /// Every buffer, by canonical name, in visit order.
    public func namedBuffers() -> [(name: String, buffer: Buffer)] {
        var out: [(String, Buffer)] = []
        var v = ModuleVisitor { name, e in if case .buffer(let b) = e { out.append((name, b)) } }
        visit(&v)
        return out
    }

    public var parameters: [Parameter] { namedParameters().map { $0.parameter } }

    /// Parameters and buffers by canonical name (values are shared, not copied).
    public func stateDict() -> [String: Tensor] {
        var d: [String: Tensor] = [:]
        for (n, p) in namedParameters() { d[n] = p.value.detached() }
        for (n, b) in namedBuffers() { d[n] = b.value }
        return d
    }

    /// Number of trainable scalars.
    public var trainableParameterCount: Int { namedParameters().reduce(0) { $0 + $1.parameter.value.count } }
    /// Trainable scalars plus buffers (BatchNorm running statistics).
    public var storedParameterCount: Int { trainableParameterCount + namedBuffers().reduce(0) { $0 + $1.buffer.value.count } }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }
}
