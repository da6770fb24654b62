/// Canonical parameter names ↔ MindCV's (docs/checkpoints.md §3): norm renames, the per-family path
/// changes, and the projections MindCV keeps split where the canonical model fuses them.
public struct MindCVNameMap: Sendable {
    public let family: String

    public init(family: String) { self.family = family }

    /// The MindCV names (full cell paths) holding canonical tensor `key`. More than one name means
    /// the canonical tensor is their concatenation along axis 0, in the order given.
    public func mindcvNames(for key: String) -> [String] {
        var parts = key.split(separator: ".").map(String.init)
        guard let leaf = parts.popLast() else { return [key] }
        var module = parts
        // Norm renames: LayerNorm/BatchNorm weight → gamma, bias → beta, running_* → moving_*.
        if isNorm(module) {
            switch leaf {
            case "weight": parts.append("gamma")
            case "bias": parts.append("beta")
            case "running_mean": parts.append("moving_mean")
            case "running_var": parts.append("moving_variance")
            default: parts.append(leaf)
            }
        } else {
            parts.append(leaf)
        }
        module = Array(parts.dropLast())
        let last = parts[parts.count - 1]
        switch family {
        case "pit":
            // transformers.{i}.pool.* → pools.{i-1}.*; fused q/k/v.
            if module.count >= 3, module[0] == "transformers", module[2] == "pool", let i = Int(module[1]), i >= 1 {
                parts = ["pools", String(i - 1)] + parts.dropFirst(3)
            }
            if module.last == "qkv" { return split(module, ["q", "k", "v"], last) }
        case "pvt":
            // block{s}.{j}.* → Blocks.{s-1}.{j}.*
            if let first = module.first, first.hasPrefix("block"), let s = Int(first.dropFirst(5)), s >= 1 {
                parts[0] = "Blocks." + String(s - 1)
            }
        case "convit":
            if module == ["head"] { parts[0] = "classifier" }
            if module.last == "qk" { return split(module, ["q", "k"], last) }
            if module.last == "qkv" { return split(module, ["q", "k", "v"], last) }
        default: break
        }
        return [parts.joined(separator: ".")]
    }

    /// Whether `module` (a parameter's path without its leaf) is a LayerNorm or BatchNorm cell.
    func isNorm(_ module: [String]) -> Bool {
        guard let last = module.last else { return false }
        if last.hasPrefix("norm"), last.dropFirst(4).allSatisfy(\.isNumber) { return true }
        return family == "visformer" && module == ["stem", "1"]
    }

    private func split(_ module: [String], _ pieces: [String], _ leaf: String) -> [String] {
        let parent = module.dropLast().joined(separator: ".")
        return pieces.map { "\(parent).\($0).\(leaf)" }
    }

    /// MindSpore 2.x's own name for a full cell path: what `save_checkpoint(net)` writes and what
    /// `load_param_into_net(net, params, strict_load=True)` matches. PiT's stages and pools, appended to
    /// their lists after construction, lose the parent path: `transformers.0.blocks.1.…` is
    /// `0.blocks.1.…`, `transformers.2.blocks.0.…` is `0.blocks.2.blocks.0.…`, `pools.1.fc.…` is `1.fc.…`.
    public func mindspore2Name(_ full: String) -> String {
        guard family == "pit" else { return full }
        let p = full.split(separator: ".").map(String.init)
        if p.count > 3, p[0] == "transformers", p[2] == "blocks" {
            return ((p[1] == "0" ? ["0"] : ["0", "blocks", p[1]]) + p.dropFirst(2)).joined(separator: ".")
        }
        if p.count > 2, p[0] == "pools" { return p.dropFirst().joined(separator: ".") }
        return full
    }

    /// MindCV's dtype for a canonical tensor on export: PVT's position embeddings are Float16.
    public func mindcvDType(for key: String) -> String {
        if family == "pvt", key.hasPrefix("pos_embed") { return "Float16" }
        return "Float32"
    }
}
