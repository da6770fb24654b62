import Foundation
import Tensor

/// The on-disk formats of weights vitzoo reads, recognised by content (the extension is only a hint).
public enum WeightsFormat: String, Sendable {
    /// safetensors with canonical names (vitzoo's own checkpoints, timm/whai362 exports).
    case safetensors
    /// A MindSpore `.ckpt` (protobuf) with MindCV names.
    case mindsporeCheckpoint = "mindspore"

    /// Looks at the first bytes: a `.ckpt` starts with 0x0a (its first entry's key) or one of
    /// MindSpore's encryption magics; safetensors with an 8-byte header length then `{`.
    public static func detect(path: String) throws -> WeightsFormat {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw WeightsError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission or I/O error" : "no such file")
        }
        defer { try? handle.close() }
        let bytes = Array((try? handle.read(upToCount: 9)) ?? Data())
        if let cipher = MindSporeCheckpointFile.encryptionCipher(Data(bytes)) { throw WeightsError.encrypted(path: path, cipher: cipher) }
        if bytes.first == 0x0A { return .mindsporeCheckpoint }
        if bytes.count == 9, bytes[8] == UInt8(ascii: "{") { return .safetensors }
        if bytes.isEmpty { throw WeightsError.corrupt(path: path, entry: "(none)", offset: 0, reason: "the file is empty") }
        throw WeightsError.unknownFormat(path: path, firstBytes: bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " "))
    }
}

/// Canonical-name weights read from a file of either format.
public struct LoadedWeights {
    public var stateDict: [String: Tensor]
    public var format: WeightsFormat
    /// What the reader did that the user should know: skipped entries, EMA, short names.
    public var notes: [String] = []
}

/// Reads weights for model `modelName` from `path`, whatever its format: safetensors as they are
/// (canonical names), a MindSpore `.ckpt` mapped onto the model's canonical keys (MindCV names,
/// split projections, Float16 → Float32; training state skipped). `ema` takes a `.ckpt`'s
/// `ema.<name>` entries; `verifyCRC` checks a `.ckpt`'s CRC trailer.
public func loadWeights(path: String, modelName: String?, ema: Bool = false, verifyCRC: Bool = false) throws -> LoadedWeights {
    switch try WeightsFormat.detect(path: path) {
    case .safetensors:
        return LoadedWeights(stateDict: try SafeTensorsFile(path: path).tensors, format: .safetensors)
    case .mindsporeCheckpoint:
        guard let modelName else { throw WeightsError.needsModel(path: path) }
        let entry = try ModelRegistry.entry(modelName)
        let file = try MindSporeCheckpointFile(path: path, verifyCRC: verifyCRC)
        let imported = try MindCVImport.stateDict(from: file, family: entry.family, expected: canonicalKeys(of: entry), ema: ema)
        var notes: [String] = []
        if !imported.skippedSummary.isEmpty { notes.append("\(path): \(imported.skippedSummary)") }
        if imported.usedEMA { notes.append("\(path): using the ema.<name> (moving-average) weights") }
        return LoadedWeights(stateDict: imported.stateDict, format: .mindsporeCheckpoint, notes: notes)
    }
}

/// The canonical parameter and buffer names of a registered model (names do not depend on the
/// class count or image size; the model is built without initialising its weights).
public func canonicalKeys(of entry: ModelEntry) -> [String] {
    let model = Initializer.withoutInitialization { entry.build(ModelOptions()) }
    return model.namedParameters().map(\.name) + model.namedBuffers().map(\.name)
}
