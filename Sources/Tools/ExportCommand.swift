import ArgumentParser
import Foundation
import Models
import Tensor
import Trainer

/// `zoo export --model NAME (--ckpt_path W | --pretrained) --format mindcv|safetensors --output F`.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a model's weights in another format: a MindCV .ckpt (loads in MindSpore) or safetensors with canonical names.")

    /// Output formats; each case is one writer in `write(_:to:)`.
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case mindcv, safetensors
    }

    @Option(name: .long, help: "Registered model name.") var model: String
    @Option(name: [.customLong("ckpt_path"), .customLong("ckpt-path")], help: "Weights to export: safetensors, MindSpore .ckpt, or a run directory.")
    var ckptPath: String?
    @Flag(name: .long, help: "Export the model card's published weights (downloaded into the cache when missing).") var pretrained = false
    @Option(name: .long, help: "mindcv (MindSpore .ckpt with MindCV's names) or safetensors (canonical names).") var format: Format
    @Option(name: [.short, .long], help: "Output file.") var output: String
    @Flag(name: .long, help: "With --format mindcv: append MindSpore's crc_num trailer.") var crc = false
    @Flag(name: .customLong("cell-paths"), help: "With --format mindcv: name tensors by full cell paths (older MindSpore) instead of MindSpore 2.x's parameter names.")
    var cellPaths = false

    func validate() throws {
        if pretrained == (ckptPath != nil) { throw ValidationError("give exactly one of --ckpt_path and --pretrained") }
    }

    func run() throws {
        let source = try ckptPath ?? PretrainedWeights.localFile(for: model, progress: downloadProgress)
        let session = try InferenceSession(modelName: model, checkpoint: source)
        let entry = try ModelRegistry.entry(model)
        let keys = session.model.namedParameters().map(\.name) + session.model.namedBuffers().map(\.name)
        try write(ExportedModel(family: entry.family, name: model, stateDict: session.model.stateDict(), keys: keys), to: output)
        emit("wrote \(keys.count) tensors of \(model) (\(session.numClasses) classes) as \(format.rawValue) to \(output)")
    }

    struct ExportedModel {
        var family: String, name: String
        var stateDict: [String: Tensor]
        var keys: [String]
    }

    func write(_ m: ExportedModel, to path: String) throws {
        switch format {
        case .mindcv:
            try MindSporeCheckpointWriter.write(try MindCVExport.entries(m.stateDict, keys: m.keys, family: m.family, cellPaths: cellPaths), to: path, crcTrailer: crc)
        case .safetensors:
            try SafeTensorsFile.write(m.stateDict, metadata: ["format": "pt", "model": m.name], to: path)
        }
    }
}

/// Download progress on standard error.
@Sendable func downloadProgress(_ bytes: Int64, _ total: Int64) {
    let mb = Double(bytes) / 1_048_576
    let line = total > 0 ? String(format: "\rdownloading: %.1f / %.1f MB", mb, Double(total) / 1_048_576) : String(format: "\rdownloading: %.1f MB", mb)
    FileHandle.standardError.write(Data(line.utf8))
}
