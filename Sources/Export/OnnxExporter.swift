import Foundation
import Models
import Protos
import SwiftProtobuf
import Tensor

/// The batch dimension of an exported model.
public enum BatchDimension: Equatable, Sendable {
    /// Exactly this many images per run.
    case fixed(Int)
    /// Any batch size (the input's dimension 0 is the symbolic `batch`).
    case dynamic
}

public struct OnnxExportOptions: Sendable {
    /// Default ONNX opset; 17 is the first with LayerNormalization.
    public static let defaultOpset = 17
    public static let supportedOpsets = 17...21
    public var opset: Int
    public var batch: BatchDimension
    /// Written to the model's `metadata_props` (see `OnnxExporter.metadata`).
    public var metadata: [(key: String, value: String)]
    public var producerVersion: String

    public init(opset: Int = defaultOpset, batch: BatchDimension = .fixed(1), metadata: [(key: String, value: String)] = [],
                producerVersion: String = "") {
        self.opset = opset; self.batch = batch; self.metadata = metadata; self.producerVersion = producerVersion
    }
}

/// ONNX export of a zoo model: the model's own forward pass is run under an op tracer (twice, at
/// batch sizes 2 and 3, to tell batch-sized dimensions from fixed ones) and every traced op is
/// lowered to standard ONNX operators. Parameters and buffers become initializers under their
/// canonical names. See docs/export.md.
public enum OnnxExporter {
    public static let inputName = "input"
    public static let outputName = "logits"

    /// Exports `model` for inputs `[batch, channels, height, width]`. The model is run in eval mode
    /// (its train/eval flag is restored afterwards).
    public static func export(_ model: any Classifier, channels: Int, height: Int, width: Int,
                              options: OnnxExportOptions = OnnxExportOptions()) throws -> Onnx_ModelProto {
        guard OnnxExportOptions.supportedOpsets.contains(options.opset) else {
            throw ExportError.invalidOption(name: "opset", reason: "\(options.opset) is not supported; use \(OnnxExportOptions.supportedOpsets.lowerBound)-\(OnnxExportOptions.supportedOpsets.upperBound)")
        }
        if case .fixed(let n) = options.batch, n < 1 {
            throw ExportError.invalidOption(name: "batch_size", reason: "must be at least 1, got \(n)")
        }
        let wasTraining = model.isTraining
        model.eval()
        defer { model.train(wasTraining) }
        let named = model.namedParameters().map { ($0.name, $0.parameter.value) } + model.namedBuffers().map { ($0.name, $0.buffer.value) }
        // batch sizes 2 and 3, not 1: at batch 1 some ops are no-ops that record nothing (an
        // expand of a class token to its own shape)
        let one = try trace(model, named: named, shape: [2, channels, height, width])
        let two = try trace(model, named: named, shape: [3, channels, height, width])
        let dims = try batchDims(one, two)

        // names: the input, canonical names for weights, fresh names for constants and op outputs
        var names = [String](repeating: "", count: one.tracer.sources.count)
        for (id, source) in one.tracer.sources.enumerated() {
            switch source {
            case .input: names[id] = inputName
            case .parameter(let name): names[id] = name
            case .constant: names[id] = "constant_\(id)"
            case .op(let k): names[id] = "\(one.tracer.ops[k].kind)_\(k)"
            }
        }
        names[one.output] = outputName
        let resolved: [[Dim]] = dims.map { ds in
            ds.map { d in
                if case .fixed(let b) = options.batch, case .batch(let m) = d { return .fixed(b * m) }
                return d
            }
        }
        var lowering = OnnxLowering(builder: OnnxGraphBuilder(inputName: inputName), names: names, dims: resolved, opset: options.opset)
        let tensors = Dictionary(named, uniquingKeysWith: { a, _ in a })
        for (id, source) in one.tracer.sources.enumerated() {
            switch source {
            case .parameter(let name): if let t = tensors[name] { lowering.builder.addInitializer(name: name, tensor: t) }
            case .constant(let t):
                if dims[id].contains(where: { if case .batch = $0 { return true } else { return false } }) {
                    // a constant made per batch (`zeros([B, 1, C])`): one sample, expanded to the batch
                    let sample = try batchInvariantSample(t, dims: dims[id], id: id)
                    lowering.builder.addInitializer(name: names[id] + "_sample", tensor: sample)
                    lowering.builder.add("Expand", [names[id] + "_sample", lowering.builder.shapeTensor(resolved[id])], output: names[id])
                } else {
                    lowering.builder.addInitializer(name: names[id], tensor: t)
                }
            default: break
            }
        }
        for op in one.tracer.ops { try lowering.lower(op) }
        var builder = lowering.builder
        builder.prune(outputs: [outputName])

        var graph = Onnx_GraphProto()
        graph.name = "vitzoo"
        graph.node = builder.nodes
        graph.initializer = builder.initializers
        graph.input = [valueInfo(inputName, resolved[0])]
        graph.output = [valueInfo(outputName, resolved[one.output])]
        var proto = Onnx_ModelProto()
        proto.irVersion = 8
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(options.opset)
        proto.opsetImport = [opset]
        proto.producerName = "vitzoo"
        proto.producerVersion = options.producerVersion
        proto.graph = graph
        proto.metadataProps = options.metadata.map { kv in
            var e = Onnx_StringStringEntryProto(); e.key = kv.key; e.value = kv.value; return e
        }
        return proto
    }

