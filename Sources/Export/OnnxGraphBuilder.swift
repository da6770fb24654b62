import Foundation
import Protos
import Tensor

/// A dimension of an exported tensor: a fixed size, or a multiple of the batch size.
enum Dim: Equatable {
    case fixed(Int)
    case batch(Int)
}

/// Appends ONNX nodes and initializers; hands out fresh value names and shares equal constants.
struct OnnxGraphBuilder {
    private(set) var nodes: [Onnx_NodeProto] = []
    private(set) var initializers: [Onnx_TensorProto] = []
    private var counter = 0
    private var constants: [String: String] = [:]
    private var batchSizeName: String?
    /// Name of the graph input (its dimension 0 is the batch size).
    let inputName: String

    init(inputName: String) { self.inputName = inputName }

    mutating func fresh(_ hint: String) -> String {
        counter += 1
        return "\(hint)_\(counter)"
    }

    /// Adds a node; returns its (first) output name, `output` when given.
    @discardableResult
    mutating func add(_ opType: String, _ inputs: [String], _ attributes: [Onnx_AttributeProto] = [], output: String? = nil) -> String {
        var n = Onnx_NodeProto()
        n.opType = opType
        n.input = inputs
        let out = output ?? fresh(opType)
        n.output = [out]
        n.name = "\(opType)_\(nodes.count)"
        n.attribute = attributes
        nodes.append(n)
        return out
    }

    mutating func addInitializer(name: String, tensor: Tensor) {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = tensor.shape.map { Int64($0) }
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        t.rawData = tensor.withUnsafeBuffer { Data(buffer: $0) }
        initializers.append(t)
    }

    /// A float32 constant (shared with an equal earlier one).
    mutating func constant(floats: [Float], shape: [Int]) -> String {
        let key = "f\(shape):\(floats.map { $0.bitPattern })"
        if let name = constants[key] { return name }
        let name = fresh("const")
        addInitializer(name: name, tensor: Tensor(shape: shape, floats))
        constants[key] = name
        return name
    }

    mutating func scalar(_ v: Float) -> String { constant(floats: [v], shape: []) }

    /// An int64 constant (shapes, axes, indices).
    mutating func constant(int64s: [Int], shape: [Int]? = nil) -> String {
        let dims = shape ?? [int64s.count]
        let key = "i\(dims):\(int64s)"
        if let name = constants[key] { return name }
        let name = fresh("const")
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims.map { Int64($0) }
        t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        t.int64Data = int64s.map { Int64($0) }
        initializers.append(t)
        constants[key] = name
        return name
    }

    /// A 1-D int64 shape tensor for `dims`: a constant when no dimension depends on the batch, else
    /// built at run time from the batch size (`Shape(input)[0]`).
    mutating func shapeTensor(_ dims: [Dim]) -> String {
        var fixed: [Int] = []
        for d in dims { if case .fixed(let n) = d { fixed.append(n) } }
        if fixed.count == dims.count { return constant(int64s: fixed) }
        let batch = batchSize()
        var parts: [String] = []
        var run: [Int] = []
        for d in dims {
            switch d {
            case .fixed(let n): run.append(n)
            case .batch(let m):
                if !run.isEmpty { parts.append(constant(int64s: run)); run = [] }
                parts.append(m == 1 ? batch : add("Mul", [batch, constant(int64s: [m])]))
            }
        }
        if !run.isEmpty { parts.append(constant(int64s: run)) }
        return add("Concat", parts, [.int("axis", 0)])
    }

    /// The batch size as a 1-element int64 tensor, computed once from the graph input's shape.
    private mutating func batchSize() -> String {
        if let batchSizeName { return batchSizeName }
        let shape = add("Shape", [inputName])
        let b = add("Gather", [shape, constant(int64s: [0])], [.int("axis", 0)], output: "batch_size")
        batchSizeName = b
        return b
    }

    /// Drops nodes (and then initializers) that no graph output depends on.
    mutating func prune(outputs: [String]) {
        var needed = Set(outputs)
        var kept: [Onnx_NodeProto] = []
        for n in nodes.reversed() where n.output.contains(where: needed.contains) {
            kept.append(n)
            for i in n.input where !i.isEmpty { needed.insert(i) }
        }
        nodes = kept.reversed()
        initializers = initializers.filter { needed.contains($0.name) }
    }
}

extension Onnx_AttributeProto {
    static func int(_ name: String, _ v: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .int; a.i = Int64(v); return a
    }
    static func ints(_ name: String, _ v: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .ints; a.ints = v.map { Int64($0) }; return a
    }
    static func float(_ name: String, _ v: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto(); a.name = name; a.type = .float; a.f = v; return a
    }
}
