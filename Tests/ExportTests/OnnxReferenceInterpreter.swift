import Foundation
import Protos
import Tensor

/// A small interpreter for the ONNX graphs the exporter writes, following the ONNX operator
/// definitions (attribute defaults, pads order, broadcasting) independently of the exporter's
/// lowering. It evaluates with the engine's kernels, so what it checks is the graph: wiring,
/// operator semantics, attributes and initializers. Unknown operators fail the run.
struct OnnxReferenceInterpreter {
    enum Value {
        case float(Tensor)
        case int64([Int], shape: [Int])
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    let graph: Onnx_GraphProto

    func run(input: Tensor) throws -> Tensor {
        var env: [String: Value] = [:]
        for t in graph.initializer { env[t.name] = try Self.decode(t) }
        env[graph.input[0].name] = .float(input)
        for node in graph.node {
            let ins = try node.input.map { name -> Value? in
                if name.isEmpty { return nil }
                guard let v = env[name] else { throw Failure(description: "\(node.name): input '\(name)' is not defined") }
                return v
            }
            env[node.output[0]] = try evaluate(node, ins)
        }
        guard case .float(let out)? = env[graph.output[0].name] else { throw Failure(description: "no float output") }
        return out
    }

    static func decode(_ t: Onnx_TensorProto) throws -> Value {
        let shape = t.dims.map { Int($0) }
        switch Onnx_TensorProto.DataType(rawValue: Int(t.dataType)) {
        case .float?:
            let n = shape.reduce(1, *)
            guard t.rawData.count == 4 * n else { throw Failure(description: "\(t.name): \(t.rawData.count) bytes for shape \(shape)") }
            let values = t.rawData.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            return .float(Tensor(shape: shape, values))
        case .int64?:
            return .int64(t.int64Data.map { Int($0) }, shape: shape)
        default:
            throw Failure(description: "\(t.name): data type \(t.dataType)")
        }
    }

    private func attr(_ node: Onnx_NodeProto, _ name: String) -> Onnx_AttributeProto? { node.attribute.first { $0.name == name } }
    private func int(_ node: Onnx_NodeProto, _ name: String, _ fallback: Int) -> Int { attr(node, name).map { Int($0.i) } ?? fallback }
    private func ints(_ node: Onnx_NodeProto, _ name: String) -> [Int]? { attr(node, name).map { $0.ints.map { Int($0) } } }

