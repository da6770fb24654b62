// Loading a checkpoint into a model of another class count, input channel count or image size
// (docs/finetuning.md): the classifier is re-initialised, the first conv adapted and the position
// embeddings resampled; anything else that does not fit stays an error naming the tensor.

import Tensor

/// How a family stores a position embedding, for resampling to another image size.
public enum PositionEmbeddingLayout: Sendable, Equatable {
    /// `[1, C, H, W]` (PiT, Visformer).
    case map
    /// `[1, P + H·W, C]`: `P` leading rows (class token) kept as they are, then row-major tokens
    /// (ViT P = 1, ConViT P = 0, PVT stages 1–3 P = 0 and stage 4 P = 1).
    case sequence(prefixTokens: Int)
}

/// What `loadAdapting` changed to make a checkpoint fit.
public struct WeightAdaptation: Sendable, Equatable {
    public struct Change: Sendable, Equatable {
        public var name: String
        public var checkpointShape: [Int]
        public var modelShape: [Int]
    }
    /// A 1001-class classifier loaded into a 1000-class model without its first row (the background
    /// class of early ImageNet checkpoints), as MindCV's `load_pretrained` does.
    public var backgroundRowDropped: [Change] = []
    /// Classifier tensors kept at the model's fresh initialisation (shape or class count differs,
    /// or absent from the checkpoint).
    public var reinitialised: [Change] = []
    /// The first conv's weight, summed (1 channel) or repeated and scaled (timm's `adapt_input_conv`).
    public var inputConv: [Change] = []
    /// Position embeddings resampled bicubically to the model's grid.
    public var resampled: [Change] = []
    /// Checkpoint classifier tensors dropped because the model has no head.
    public var dropped: [String] = []

    public var isEmpty: Bool {
        backgroundRowDropped.isEmpty && reinitialised.isEmpty && inputConv.isEmpty && resampled.isEmpty && dropped.isEmpty
    }

    /// One line per kind of change, for the log.
    public var lines: [String] {
        func list(_ c: [Change]) -> String { c.map { "\($0.name) \($0.checkpointShape) → \($0.modelShape)" }.joined(separator: ", ") }
        var out: [String] = []
        if !backgroundRowDropped.isEmpty { out.append("classifier's background class (first row) dropped: " + list(backgroundRowDropped)) }
        if !reinitialised.isEmpty { out.append("classifier re-initialised (checkpoint does not fit num_classes): " + list(reinitialised)) }
        if !inputConv.isEmpty { out.append("first conv adapted to the input channels: " + list(inputConv)) }
        if !resampled.isEmpty { out.append("position embeddings resampled (bicubic) to the image size: " + list(resampled)) }
        if !dropped.isEmpty { out.append("classifier tensors dropped (the model has no head): " + dropped.joined(separator: ", ")) }
        return out
    }
}

extension Classifier {
    /// Loads `stateDict` like a strict `load`, except that (docs/finetuning.md) classifier tensors
    /// (`classifier.*`) that do not fit are re-initialised, a `firstConv.weight` with another input
    /// channel count is adapted, and position embeddings of another grid are resampled bicubically.
    /// Any other missing, unexpected or mismatched tensor throws `StateDictMismatch`, naming it with
    /// both shapes, and nothing is written. Returns what was adapted.
    @discardableResult
    public func loadAdapting(stateDict: [String: Tensor], firstConv: String, classifier: String,
                             source: String = "state dict") throws -> WeightAdaptation {
        var report = WeightAdaptation()
        var adapted = stateDict
        var own: [(String, Tensor)] = namedParameters().map { ($0.name, $0.parameter.value) }
        own += namedBuffers().map { ($0.name, $0.buffer.value) }
        let headPrefix = classifier + "."
        let layouts = positionEmbeddingLayouts
        for (name, target) in own {
            guard let src = stateDict[name] else {
                if name.hasPrefix(headPrefix) {
                    adapted[name] = target.copy()
                    report.reinitialised.append(.init(name: name, checkpointShape: [], modelShape: target.shape))
                }
                continue
            }
            if src.shape == target.shape { continue }
            let change = WeightAdaptation.Change(name: name, checkpointShape: src.shape, modelShape: target.shape)
            if name.hasPrefix(headPrefix), let rows = dropBackgroundRow(src, to: target.shape) {
                adapted[name] = rows
                report.backgroundRowDropped.append(change)
            } else if name.hasPrefix(headPrefix) {
                adapted[name] = target.copy()
                report.reinitialised.append(change)
            } else if name == firstConv + ".weight", let w = adaptInputConv(src, to: target.shape) {
                adapted[name] = w
                report.inputConv.append(change)
            } else if let layout = layouts[name], let r = resamplePositionEmbedding(src, layout: layout, to: target.shape) {
                adapted[name] = r
                report.resampled.append(change)
            }
            // Anything else is left as it is: the strict load below names it with both shapes.
        }
        // Every classifier tensor is reset together, so a head is never half old, half new.
        if !report.reinitialised.isEmpty {
            for (name, target) in own where name.hasPrefix(headPrefix) && !report.reinitialised.contains(where: { $0.name == name }) {
                adapted[name] = target.copy()
                report.reinitialised.append(.init(name: name, checkpointShape: stateDict[name]?.shape ?? [], modelShape: target.shape))
            }
            report.backgroundRowDropped.removeAll { dropped in report.reinitialised.contains { $0.name == dropped.name } }
        }
        let known = Set(own.map { $0.0 })
        for name in stateDict.keys.sorted() where name.hasPrefix(headPrefix) && !known.contains(name) {
            adapted[name] = nil
            report.dropped.append(name)
        }
        try load(stateDict: adapted, strict: true, source: source)
        return report
    }
}

