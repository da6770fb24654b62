/// Everything that can go wrong in the data pipeline. Every case that concerns a file or folder
/// carries its path, and `description` is a complete sentence naming it.
public enum DataError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `data_dir/<split>` does not exist.
    case missingSplit(path: String)
    /// A path that should be a folder is something else.
    case notADirectory(path: String)
    /// The split folder holds no class sub-folders.
    case noClasses(path: String)
    /// The split holds class folders but not a single image file.
    case noImages(path: String)
    /// A class folder holds no image file.
    case emptyClass(path: String)
    /// The class folders of a split differ from the expected ones (usually train's).
    case classMismatch(path: String, missing: [String], unexpected: [String])
    /// A file or folder could not be read (permissions, vanished, I/O error).
    case unreadable(path: String, reason: String)
    /// An image file that is neither JPEG nor PNG, judged by its first bytes.
    case unsupportedFormat(path: String)
    /// An image whose bytes do not decode (corrupt or truncated).
    case corruptImage(path: String, reason: String)
    /// An image whose declared size exceeds `ImageDecoder.maxPixels` (decompression-bomb guard).
    case imageTooLarge(path: String, width: Int, height: Int)
    /// A sample and all its replacements failed to load.
    case replacementFailed(path: String, attempts: Int)
    /// A configuration value is out of range or does not parse (MindCV key name).
    case invalidConfig(key: String, reason: String)
    /// A malformed IDX (MNIST-format) file.
    case malformedIDX(path: String, reason: String)
    /// A compressed (.gz) stream that is corrupt or truncated.
    case corruptArchive(path: String, reason: String)
    /// The output folder of a conversion already exists.
    case outputExists(path: String)
    /// A file or folder could not be written.
    case writeFailed(path: String, reason: String)

    /// True for the per-sample failures the loader may skip (and replace) when not strict.
    public var isSampleFailure: Bool {
        switch self {
        case .unreadable, .unsupportedFormat, .corruptImage, .imageTooLarge: return true
        default: return false
        }
    }

    /// The path the error is about, if any.
    public var path: String? {
        switch self {
        case .missingSplit(let p), .notADirectory(let p), .noClasses(let p), .noImages(let p),
             .emptyClass(let p), .unsupportedFormat(let p), .outputExists(let p):
            return p
        case .classMismatch(let p, _, _), .unreadable(let p, _), .corruptImage(let p, _),
             .imageTooLarge(let p, _, _), .replacementFailed(let p, _), .malformedIDX(let p, _),
             .corruptArchive(let p, _), .writeFailed(let p, _):
            return p
        case .invalidConfig:
            return nil
        }
    }

    public var description: String {
        switch self {
        case .missingSplit(let p): return "dataset split folder \(p) does not exist"
        case .notADirectory(let p): return "\(p) is not a folder"
        case .noClasses(let p): return "dataset split \(p) has no class folders (expected \(p)/<class>/<image>)"
        case .noImages(let p): return "dataset split \(p) contains no .jpg/.jpeg/.png images"
        case .emptyClass(let p): return "class folder \(p) contains no .jpg/.jpeg/.png images"
        case .classMismatch(let p, let missing, let unexpected):
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing \(missing.joined(separator: ", "))") }
            if !unexpected.isEmpty { parts.append("unexpected \(unexpected.joined(separator: ", "))") }
            return "class folders of \(p) differ from the training split: \(parts.joined(separator: "; "))"
        case .unreadable(let p, let r): return "cannot read \(p): \(r)"
        case .unsupportedFormat(let p): return "\(p) is neither a JPEG nor a PNG image"
        case .corruptImage(let p, let r): return "corrupt image \(p): \(r)"
        case .imageTooLarge(let p, let w, let h): return "image \(p) is too large to decode (\(w)x\(h))"
        case .replacementFailed(let p, let n): return "sample \(p) and \(n) random replacements all failed to load"
        case .invalidConfig(let k, let r): return "invalid value for \(k): \(r)"
        case .malformedIDX(let p, let r): return "malformed IDX file \(p): \(r)"
        case .corruptArchive(let p, let r): return "corrupt compressed file \(p): \(r)"
        case .outputExists(let p): return "output folder \(p) already exists (pass --overwrite to replace it)"
        case .writeFailed(let p, let r): return "cannot write \(p): \(r)"
        }
    }
}