    private func evaluate(_ node: Onnx_NodeProto, _ ins: [Value?]) throws -> Value {
        func f(_ i: Int) throws -> Tensor {
            guard i < ins.count, case .float(let t)? = ins[i] else { throw Failure(description: "\(node.name): input \(i) is not a float tensor") }
            return t
        }
        func i64(_ i: Int) throws -> [Int] {
            guard i < ins.count, case .int64(let v, _)? = ins[i] else { throw Failure(description: "\(node.name): input \(i) is not int64") }
            return v
        }
        func axis(_ a: Int, _ rank: Int) -> Int { a < 0 ? a + rank : a }
        func elementwise(_ x: Tensor, _ body: (Float) -> Float) -> Tensor { Tensor(shape: x.shape, x.scalars.map(body)) }
        if ["Add", "Sub", "Mul", "Div"].contains(node.opType), case .float(let x)? = ins[0], case .float(let y)? = ins[1],
           Shape.broadcast(x.shape, y.shape) == nil {
            throw Failure(description: "\(node.name) (\(node.input)): shapes \(x.shape) and \(y.shape) do not broadcast")
        }
        switch node.opType {
        case "Identity": return ins[0]!
        case "Add": return .float(try f(0) + f(1))
        case "Sub": return .float(try f(0) - f(1))
        case "Div": return .float(try f(0) / f(1))
        case "Mul":
            if case .int64(let a, let s)? = ins[0], case .int64(let b, _)? = ins[1] { return .int64(zip(a, b).map { $0 * $1 }, shape: s) }
            return .float(try f(0) * f(1))
        case "Exp": return .float(try f(0).exp())
        case "Log": return .float(try f(0).log())
        case "Sqrt": return .float(try f(0).sqrt())
        case "Tanh": return .float(try f(0).tanh())
        case "Sigmoid": return .float(try f(0).sigmoid())
        case "Relu": return .float(try f(0).relu())
        case "Reciprocal": return .float(elementwise(try f(0)) { 1 / $0 })
        case "Erf": return .float(elementwise(try f(0)) { Float(Foundation.erf(Double($0))) })
        case "Transpose":
            let x = try f(0)
            return .float(x.permuted(ints(node, "perm") ?? Array((0..<x.rank).reversed())))
        case "MatMul": return .float(Tensor.matmul(try f(0), try f(1)))
        case "Gemm":
            let a = try f(0), b = try f(1)
            let alpha = attr(node, "alpha")?.f ?? 1, beta = attr(node, "beta")?.f ?? 1
            var y = Tensor.matmul(a, b, transposeA: int(node, "transA", 0) == 1, transposeB: int(node, "transB", 0) == 1) * alpha
            if ins.count > 2 { y = y + (try f(2)) * beta }
            return .float(y)
        case "Conv":
            let x = try f(0), w = try f(1)
            let pads = ints(node, "pads") ?? [0, 0, 0, 0], strides = ints(node, "strides") ?? [1, 1]
            guard pads[0] == pads[2] && pads[1] == pads[3], (ints(node, "dilations") ?? [1, 1]) == [1, 1] else {
                throw Failure(description: "\(node.name): asymmetric pads or dilation")
            }
            return .float(Tensor.conv2d(x, weight: w, bias: ins.count > 2 ? try f(2) : nil, stride: (strides[0], strides[1]),
                                        padding: (pads[0], pads[1]), groups: int(node, "group", 1)))
        case "LayerNormalization":
            let x = try f(0)
            guard axis(int(node, "axis", -1), x.rank) == x.rank - 1 else { throw Failure(description: "\(node.name): axis") }
            return .float(Tensor.layerNorm(x, weight: try f(1), bias: ins.count > 2 ? try f(2) : nil, eps: attr(node, "epsilon")?.f ?? 1e-5))
        case "BatchNormalization":
            return .float(Tensor.batchNorm(try f(0), weight: try f(1), bias: try f(2), runningMean: try f(3), runningVar: try f(4),
                                           training: false, eps: attr(node, "epsilon")?.f ?? 1e-5))
        case "Softmax", "LogSoftmax":
            let x = try f(0)
            let a = axis(int(node, "axis", -1), x.rank)
            return .float(node.opType == "Softmax" ? x.softmax(axis: a) : x.logSoftmax(axis: a))
        case "Reshape":
            let x = try f(0)
            var shape = try i64(1)
            for (k, d) in shape.enumerated() where d == 0 { shape[k] = x.shape[k] }
            return .float(x.reshaped(shape))
        case "Expand":
            let x = try f(0)
            guard let target = Shape.broadcast(x.shape, try i64(1)) else { throw Failure(description: "\(node.name): cannot expand") }
            return .float(x.expanded(to: target))
        case "Slice":
            let x = try f(0)
            let starts = try i64(1), ends = try i64(2), axes = ins.count > 3 ? try i64(3) : Array(0..<starts.count)
            var y = x
            for (k, a0) in axes.enumerated() {
                let a = axis(a0, x.rank), n = x.shape[a]
                let s = min(max(starts[k] < 0 ? starts[k] + n : starts[k], 0), n), e = min(max(ends[k] < 0 ? ends[k] + n : ends[k], 0), n)
                y = y.slice(axis: a, s..<e)
            }
            return .float(y)
        case "Concat":
            if case .int64? = ins[0] { return .int64(try (0..<ins.count).flatMap { try i64($0) }, shape: [try (0..<ins.count).map { try i64($0).count }.reduce(0, +)]) }
            let parts = try (0..<ins.count).map { try f($0) }
            return .float(Tensor.concat(parts, axis: axis(int(node, "axis", 0), parts[0].rank)))
        case "Gather":
            let indices = try i64(1)
            if case .int64(let v, _)? = ins[0] { return .int64(indices.map { v[$0] }, shape: [indices.count]) }
            let x = try f(0)
            return .float(x.gather(indices, axis: axis(int(node, "axis", 0), x.rank)))
        case "Shape":
            let x = try f(0)
            return .int64(x.shape, shape: [x.rank])
        case "ReduceSum", "ReduceMax":
            let x = try f(0)
            let axes = (ins.count > 1 ? try i64(1) : ints(node, "axes") ?? Array(0..<x.rank)).map { axis($0, x.rank) }
            let keep = int(node, "keepdims", 1) == 1
            if node.opType == "ReduceSum" { return .float(x.sum(axes: axes, keepDims: keep)) }
            guard axes.count == 1 else { throw Failure(description: "\(node.name): ReduceMax over several axes") }
            return .float(x.max(axis: axes[0], keepDims: keep))
        case "GlobalAveragePool":
            let x = try f(0)
            return .float(Tensor.adaptiveAvgPool2d(x, output: (1, 1)))
        case "AveragePool":
            let k = ints(node, "kernel_shape") ?? [], s = ints(node, "strides") ?? [1, 1], p = ints(node, "pads") ?? [0, 0, 0, 0]
            guard p[0] == p[2] && p[1] == p[3] else { throw Failure(description: "\(node.name): asymmetric pads") }
            return .float(Tensor.avgPool2d(try f(0), kernel: (k[0], k[1]), stride: (s[0], s[1]), padding: (p[0], p[1]),
                                           countIncludePad: int(node, "count_include_pad", 0) == 1))
        default:
            throw Failure(description: "\(node.name): operator \(node.opType) is not interpreted")
        }
    }
}
