import ArgumentParser
import Export
import Foundation
import Models
import Tensor
import Trainer

/// `zoo export --model NAME (--ckpt_path P | --random_weights) --format onnx --output model.onnx [--image_size N]
/// [--opset 17] [--batch_size N | --dynamic_batch]` (docs/export.md); `--format mindcv` (a MindSpore .ckpt
/// with MindCV's names) or `--format safetensors` (canonical names) write the weights (docs/checkpoints.md).
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Write a model in another format: ONNX, a MindCV .ckpt, or safetensors.")

    @Option(name: .long) var model: String
    @Option(name: [.customLong("ckpt_path"), .customLong("ckpt-path")],
            help: "Checkpoint to export.")
    var ckptPath: String?
    @Flag(name: [.customLong("random_weights"), .customLong("random-weights")], help: "Export the untrained initial weights (no --ckpt_path).")
    var randomWeights = false
    @Flag(name: .long, help: "Export the model card's published MindCV weights (cached in $VITZOO_HOME, downloaded when missing).")
    var pretrained = false
    @Option(name: .long, help: "onnx, mindcv (MindSpore .ckpt with MindCV's names) or safetensors (canonical names)") var format: String
    @Flag(name: .long, help: "With --format mindcv: append MindSpore's crc_num trailer.") var crc = false
    @Flag(name: .customLong("cell-paths"), help: "With --format mindcv: name tensors by full cell paths (older MindSpore) instead of MindSpore 2.x's parameter names.")
    var cellPaths = false
    @Option(name: .long, help: "Output file (written to a temporary file and renamed).") var output: String
    @Option(name: [.customLong("image_size"), .customLong("image-size")], help: "Input side (default: the checkpoint's recipe, else the model's).")
    var imageSize: Int?
    @Option(name: .long, help: "ONNX opset (17-21).") var opset = OnnxExportOptions.defaultOpset
    @Option(name: [.customLong("batch_size"), .customLong("batch-size")], help: "Fixed batch size of the exported model.")
    var batchSize: Int?
    @Flag(name: [.customLong("dynamic_batch"), .customLong("dynamic-batch")], help: "Export with a symbolic batch dimension.")
    var dynamicBatch = false
    @Option(name: [.customLong("num_classes"), .customLong("num-classes")], help: "Classes without a checkpoint (default 1000).")
    var numClasses: Int?
    @OptionGroup var eval: EvalTransformOptions

    func validate() throws {
        if !["onnx", "mindcv", "safetensors"].contains(format.lowercased()) {
            throw ValidationError("--format must be onnx, mindcv or safetensors, got '\(format)'")
        }
        if dynamicBatch && batchSize != nil { throw ValidationError("give --batch_size or --dynamic_batch, not both") }
        if let batchSize, batchSize < 1 { throw ValidationError("--batch_size must be at least 1") }
        if let imageSize, imageSize < 1 { throw ValidationError("--image_size must be positive") }
        if !OnnxExportOptions.supportedOpsets.contains(opset) {
            throw ValidationError("--opset must be between \(OnnxExportOptions.supportedOpsets.lowerBound) and \(OnnxExportOptions.supportedOpsets.upperBound)")
        }
        if pretrained && (ckptPath != nil || randomWeights) { throw ValidationError("--pretrained replaces --ckpt_path and --random_weights") }
        if ckptPath == nil && !randomWeights && !pretrained { throw ValidationError("give --ckpt_path, or --random_weights to export the untrained initial weights") }
        if ckptPath != nil && randomWeights { throw ValidationError("give --ckpt_path or --random_weights, not both") }
        if ckptPath != nil && numClasses != nil { throw ValidationError("--num_classes is taken from the checkpoint; give it only without --ckpt_path") }
    }

    func run() throws {
        var settings = try eval.settings()
        if let imageSize { settings.imageResize = imageSize }
        let source = pretrained ? try PretrainedWeights.localFile(for: model, progress: downloadProgress) : ckptPath
        let session = try InferenceSession(modelName: model, checkpoint: source, settings: settings, classes: numClasses,
                                           numerics: try eval.chosenNumerics(), randomWeights: randomWeights)
        if format.lowercased() != "onnx" { return try writeWeights(session) }
        let t = session.transform
        let metadata = OnnxExporter.metadata(
            model: model, inputSize: [3, t.outputHeight, t.outputWidth], cropPct: t.cropPct, interpolation: t.interpolation.rawValue,
            mean: t.normalization.mean.map { Double($0) / 255 }, std: t.normalization.std.map { Double($0) / 255 },
            numClasses: session.numClasses,
            extra: [("numerics", (session.entry.numerics ?? .mindcv).rawValue), ("checkpoint", ckptPath ?? "none (initial weights)")] + (session.classNames.map { [("class_names", $0.joined(separator: "\n"))] } ?? []))
        let options = OnnxExportOptions(opset: opset, batch: dynamicBatch ? .dynamic : .fixed(batchSize ?? 1), metadata: metadata,
                                        producerVersion: "zoo")
        let proto = try OnnxExporter.export(session.model, channels: 3, height: t.outputHeight, width: t.outputWidth, options: options)
        try OnnxExporter.write(proto, to: output)
        print("\(output): \(model) as ONNX opset \(opset), input [\(dynamicBatch ? "batch" : String(batchSize ?? 1)), 3, \(t.outputHeight), \(t.outputWidth)], \(proto.graph.node.count) nodes, \(proto.graph.initializer.count) initializers")
    }

    /// `--format mindcv|safetensors`: the loaded model's weights.
    func writeWeights(_ session: InferenceSession) throws {
        let keys = session.model.namedParameters().map(\.name) + session.model.namedBuffers().map(\.name)
        let state = session.model.stateDict()
        if format.lowercased() == "mindcv" {
            let entries = try MindCVExport.entries(state, keys: keys, family: session.entry.family, cellPaths: cellPaths)
            try MindSporeCheckpointWriter.write(entries, to: output, crcTrailer: crc)
        } else {
            try SafeTensorsFile.write(state, metadata: ["format": "pt", "model": model], to: output)
        }
        print("wrote \(keys.count) tensors of \(model) (\(session.numClasses) classes) as \(format.lowercased()) to \(output)")
    }
}

/// Download progress on standard error.
@Sendable func downloadProgress(_ bytes: Int64, _ total: Int64) {
    let mb = Double(bytes) / 1_048_576
    let line = total > 0 ? String(format: "\rdownloading: %.1f / %.1f MB", mb, Double(total) / 1_048_576) : String(format: "\rdownloading: %.1f MB", mb)
    FileHandle.standardError.write(Data(line.utf8))
}
