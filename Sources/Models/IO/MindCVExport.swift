import Tensor

/// Canonical weights → the entries of a MindCV `.ckpt` (docs/checkpoints.md §5): MindCV's names,
/// fused projections split back into MindCV's separate ones, PVT's position embeddings as Float16.
public enum MindCVExport {
    /// Entries for `keys` of `stateDict`, in that order, named as MindSpore 2.x names MindCV's
    /// parameters (what `save_checkpoint(net)` writes and strict loading matches), or with
    /// `cellPaths` by full cell paths (older MindSpore versions, training scripts that name by path).
    public static func entries(_ stateDict: [String: Tensor], keys: [String], family: String,
                               cellPaths: Bool = false) throws -> [MindSporeCheckpointWriter.Entry] {
        let map = MindCVNameMap(family: family)
        var out: [MindSporeCheckpointWriter.Entry] = []
        for key in keys {
            guard let t = stateDict[key] else { throw WeightsError.missing(path: "state dict", keys: [key]) }
            let names = map.mindcvNames(for: key).map { cellPaths ? $0 : map.mindspore2Name($0) }
            let dtype = map.mindcvDType(for: key)
            if names.count == 1 {
                out.append(.init(tag: names[0], tensor: t, dtype: dtype))
                continue
            }
            guard let rows = t.shape.first, rows % names.count == 0 else {
                throw WeightsError.badEntry(path: "state dict", entry: key, reason: "shape \(t.shape) does not split into \(names.count) equal blocks of rows")
            }
            let part = rows / names.count
            let rowSize = t.count / max(rows, 1)
            let shape = [part] + t.shape.dropFirst()
            t.withUnsafeBuffer { b in
                for (i, name) in names.enumerated() {
                    let piece = Tensor(uninitializedShape: shape)
                    let dst = piece.storage.pointer
                    let base = i * part * rowSize
                    for j in 0..<(part * rowSize) { dst[j] = b[base + j] }
                    out.append(.init(tag: name, tensor: piece, dtype: dtype))
                }
            }
        }
        return out
    }
}
