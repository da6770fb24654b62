import Export
import Models
import Protos
import Tensor
import TestSupport
import XCTest

/// ONNX export of the fixture configurations of all five families: the graph is well formed
/// (every node input defined, standard operators only, initializers under the canonical names with
/// the parameters' shapes, opset 17, metadata), and running it with a reference interpreter gives
/// the fixtures' eval logits (Tests/Fixtures, tolerance 1e-4 of the largest logit, as the fixture
/// tests use).
final class OnnxExportTests: XCTestCase {
    /// The fixture cases and their configurations (as in Tests/ModelsTests; 7 classes).
    static let cases: [(name: String, build: @Sendable () -> any Classifier)] = [
        ("pit_tiny", { PiT(config: PiTConfig(imageSize: 32, patchSize: 8, stride: 4, baseDims: [4, 4, 4], depth: [1, 2, 1], heads: [2, 4, 8]),
                           options: ModelOptions(numClasses: 7)) }),
        ("vit_tiny", { ViT(config: ViTConfig(imageSize: 32, patchSize: 8, embedDim: 32, depth: 2, heads: 4, mlpRatio: 4, qkvBias: true),
                           options: ModelOptions(numClasses: 7)) }),
        ("pvt_tiny", { PyramidVisionTransformer(config: PVTConfig(imageSize: 64, patchSize: 4, embedDims: [8, 16, 24, 32], numHeads: [1, 2, 3, 4],
                                                                  mlpRatios: [8, 8, 4, 4], depths: [1, 2, 1, 2], srRatios: [8, 4, 2, 1], qkvBias: true),
                                                options: ModelOptions(numClasses: 7)) }),
        ("convit_tiny_g8", { ConViT(config: ConViTConfig(imageSize: 32, patchSize: 4, embedDim: 36, depth: 3, heads: 9, localUpToLayer: 1,
                                                         localityStrength: 2), options: ModelOptions(numClasses: 7)) }),
        ("visformer_tiny", { Visformer(config: VisformerConfig(imageSize: 64, initChannels: 8, embedDim: 24, depths: [0, 2, 1, 1],
                                                               numHeads: [2, 2, 2, 2]), options: ModelOptions(numClasses: 7)) }),
        ("visformer_tiny_v2", { Visformer(config: VisformerConfig(imageSize: 64, initChannels: 8, embedDim: 32, depths: [1, 1, 2, 1],
                                                                  numHeads: [1, 2, 2, 4], qkScaleExponent: -0.5), options: ModelOptions(numClasses: 7)) }),
    ]

    /// Operators the exporter may emit (docs/export.md).
    static let standardOps: Set<String> = [
        "Gemm", "MatMul", "Transpose", "Add", "Sub", "Mul", "Div", "Conv", "LayerNormalization", "BatchNormalization", "Reshape",
        "Expand", "Slice", "Concat", "Gather", "Identity", "Exp", "Log", "Sqrt", "Tanh", "Sigmoid", "Relu", "Reciprocal", "Erf",
        "Softmax", "LogSoftmax", "ReduceSum", "ReduceMax", "AveragePool", "GlobalAveragePool", "Shape",
    ]

    /// A fixture model with the fixture's weights, its input and its eval logits.
    func fixture(_ name: String, _ build: () -> any Classifier) throws -> (model: any Classifier, input: Tensor, logits: Tensor) {
        let st = try SafeTensorsFile(path: Fixtures.path("\(name).safetensors"))
        var weights: [String: Tensor] = [:]
        for (k, v) in st.tensors {
            if k.hasPrefix("param.") { weights[String(k.dropFirst(6))] = v }
            if k.hasPrefix("buffer.") { weights[String(k.dropFirst(7))] = v.copy() }
        }
        let model = build()
        try model.load(stateDict: weights, source: "\(name).safetensors")
        return (model, try XCTUnwrap(st.tensors["input"]), try XCTUnwrap(st.tensors["logits_eval"]))
    }

