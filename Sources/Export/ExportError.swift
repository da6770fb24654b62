import Foundation

/// Why a model could not be exported.
public enum ExportError: Error, CustomStringConvertible, Equatable {
    /// The forward pass ran an op the ONNX lowering does not know (`op` is its tape name).
    case unsupportedOp(op: String, reason: String)
    /// An option the exporter cannot honour.
    case invalidOption(name: String, reason: String)
    /// The traced forward passes at two batch sizes differ in more than the batch dimension.
    case batchDependentGraph(op: String, reason: String)
    /// Writing the output file failed.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unsupportedOp(op, reason): return "ONNX export: op '\(op)' cannot be exported: \(reason)"
        case let .invalidOption(name, reason): return "ONNX export: --\(name): \(reason)"
        case let .batchDependentGraph(op, reason): return "ONNX export: op '\(op)' depends on the batch size beyond its leading dimension: \(reason)"
        case let .writeFailed(path, reason): return "ONNX export: cannot write \(path): \(reason)"
        }
    }
}
