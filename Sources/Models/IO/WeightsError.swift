import Foundation

/// Errors reading weights from MindSpore `.ckpt` files, recognising a weights file's format, and
/// mapping MindCV names onto the canonical ones. Each names the file and, where it applies, the entry.
public enum WeightsError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    /// Neither safetensors nor a MindSpore checkpoint.
    case unknownFormat(path: String, firstBytes: String)
    /// A MindSpore checkpoint encrypted with `enc_key` (AES-GCM, AES-CBC or SM4-CBC).
    case encrypted(path: String, cipher: String)
    /// The protobuf structure is broken at `offset`; `entry` is the entry being read (or the last good one).
    case corrupt(path: String, entry: String, offset: Int, reason: String)
    case badEntry(path: String, entry: String, reason: String)
    case crcMismatch(path: String, stored: UInt32, computed: UInt32)
    case unsupportedDType(path: String, entry: String, dtype: String)
    /// Two file entries claim the same model tensor, or a short name fits two full names.
    case ambiguous(path: String, entry: String, candidates: [String])
    case missing(path: String, keys: [String])
    case needsModel(path: String)
    case oldViTLayout(path: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(p, r): return "\(p): cannot read: \(r)"
        case let .unknownFormat(p, b):
            return "\(p): not a weights file vitzoo reads (first bytes \(b)); expected safetensors (an 8-byte header length, then '{') or a MindSpore .ckpt (first byte 0x0a)"
        case let .encrypted(p, c):
            return "\(p): this MindSpore checkpoint is encrypted (\(c)); decrypt it with MindSpore (load_checkpoint with dec_key, then save_checkpoint without enc_key) and pass the plain file"
        case let .corrupt(p, e, o, r): return "\(p): corrupt MindSpore checkpoint at byte \(o), entry '\(e)': \(r)"
        case let .badEntry(p, e, r): return "\(p): entry '\(e)': \(r)"
        case let .crcMismatch(p, s, c):
            return "\(p): CRC-32 check failed: the trailer holds \(s) but the entries give \(c) (the file is damaged)"
        case let .unsupportedDType(p, e, d): return "\(p): entry '\(e)' has dtype '\(d)', which vitzoo cannot convert to Float32"
        case let .ambiguous(p, e, c): return "\(p): entry '\(e)' matches more than one model tensor: \(c.joined(separator: ", "))"
        case let .missing(p, k):
            return "\(p): the checkpoint lacks \(k.count) tensor(s) the model needs: \(k.joined(separator: ", ")) (is it a checkpoint of another model or family?)"
        case let .needsModel(p): return "\(p): a MindSpore .ckpt is read for a given model: pass --model"
        case let .oldViTLayout(p):
            return "\(p): this ViT checkpoint uses MindCV's old layout (backbone.transformer.layers.…) from before its timm-style rewrite; vitzoo reads the current layout only (see docs/checkpoints.md)"
        case let .writeFailed(p, r): return "\(p): cannot write: \(r)"
        }
    }
}
