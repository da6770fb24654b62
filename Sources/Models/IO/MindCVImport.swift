import Tensor

/// A MindSpore checkpoint turned into a canonical-name state dict (docs/checkpoints.md §4).
public struct ImportedWeights {
    /// Exactly the expected canonical keys.
    public var stateDict: [String: Tensor]
    /// File entries not used, as one grouped line (empty when every entry was used).
    public var skippedSummary: String
    public var skippedCount: Int
    /// Whether the weights came from the file's `ema.<name>` entries.
    public var usedEMA: Bool
    /// Whether the file named parameters by MindSpore 2.x's short names (`0.blocks.0.norm1.gamma`).
    public var usedShortNames: Bool
}

/// Maps a MindSpore checkpoint written from MindCV's model classes onto canonical keys.
public enum MindCVImport {
    /// Entry names (or `<prefix>.`) of training state rather than weights.
    static let trainingStatePrefixes = ["adam_m.", "adam_v.", "moments.", "moment1.", "moment2.", "accum.", "mean_grad.",
                                        "mean_square.", "velocity.", "ema.", "linear.", "v.", "m."]
    static let trainingStateNames: Set<String> = ["beta1_power", "beta2_power", "global_step", "learning_rate", "momentum",
                                                  "scale_sense", "current_iterator_step", "last_overflow_iterator_step",
                                                  "updates", "random_op", "epoch_num", "step_num", "loss_scale"]

    /// Reads the canonical tensors `expected` (in any order) from `file`: each from its MindCV
    /// name (full cell path or MindSpore 2.x's short name), split projections concatenated,
    /// half and double precision converted to Float32. With `ema`, `ema.<name>` entries take the
    /// place of the weights they average (tensors without one keep the plain entry). Throws
    /// naming every missing key; reports everything else in the file as skipped.
    public static func stateDict(from file: MindSporeCheckpointFile, family: String, expected: [String],
                                 ema: Bool = false) throws -> ImportedWeights {
        let map = MindCVNameMap(family: family)
        if family == "vit", file.entries.contains(where: { $0.tag.hasPrefix("backbone.transformer.") }) {
            throw WeightsError.oldViTLayout(path: file.path)
        }
        let sources = expected.map { map.mindcvNames(for: $0) }
        let wanted = Set(sources.joined())

        // Resolve the file's tags to full MindCV names: exact first, then short names.
        var plain: [String: MindSporeCheckpointFile.Entry] = [:]
        var averaged: [String: MindSporeCheckpointFile.Entry] = [:]
        var skipped: [String] = []
        var usedShort = false
        var pendingShort: [(MindSporeCheckpointFile.Entry, isEMA: Bool, name: String)] = []
        for e in file.entries {
            var name = e.tag
            var isEMA = false
            if name.hasPrefix("ema.") { isEMA = true; name = String(name.dropFirst(4)) }
            if isEMA && !ema { skipped.append(e.tag); continue }
            if wanted.contains(name) {
                if isEMA { averaged[name] = e } else { plain[name] = e }
            } else if !isEMA && isTrainingState(name) {
                skipped.append(e.tag)
            } else {
                pendingShort.append((e, isEMA, name))
            }
        }
        let wantedParts = wanted.map { ($0, $0.split(separator: ".").map(String.init)) }
        for (e, isEMA, name) in pendingShort {
            let tagParts = name.split(separator: ".").map(String.init)
            var best: [String] = [], bestLength = 1
            for (full, parts) in wantedParts where parts.count >= 3 {
                let rest = parts.dropFirst()
                guard rest.count <= tagParts.count, tagParts.suffix(rest.count).elementsEqual(rest) else { continue }
                if rest.count > bestLength { best = [full]; bestLength = rest.count } else if rest.count == bestLength { best.append(full) }
            }
            if best.count > 1 { throw WeightsError.ambiguous(path: file.path, entry: e.tag, candidates: best.sorted()) }
            guard let full = best.first else { skipped.append(e.tag); continue }
            let claimed = isEMA ? averaged[full] : plain[full]
            if let claimed {
                throw WeightsError.ambiguous(path: file.path, entry: e.tag, candidates: [full + " (already read from '\(claimed.tag)')"])
            }
            if isEMA { averaged[full] = e } else { plain[full] = e }
            usedShort = true
        }
        if ema && averaged.isEmpty {
            throw WeightsError.badEntry(path: file.path, entry: "ema.*", reason: "EMA weights were asked for but the file has no ema.<name> entries")
        }

        // Assemble the canonical tensors.
        var missing: [String] = []
        var out: [String: Tensor] = [:]
        for (key, names) in zip(expected, sources) {
            let entries = names.compactMap { averaged[$0] ?? plain[$0] }
            guard entries.count == names.count else {
                missing.append(names.count == 1 ? key : "\(key) (from \(names.filter { averaged[$0] == nil && plain[$0] == nil }.joined(separator: ", ")))")
                continue
            }
            let parts = try entries.map { try file.floatTensor($0) }
            out[key] = try concatenateRows(parts, entries: entries, path: file.path)
        }
        if !missing.isEmpty { throw WeightsError.missing(path: file.path, keys: missing) }
        if ema {
            // Plain entries shadowed by an average are not skipped silently.
            for (name, e) in plain where averaged[name] != nil { skipped.append(e.tag) }
        }
        return ImportedWeights(stateDict: out, skippedSummary: summarize(skipped), skippedCount: skipped.count,
                               usedEMA: ema, usedShortNames: usedShort)
    }

    static func isTrainingState(_ name: String) -> Bool {
        trainingStateNames.contains(name) || trainingStatePrefixes.contains { name.hasPrefix($0) }
    }

    /// Concatenation along axis 0 of tensors that agree on their other axes.
    static func concatenateRows(_ parts: [Tensor], entries: [MindSporeCheckpointFile.Entry], path: String) throws -> Tensor {
        guard parts.count > 1 else { return parts[0] }
        let tail = Array(parts[0].shape.dropFirst())
        for (t, e) in zip(parts, entries) where t.shape.isEmpty || Array(t.shape.dropFirst()) != tail {
            throw WeightsError.badEntry(path: path, entry: e.tag, reason: "shape \(t.shape) does not stack with '\(entries[0].tag)' \(parts[0].shape)")
        }
        let out = Tensor(uninitializedShape: [parts.reduce(0) { $0 + $1.shape[0] }] + tail)
        var dst = out.storage.pointer
        for t in parts {
            t.withUnsafeBuffer { b in
                for i in 0..<b.count { dst[i] = b[i] }
                dst += b.count
            }
        }
        return out
    }

    /// One line: `skipped 12 entries: adam_m.* (4), adam_v.* (4), beta1_power, global_step, …`.
    static func summarize(_ tags: [String]) -> String {
        guard !tags.isEmpty else { return "" }
        var groups: [String: Int] = [:]
        var order: [String] = []
        for t in tags {
            let g: String
            if let dot = t.firstIndex(of: "."), isTrainingState(String(t[...dot])) || t.hasPrefix("ema.") {
                g = String(t[..<dot]) + ".*"
            } else {
                g = t
            }
            if groups[g] == nil { order.append(g) }
            groups[g, default: 0] += 1
        }
        let listed = order.prefix(12).map { groups[$0]! > 1 ? "\($0) (\(groups[$0]!))" : $0 }
        return "skipped \(tags.count) entries that are not weights of the model: " + listed.joined(separator: ", ") +
            (order.count > 12 ? ", … (\(order.count - 12) more)" : "")
    }
}
