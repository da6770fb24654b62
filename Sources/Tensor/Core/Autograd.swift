import Foundation

/// One entry of the define-by-run tape: the inputs an op read and the function that maps the
/// gradient of its output to gradients of those inputs. Leaves have no inputs and accumulate `grad`.
public final class Node: @unchecked Sendable {
    let inputs: [Node?]
    let inputShapes: [[Int]]
    var backward: ((Tensor) -> [Tensor?])?
    let shape: [Int]
    let isLeaf: Bool
    /// Accumulated gradient (leaves only).
    public internal(set) var grad: Tensor?
    /// A name used in error messages (op name or parameter name).
    public var label: String

    init(leafShape: [Int]) {
        inputs = []; inputShapes = []; backward = nil; shape = leafShape; isLeaf = true; label = "leaf"
    }

    init(op: String, shape: [Int], inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) {
        self.inputs = inputs.map { $0.node }
        self.inputShapes = inputs.map { $0.shape }
        self.backward = backward
        self.shape = shape
        self.isLeaf = false
        self.label = op
    }
}

/// Whether ops record themselves on the tape. Off inside `withNoGrad` (optimizer steps,
/// initialisation, evaluation); the state is task-local so concurrent tasks do not interfere.
public enum GradMode {
    @TaskLocal public static var isEnabled: Bool = true
}

/// Runs `body` with recording off.
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$isEnabled.withValue(false) { try body() }
}

extension Tensor {
    /// Attaches `out` to the tape when recording is on and any input is on the tape (and reports the op
    /// with its `attributes` to an installed `OpTracer`). `backward`
    /// receives the gradient of `out` and returns one gradient per input, each either in the input's
    /// shape or in a shape that broadcasts to it (it is summed down centrally); nil means none.
    @inline(__always)
    public static func record(_ op: String, _ out: Tensor, inputs: [Tensor], attributes: @autoclosure () -> OpAttributes = [:],
                              backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        OpTrace.note(op, inputs: inputs, output: out, attributes: attributes())  // ONNX export (Core/OpTrace.swift)
        guard GradMode.isEnabled, inputs.contains(where: { $0.node != nil }) else { return out }
        var result = out
        result.node = Node(op: op, shape: out.shape, inputs: inputs, backward: backward)
        return result
    }

    /// Reverse-mode differentiation from this scalar: accumulates d(self)/d(leaf) into every leaf
    /// on the tape. The tape below this tensor is released afterwards unless `retainGraph`.
    public func backward(retainGraph: Bool = false) {
        precondition(count == 1, "backward() needs a scalar; got shape \(shape)")
        backward(gradient: Tensor.ones(shape), retainGraph: retainGraph)
    }

    /// Reverse-mode differentiation seeded with `gradient` (same shape as self).
    public func backward(gradient: Tensor, retainGraph: Bool = false) {
        precondition(gradient.shape == shape, "backward: seed shape \(gradient.shape) for tensor \(shape)")
        guard let root = node else { return }
        // Topological order by iterative depth-first search.
        var order: [Node] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Node, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (n, i) = stack.popLast() {
            if i < n.inputs.count {
                stack.append((n, i + 1))
                if let child = n.inputs[i], !visited.contains(ObjectIdentifier(child)) {
                    visited.insert(ObjectIdentifier(child))
                    stack.append((child, 0))
                }
            } else {
                order.append(n)
            }
        }
        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): gradient.detached()]
        withNoGrad {
            for n in order.reversed() {
                guard var g = grads.removeValue(forKey: ObjectIdentifier(n)) else { continue }
                if n.isLeaf {
                    if n.grad != nil {
                        // in place when nobody else holds the accumulated gradient (copy-on-write otherwise)
                        n.grad!.addInPlace(g)
                    } else {
                        // A leaf's gradient owns its storage: backward functions may hand the same
                        // buffer to several inputs (add) or a view of the seed (reshape), and
                        // optimizers write gradients in place.
                        if !isKnownUniquelyReferenced(&g.storage) { g = g.copy() }
                        n.grad = g.detached()
                    }
                    continue
                }
                guard let fn = n.backward else {
                    preconditionFailure("backward through '\(n.label)' a second time; pass retainGraph: true the first time")
                }
                let inputGrads = fn(g)
                if !retainGraph { n.backward = nil }
                for (k, child) in n.inputs.enumerated() {
                    guard let child, k < inputGrads.count, var ig = inputGrads[k] else { continue }
                    if ig.shape != n.inputShapes[k] { ig = ig.sum(toShape: n.inputShapes[k]) }
                    let key = ObjectIdentifier(child)
                    if var acc = grads[key] {
                        grads[key] = nil
                        acc.addInPlace(ig)
                        grads[key] = acc
                    } else {
                        grads[key] = ig
                    }
                }
            }
        }
    }

    /// self += other, elementwise, same shape, without recording. Copies first if storage is shared.
    public mutating func addInPlace(_ other: Tensor) {
        precondition(other.shape == shape, "addInPlace: \(other.shape) into \(shape)")
        let src = other.storage.pointer.sendable
        withUnsafeMutableBuffer { dst in
            let d = dst.baseAddress!.sendable
            Parallel.forRange(dst.count) { r in
                for i in r { d[i] += src[i] }
            }
        }
    }
}