    /// The `metadata_props` entries of an exported model: the evaluation transform (mean and std on
    /// the 0–1 scale, input size, crop percentage, interpolation) and the model's name.
    public static func metadata(model: String, inputSize: [Int], cropPct: Double, interpolation: String,
                                mean: [Double], std: [Double], numClasses: Int, extra: [(key: String, value: String)] = [])
        -> [(key: String, value: String)] {
        func list(_ v: [Double]) -> String { v.map { String(format: "%.6g", $0) }.joined(separator: ",") }
        return [("model", model), ("input_size", inputSize.map(String.init).joined(separator: ",")),
                ("crop_pct", String(format: "%.6g", cropPct)), ("interpolation", interpolation),
                ("mean", list(mean)), ("std", list(std)), ("num_classes", String(numClasses)),
                ("input_layout", "NCHW, RGB, (pixel/255 - mean)/std")] + extra
    }

    /// Serialises `proto` to `path` (temporary file + rename).
    public static func write(_ proto: Onnx_ModelProto, to path: String) throws {
        let data: Data
        do { data = try proto.serializedData() } catch { throw ExportError.writeFailed(path: path, reason: "\(error)") }
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw ExportError.writeFailed(path: path, reason: error.localizedDescription)
        }
    }

    private struct Trace { let tracer: GraphTracer; let output: Int }

    private static func trace(_ model: any Classifier, named: [(String, Tensor)], shape: [Int]) throws -> Trace {
        let tracer = GraphTracer(named: named)
        var generator = RandomGenerator(seed: 1)
        let x = Tensor.randn(shape, generator: &generator)
        let y: Tensor = withNoGrad {
            withOpTracer(tracer) {
                tracer.addInput(x)
                return model(x)
            }
        }
        let out = tracer.value(of: y)
        guard case .op = tracer.sources[out] else {
            throw ExportError.unsupportedOp(op: "forward", reason: "the model's output was not computed by a traced op")
        }
        return Trace(tracer: tracer, output: out)
    }

    /// Dimensions of every value: equal in both traces → fixed; in proportion 2 : 3 → a multiple of
    /// the batch size. Anything else (or differing ops) cannot be exported.
    private static func batchDims(_ one: Trace, _ two: Trace) throws -> [[Dim]] {
        let a = one.tracer, b = two.tracer
        guard a.ops.count == b.ops.count, a.shapes.count == b.shapes.count, one.output == two.output else {
            throw ExportError.batchDependentGraph(op: "forward", reason: "the forward pass runs different ops at batch sizes 2 and 3")
        }
        for (x, y) in zip(a.ops, b.ops) {
            guard x.kind == y.kind, x.inputs == y.inputs, x.output == y.output, x.tensorAttributes == y.tensorAttributes,
                  describe(x.attributes) == describe(y.attributes) else {
                throw ExportError.batchDependentGraph(op: x.kind, reason: "its inputs or attributes differ at batch sizes 2 and 3")
            }
        }
        return try zip(a.shapes, b.shapes).enumerated().map { id, pair in
            let (s1, s2) = pair
            guard s1.count == s2.count else {
                throw ExportError.batchDependentGraph(op: opName(a, id), reason: "rank differs: \(s1) vs \(s2)")
            }
            return try zip(s1, s2).map { d1, d2 in
                if d1 == d2 { return .fixed(d1) }
                if 3 * d1 == 2 * d2 { return .batch(d2 - d1) }
                throw ExportError.batchDependentGraph(op: opName(a, id), reason: "shape \(s1) at batch 2 but \(s2) at batch 3")
            }
        }
    }

    /// The first sample of a constant whose leading dimension is the batch (and no other dimension
    /// depends on it), checking that every sample is the same.
    private static func batchInvariantSample(_ t: Tensor, dims: [Dim], id: Int) throws -> Tensor {
        guard dims.first == .batch(1), !dims.dropFirst().contains(where: { if case .batch = $0 { return true } else { return false } }) else {
            throw ExportError.batchDependentGraph(op: "constant", reason: "a constant of shape \(t.shape) depends on the batch size beyond its first dimension")
        }
        let sample = t.slice(axis: 0, 0..<1).detached()
        let n = sample.count, values = t.scalars
        for b in 1..<t.shape[0] where Array(values[(b * n)..<((b + 1) * n)]) != Array(values[0..<n]) {
            throw ExportError.batchDependentGraph(op: "constant", reason: "a constant of shape \(t.shape) differs between samples")
        }
        return sample
    }

    private static func opName(_ t: GraphTracer, _ id: Int) -> String {
        if case .op(let k) = t.sources[id] { return t.ops[k].kind }
        return "constant"
    }

    private static func describe(_ attributes: OpAttributes) -> String {
        attributes.keys.sorted().map { k -> String in
            switch attributes[k] {
            case .int(let v)?: return "\(k)=\(v)"
            case .ints(let v)?: return "\(k)=\(v)"
            case .float(let v)?: return "\(k)=\(v.bitPattern)"
            case .bool(let v)?: return "\(k)=\(v)"
            case .tensor(let t)?: return "\(k)=\(t.shape)"
            case nil: return k
            }
        }.joined(separator: ";")
    }

    private static func valueInfo(_ name: String, _ dims: [Dim]) -> Onnx_ValueInfoProto {
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            switch d {
            case .fixed(let n): dim.dimValue = Int64(n)
            case .batch(let m): dim.dimParam = m == 1 ? "batch" : "batch*\(m)"
            }
            return dim
        }
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensor.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensor
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type = type
        return info
    }
}
