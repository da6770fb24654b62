import Foundation
import Tensor

/// One traced value: the graph input, a parameter or buffer (by canonical name), a constant the
/// forward pass read without computing it, or the output of a traced op.
enum TracedSource {
    case input
    case parameter(String)
    case constant(Tensor)
    case op(Int)
}

/// One op of the traced forward pass; tensors are referred to by value index.
struct TracedOp {
    let kind: String
    let inputs: [Int]
    let output: Int
    /// Attributes other than tensors.
    let attributes: OpAttributes
    /// Tensor attributes (BatchNorm's running statistics), by attribute name → value index.
    let tensorAttributes: [String: Int]
}

/// Records a forward pass as a graph of values and ops (an `OpTracer`, Sources/Tensor/Core/OpTrace.swift).
///
/// Tensors are identified by their storage object and shape: a reshape shares its input's storage
/// under a new shape. The tracer keeps only weak references to storages, so a storage freed during
/// the pass and a new one allocated at the same address are told apart (the weak reference of the
/// old one is nil by then).
final class GraphTracer: OpTracer, @unchecked Sendable {
    private final class WeakStorage { weak var storage: Storage?; init(_ s: Storage) { storage = s } }

    private(set) var sources: [TracedSource] = []
    private(set) var shapes: [[Int]] = []
    private(set) var ops: [TracedOp] = []
    private var live: [ObjectIdentifier: (ref: WeakStorage, byShape: [[Int]: Int])] = [:]
    private var parameters: [ObjectIdentifier: [(shape: [Int], name: String)]] = [:]
    private var parameterValues: [String: Int] = [:]
    private let lock = NSLock()

    /// `named`: the model's parameters and buffers by canonical name (they outlive the trace).
    init(named: [(String, Tensor)]) {
        for (name, t) in named { parameters[ObjectIdentifier(t.storage), default: []].append((t.shape, name)) }
    }

    /// Registers the graph input; returns its value index.
    @discardableResult
    func addInput(_ t: Tensor) -> Int { define(t, source: .input) }

    /// The value index of `t`, registering it as a parameter or constant when it was not computed by
    /// a traced op.
    func value(of t: Tensor) -> Int {
        let key = ObjectIdentifier(t.storage)
        if let entry = live[key], entry.ref.storage === t.storage, let id = entry.byShape[t.shape] { return id }
        if let name = parameters[key]?.first(where: { $0.shape == t.shape })?.name {
            if let id = parameterValues[name] { return id }
            let id = append(.parameter(name), t.shape)
            parameterValues[name] = id
            return id
        }
        return define(t, source: .constant(t.copy()))
    }

    func record(op: String, inputs: [Tensor], output: Tensor, attributes: OpAttributes) {
        lock.lock(); defer { lock.unlock() }
        let ins = inputs.map { value(of: $0) }
        var plain: OpAttributes = [:], tensors: [String: Int] = [:]
        // in key order: a value first met here gets the next index, and a dictionary's own order
        // can differ between two traces
        for k in attributes.keys.sorted() {
            guard let a = attributes[k] else { continue }
            if case .tensor(let t) = a { tensors[k] = value(of: t) } else { plain[k] = a }
        }
        let out = define(output, source: .op(ops.count))
        ops.append(TracedOp(kind: op, inputs: ins, output: out, attributes: plain, tensorAttributes: tensors))
    }

    private func append(_ source: TracedSource, _ shape: [Int]) -> Int {
        sources.append(source); shapes.append(shape)
        return sources.count - 1
    }

    private func define(_ t: Tensor, source: TracedSource) -> Int {
        let id = append(source, t.shape)
        let key = ObjectIdentifier(t.storage)
        if var entry = live[key], entry.ref.storage === t.storage {
            entry.byShape[t.shape] = id
            live[key] = entry
        } else {
            live[key] = (WeakStorage(t.storage), [t.shape: id])
        }
        return id
    }
}