/// A 1001-row classifier tensor without its first row, for a 1000-class model (nil otherwise).
func dropBackgroundRow(_ t: Tensor, to shape: [Int]) -> Tensor? {
    guard shape.first == 1000, t.shape.first == 1001, Array(t.shape.dropFirst()) == Array(shape.dropFirst()) else { return nil }
    return t.slice(axis: 0, 1..<1001).copy()
}

/// timm's `adapt_input_conv`: `[O, 3, kh, kw]` (or any `I`) → `[O, 1, kh, kw]` by summing the input
/// channels; `[O, 3, kh, kw]` → `[O, I', kh, kw]` by repeating the RGB filters and scaling by 3/I'.
/// nil when the other dimensions differ or the source does not have 3 channels.
func adaptInputConv(_ w: Tensor, to shape: [Int]) -> Tensor? {
    guard w.rank == 4, shape.count == 4, w.shape[0] == shape[0], w.shape[2] == shape[2], w.shape[3] == shape[3] else { return nil }
    let o = w.shape[0], i = w.shape[1], k = w.shape[2] * w.shape[3], target = shape[1]
    let src = w.scalars
    var out = [Float](repeating: 0, count: o * target * k)
    if target == 1 {
        for a in 0..<o { for c in 0..<i { for p in 0..<k { out[a * k + p] += src[(a * i + c) * k + p] } } }
    } else if i == 3 {
        let scale = 3 / Float(target)
        for a in 0..<o { for c in 0..<target { for p in 0..<k { out[(a * target + c) * k + p] = src[(a * 3 + c % 3) * k + p] * scale } } }
    } else {
        return nil
    }
    return Tensor(shape: shape, out)
}

/// Resamples a position embedding to `shape` (same width, square grids), keeping prefix rows.
func resamplePositionEmbedding(_ t: Tensor, layout: PositionEmbeddingLayout, to shape: [Int]) -> Tensor? {
    guard t.rank == 3 || t.rank == 4, t.rank == shape.count, t.shape[0] == 1, shape[0] == 1 else { return nil }
    func side(_ n: Int) -> Int? {
        guard n > 0 else { return nil }
        let s = Int(Double(n).squareRoot().rounded())
        return s * s == n && s > 0 ? s : nil
    }
    switch layout {
    case .map:
        // An empty grid (a file's `[1, 64, 0, 0]`) has nothing to resample from: refused, not divided by.
        guard t.rank == 4, t.shape[1] == shape[1], t.shape[2] > 0, t.shape[3] > 0, shape[2] > 0, shape[3] > 0 else { return nil }
        let out = bicubicResample(t.scalars, channels: t.shape[1], from: (t.shape[2], t.shape[3]), to: (shape[2], shape[3]),
                                  channelsLast: false)
        return Tensor(shape: shape, out)
    case .sequence(let prefix):
        guard t.rank == 3, t.shape[2] == shape[2], let from = side(t.shape[1] - prefix), let to = side(shape[1] - prefix) else { return nil }
        let c = t.shape[2], src = t.scalars
        let grid = Array(src[(prefix * c)...])
        let out = bicubicResample(grid, channels: c, from: (from, from), to: (to, to), channelsLast: true)
        return Tensor(shape: shape, Array(src[..<(prefix * c)]) + out)
    }
}