    /// Structural checks of an exported graph against the model it came from.
    func checkGraph(_ proto: Onnx_ModelProto, model: any Classifier, case name: String) {
        XCTAssertEqual(proto.opsetImport.map(\.version), [17], name)
        XCTAssertEqual(proto.opsetImport.first?.domain, "", name)
        let g = proto.graph
        var defined = Set(g.initializer.map(\.name) + g.input.map(\.name))
        for node in g.node {
            XCTAssertTrue(Self.standardOps.contains(node.opType), "\(name): non-standard operator \(node.opType)")
            XCTAssertEqual(node.domain, "", "\(name): \(node.name) has a custom domain")
            for i in node.input where !i.isEmpty {
                XCTAssertTrue(defined.contains(i), "\(name): \(node.name) reads '\(i)' before it is defined")
            }
            for o in node.output {
                XCTAssertFalse(defined.contains(o), "\(name): '\(o)' is defined twice")
                defined.insert(o)
            }
        }
        XCTAssertTrue(defined.contains(OnnxExporter.outputName), "\(name): the output is never computed")
        let initializers = Dictionary(g.initializer.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(initializers.count, g.initializer.count, "\(name): duplicate initializer names")
        for (pname, p) in model.namedParameters() {
            guard let t = initializers[pname] else { XCTFail("\(name): parameter \(pname) is not an initializer"); continue }
            XCTAssertEqual(t.dims.map { Int($0) }, p.shape, "\(name): shape of \(pname)")
            XCTAssertEqual(t.rawData.count, 4 * p.value.count, "\(name): bytes of \(pname)")
        }
        for (bname, b) in model.namedBuffers() {
            XCTAssertEqual(initializers[bname]?.dims.map { Int($0) }, b.shape, "\(name): buffer \(bname)")
        }
    }

    func testFixtureModelsExportAndReproduceTheirLogits() throws {
        for (name, build) in Self.cases {
            let (model, input, reference) = try fixture(name, build)
            let batch = input.shape[0]
            let dims = Array(input.shape.dropFirst())
            let tolerance = 1e-4 * maxAbs(reference)
            for mode in [BatchDimension.fixed(batch), .dynamic] {
                let proto = try OnnxExporter.export(model, channels: dims[0], height: dims[1], width: dims[2],
                                                    options: OnnxExportOptions(batch: mode))
                checkGraph(proto, model: model, case: name)
                // the serialized form parses back to the same graph
                let parsed = try Onnx_ModelProto(serializedBytes: try proto.serializedData())
                XCTAssertEqual(parsed.graph.node.count, proto.graph.node.count, name)
                let logits = try OnnxReferenceInterpreter(graph: parsed.graph).run(input: input)
                XCTAssertEqual(logits.shape, reference.shape, "\(name) \(mode)")
                let err = maxAbsDiff(logits, reference)
                XCTAssertLessThanOrEqual(err, tolerance, "\(name) \(mode): interpreted ONNX logits differ by \(err)")
                let inputDim = parsed.graph.input[0].type.tensorType.shape.dim[0]
                switch mode {
                case .fixed(let n): XCTAssertEqual(inputDim.dimValue, Int64(n), name)
                case .dynamic: XCTAssertEqual(inputDim.dimParam, "batch", name)
                }
            }
        }
    }

    /// Dynamic-batch and fixed-batch exports run at a batch size the model was never traced at (5),
    /// with the model's logits, for every family (PVT builds a per-batch constant, `zeros([B, 1, C])`).
    func testExportsRunAtUntracedBatchSizes() throws {
        for (name, build) in Self.cases {
            let (model, input, _) = try fixture(name, build)
            var generator = RandomGenerator(seed: 3)
            let x = Tensor.concat([input, Tensor.randn([5 - input.shape[0]] + Array(input.shape.dropFirst()), generator: &generator)], axis: 0)
            model.eval()
            let expected = withNoGrad { model(x) }
            for mode in [BatchDimension.dynamic, .fixed(5)] {
                let proto = try OnnxExporter.export(model, channels: x.shape[1], height: x.shape[2], width: x.shape[3],
                                                    options: OnnxExportOptions(batch: mode))
                let got = try OnnxReferenceInterpreter(graph: proto.graph).run(input: x)
                XCTAssertEqual(got.shape, expected.shape, "\(name) \(mode)")
                XCTAssertLessThanOrEqual(maxAbsDiff(got, expected), 1e-4 * maxAbs(expected), "\(name) \(mode)")
                if mode == .dynamic {
                    XCTAssertTrue(proto.graph.node.contains { $0.opType == "Shape" }, "\(name): reshapes take the batch size from the input")
                }
            }
        }
    }

    func testMetadataAndExactGELUForm() throws {
        let model = ViT(config: ViTConfig(imageSize: 32, patchSize: 8, embedDim: 32, depth: 1, heads: 4, mlpRatio: 4, qkvBias: true, gelu: .none),
                        options: ModelOptions(numClasses: 5))
        let meta = OnnxExporter.metadata(model: "vit_tiny", inputSize: [3, 32, 32], cropPct: 0.875, interpolation: "bicubic",
                                         mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], numClasses: 5)
        let proto = try OnnxExporter.export(model, channels: 3, height: 32, width: 32, options: OnnxExportOptions(opset: 18, metadata: meta))
        let props = Dictionary(proto.metadataProps.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(props["mean"], "0.485,0.456,0.406")
        XCTAssertEqual(props["std"], "0.229,0.224,0.225")
        XCTAssertEqual(props["input_size"], "3,32,32")
        XCTAssertEqual(proto.opsetImport.first?.version, 18)
        XCTAssertTrue(proto.graph.node.contains { $0.opType == "Erf" }, "timm's exact GELU is written with Erf")
        XCTAssertFalse(proto.graph.node.contains { $0.opType == "Tanh" })
        var generator = RandomGenerator(seed: 5)
        let x = Tensor.randn([1, 3, 32, 32], generator: &generator)
        model.eval()
        let expected = withNoGrad { model(x) }
        XCTAssertLessThanOrEqual(maxAbsDiff(try OnnxReferenceInterpreter(graph: proto.graph).run(input: x), expected), 1e-4 * maxAbs(expected))
    }

    func testBadOptionsGiveTypedErrors() throws {
        let model = Self.cases[0].build()
        XCTAssertThrowsError(try OnnxExporter.export(model, channels: 3, height: 32, width: 32, options: OnnxExportOptions(opset: 13))) {
            XCTAssertEqual($0 as? ExportError, .invalidOption(name: "opset", reason: "13 is not supported; use 17-21"))
        }
        XCTAssertThrowsError(try OnnxExporter.export(model, channels: 3, height: 32, width: 32, options: OnnxExportOptions(batch: .fixed(0)))) {
            XCTAssertEqual($0 as? ExportError, .invalidOption(name: "batch_size", reason: "must be at least 1, got 0"))
        }
        XCTAssertThrowsError(try OnnxExporter.write(Onnx_ModelProto(), to: "/nonexistent-dir/model.onnx")) {
            guard case .writeFailed(let path, _)? = $0 as? ExportError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, "/nonexistent-dir/model.onnx")
        }
    }

    /// The export leaves the model's train/eval flag as it was.
    func testExportRestoresTrainingFlag() throws {
        let model = Self.cases[0].build()
        model.train()
        _ = try OnnxExporter.export(model, channels: 3, height: 32, width: 32)
        XCTAssertTrue(model.isTraining)
    }
}
