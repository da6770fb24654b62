import Foundation

// Op tracing: while a tracer is installed (task-local, like `GradMode`), every op reports its kind,
// inputs, output and the attributes that its output alone does not determine. The ONNX exporter
// (Sources/Export, docs/export.md) builds its graph from these reports, so an exported model is the
// forward pass that actually ran. When no tracer is installed an op pays one task-local read and
// never evaluates its attributes (they are an autoclosure).

/// A value that shapes an op beyond its tensor inputs (an axis, a permutation, an epsilon, ...), or
/// a tensor the op read without taking it as a differentiable input (BatchNorm's running statistics).
public enum OpAttribute: @unchecked Sendable {
    case int(Int)
    case ints([Int])
    case float(Float)
    case bool(Bool)
    case tensor(Tensor)
}

public typealias OpAttributes = [String: OpAttribute]

/// Receives a report of every op run on the task where it is installed.
public protocol OpTracer: AnyObject, Sendable {
    /// `op` is the name the op records on the tape (`"linear"`, `"permute"`, ...); `inputs` are the
    /// tensors it read, in the order it records them; `output` is its result.
    func record(op: String, inputs: [Tensor], output: Tensor, attributes: OpAttributes)
}

public enum OpTrace {
    @TaskLocal public static var current: (any OpTracer)?

    /// Reports an op to the installed tracer, if any.
    @inline(__always)
    public static func note(_ op: String, inputs: [Tensor], output: Tensor, attributes: @autoclosure () -> OpAttributes) {
        if let tracer = current { tracer.record(op: op, inputs: inputs, output: output, attributes: attributes()) }
    }
}

/// Runs `body` with `tracer` receiving every op it runs.
public func withOpTracer<R>(_ tracer: any OpTracer, _ body: () throws -> R) rethrows -> R {
    try OpTrace.$current.withValue(tracer) { try body() }
}
