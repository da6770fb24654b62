import Foundation
import Protos
import Tensor

/// Lowers traced ops to standard ONNX operators (opset ≥ 17), one op at a time. The mapping of every
/// op is listed in docs/export.md.
struct OnnxLowering {
    var builder: OnnxGraphBuilder
    /// ONNX name of each traced value.
    let names: [String]
    /// Dimensions of each traced value (batch-dependent ones as multiples of the batch size).
    let dims: [[Dim]]
    let opset: Int

    private func rank(_ v: Int) -> Int { dims[v].count }
    private func fixedShape(_ v: Int, op: String) throws -> [Int] {
        try dims[v].map { d -> Int in
            guard case .fixed(let n) = d else {
                throw ExportError.batchDependentGraph(op: op, reason: "a weight or constant has a batch-sized dimension")
            }
            return n
        }
    }
    /// Transpose of the last two axes.
    private mutating func swapLastTwo(_ name: String, rank r: Int) -> String {
        var perm = Array(0..<r)
        perm.swapAt(r - 2, r - 1)
        return builder.add("Transpose", [name], [.ints("perm", perm)])
    }

    mutating func lower(_ op: TracedOp) throws {
        let ins = op.inputs.map { names[$0] }
        let out = names[op.output]
        let a = op.attributes
        func int(_ k: String) throws -> Int {
            guard case .int(let v)? = a[k] else { throw ExportError.unsupportedOp(op: op.kind, reason: "attribute '\(k)' was not traced") }
            return v
        }
        func ints(_ k: String) throws -> [Int] {
            guard case .ints(let v)? = a[k] else { throw ExportError.unsupportedOp(op: op.kind, reason: "attribute '\(k)' was not traced") }
            return v
        }
        func float(_ k: String) throws -> Float {
            guard case .float(let v)? = a[k] else { throw ExportError.unsupportedOp(op: op.kind, reason: "attribute '\(k)' was not traced") }
            return v
        }
        func bool(_ k: String) throws -> Bool {
            guard case .bool(let v)? = a[k] else { throw ExportError.unsupportedOp(op: op.kind, reason: "attribute '\(k)' was not traced") }
            return v
        }
        switch op.kind {
        case "linear":
            // x·Wᵀ + b: Gemm on matrices, else MatMul with the transposed weight (+ Add)
            if rank(op.inputs[0]) == 2 {
                builder.add("Gemm", ins, [.int("transB", 1)], output: out)
            } else {
                let wt = builder.add("Transpose", [ins[1]], [.ints("perm", [1, 0])])
                if ins.count == 3 {
                    builder.add("Add", [builder.add("MatMul", [ins[0], wt]), ins[2]], output: out)
                } else {
                    builder.add("MatMul", [ins[0], wt], output: out)
                }
            }
        case "matmul":
            let lhs = try bool("transposeA") ? swapLastTwo(ins[0], rank: rank(op.inputs[0])) : ins[0]
            let rhs = try bool("transposeB") ? swapLastTwo(ins[1], rank: rank(op.inputs[1])) : ins[1]
            builder.add("MatMul", [lhs, rhs], output: out)
        case "conv2d":
            let w = try fixedShape(op.inputs[1], op: op.kind)
            let stride = try ints("stride"), pad = try ints("padding")
            builder.add("Conv", ins, [.ints("kernel_shape", [w[2], w[3]]), .ints("strides", stride),
                                      .ints("pads", [pad[0], pad[1], pad[0], pad[1]]), .int("group", try int("groups")),
                                      .ints("dilations", [1, 1])], output: out)
        case "layer_norm":
            guard case .fixed(let c)? = dims[op.inputs[0]].last else {
                throw ExportError.batchDependentGraph(op: op.kind, reason: "the normalized axis is batch-sized")
            }
            var rest = Array(ins.dropFirst())
            let hasWeight = try bool("hasWeight"), hasBias = try bool("hasBias")
            let scale = hasWeight ? rest.removeFirst() : builder.constant(floats: Array(repeating: 1, count: c), shape: [c])
            let bias = hasBias ? [rest.removeFirst()] : []
            builder.add("LayerNormalization", [ins[0], scale] + bias, [.int("axis", -1), .float("epsilon", try float("eps"))], output: out)
        case "batch_norm":
            if try bool("training") { throw ExportError.unsupportedOp(op: op.kind, reason: "BatchNorm ran in training mode") }
            guard let mean = op.tensorAttributes["runningMean"], let variance = op.tensorAttributes["runningVar"] else {
                throw ExportError.unsupportedOp(op: op.kind, reason: "running statistics were not traced")
            }
            builder.add("BatchNormalization", ins + [names[mean], names[variance]], [.float("epsilon", try float("eps"))], output: out)
        case "permute":
            builder.add("Transpose", ins, [.ints("perm", try ints("order"))], output: out)
        case "reshape":
            builder.add("Reshape", [ins[0], builder.shapeTensor(dims[op.output])], output: out)
        case "expand":
            builder.add("Expand", [ins[0], builder.shapeTensor(dims[op.output])], output: out)
        case "slice":
            let axis = try int("axis")
            builder.add("Slice", [ins[0], builder.constant(int64s: [try int("start")]), builder.constant(int64s: [try int("end")]),
                                  builder.constant(int64s: [axis])], output: out)
        case "concat":
            builder.add("Concat", ins, [.int("axis", try int("axis"))], output: out)
        case "gather":
            builder.add("Gather", [ins[0], builder.constant(int64s: try ints("indices"))], [.int("axis", try int("axis"))], output: out)
        case "add", "sub", "mul", "div":
            let type = ["add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div"][op.kind] ?? ""
            builder.add(type, ins, output: out)
        case "affine":
            let scale = try float("scale"), shift = try float("shift")
            switch (scale == 1, shift == 0) {
            case (true, true): builder.add("Identity", ins, output: out)
            case (false, true): builder.add("Mul", [ins[0], builder.scalar(scale)], output: out)
            case (true, false): builder.add("Add", [ins[0], builder.scalar(shift)], output: out)
            case (false, false): builder.add("Add", [builder.add("Mul", [ins[0], builder.scalar(scale)]), builder.scalar(shift)], output: out)
            }
        case "exp", "log", "sqrt", "tanh", "sigmoid", "relu":
            let type = ["exp": "Exp", "log": "Log", "sqrt": "Sqrt", "tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"][op.kind] ?? ""
            builder.add(type, ins, output: out)
        case "rsqrt":
            builder.add("Reciprocal", [builder.add("Sqrt", ins)], output: out)
        case "gelu_tanh":
            // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
            let x = ins[0]
            let cube = builder.add("Mul", [builder.add("Mul", [x, x]), x])
            let inner = builder.add("Add", [x, builder.add("Mul", [cube, builder.scalar(0.044715)])])
            let t = builder.add("Tanh", [builder.add("Mul", [inner, builder.scalar(Float((2 / Double.pi).squareRoot()))])])
            builder.add("Mul", [builder.add("Mul", [x, builder.scalar(0.5)]), builder.add("Add", [t, builder.scalar(1)])], output: out)
        case "gelu_erf":
            // 0.5·x·(1 + erf(x/√2))
            let x = ins[0]
            let e = builder.add("Erf", [builder.add("Mul", [x, builder.scalar(Float(1 / 2.0.squareRoot()))])])
            builder.add("Mul", [builder.add("Mul", [x, builder.scalar(0.5)]), builder.add("Add", [e, builder.scalar(1)])], output: out)
        case "softmax":
            builder.add("Softmax", ins, [.int("axis", -1)], output: out)
        case "log_softmax":
            builder.add("LogSoftmax", ins, [.int("axis", -1)], output: out)
        case "sum":
            let keep = try bool("keepDims") ? 1 : 0
            builder.add("ReduceSum", [ins[0], builder.constant(int64s: try ints("axes"))], [.int("keepdims", keep)], output: out)
        case "max":
            let keep = try bool("keepDims") ? 1 : 0, axis = try int("axis")
            if opset >= 18 {
                builder.add("ReduceMax", [ins[0], builder.constant(int64s: [axis])], [.int("keepdims", keep)], output: out)
            } else {
                builder.add("ReduceMax", ins, [.ints("axes", [axis]), .int("keepdims", keep)], output: out)
            }
        case "avg_pool2d":
            let pad = try ints("padding")
            builder.add("AveragePool", ins, [.ints("kernel_shape", try ints("kernel")), .ints("strides", try ints("stride")),
                                             .ints("pads", [pad[0], pad[1], pad[0], pad[1]]),
                                             .int("count_include_pad", try bool("countIncludePad") ? 1 : 0)], output: out)
        case "adaptive_avg_pool2d":
            let inShape = dims[op.inputs[0]], outShape = dims[op.output]
            guard case .fixed(let ih) = inShape[2], case .fixed(let iw) = inShape[3],
                  case .fixed(let oh) = outShape[2], case .fixed(let ow) = outShape[3] else {
                throw ExportError.batchDependentGraph(op: op.kind, reason: "spatial size depends on the batch")
            }
            if oh == 1 && ow == 1 {
                builder.add("GlobalAveragePool", ins, output: out)
            } else if ih % oh == 0 && iw % ow == 0 {
                builder.add("AveragePool", ins, [.ints("kernel_shape", [ih / oh, iw / ow]), .ints("strides", [ih / oh, iw / ow])], output: out)
            } else {
                throw ExportError.unsupportedOp(op: op.kind, reason: "\(ih)x\(iw) to \(oh)x\(ow) has uneven windows")
            }
        case "attention":
            // softmax(scale·q·kᵀ)·v per leading index; channel-major operands are [..., d, N]
            let r = rank(op.inputs[0])
            let s = builder.scalar(try float("scale"))
            if try bool("channelMajor") {
                let logits = builder.add("MatMul", [swapLastTwo(ins[0], rank: r), ins[1]])  // [..., Nq, Nk]
                let p = builder.add("Softmax", [builder.add("Mul", [logits, s])], [.int("axis", -1)])
                builder.add("MatMul", [ins[2], swapLastTwo(p, rank: r)], output: out)  // [..., dv, Nq]
            } else {
                let logits = builder.add("MatMul", [ins[0], swapLastTwo(ins[1], rank: r)])
                let p = builder.add("Softmax", [builder.add("Mul", [logits, s])], [.int("axis", -1)])
                builder.add("MatMul", [p, ins[2]], output: out)
            }
        case "gpsa_mix":
            // (1 − g)·softmax(scale·L) + g·P with L: [B, h, N, N], P: [h, N, N], g: [h]
            let heads = try fixedShape(op.inputs[2], op: op.kind)[0]
            let content = builder.add("Softmax", [builder.add("Mul", [ins[0], builder.scalar(try float("scale"))])], [.int("axis", -1)])
            let g = builder.add("Reshape", [ins[2], builder.constant(int64s: [heads, 1, 1])])
            let kept = builder.add("Mul", [content, builder.add("Sub", [builder.scalar(1), g])])
            builder.add("Add", [kept, builder.add("Mul", [ins[1], g])], output: out)
        default:
            throw ExportError.unsupportedOp(op: op.kind, reason: "no ONNX lowering (dropout and drop-path only run in training mode)")
        }
    }
}
