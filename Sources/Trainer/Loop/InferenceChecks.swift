import Foundation
import Models
import Tensor
import DataPipeline

/// Why `zoo validate` / `zoo predict` refuse to produce a figure (docs/input-validation.md).
public enum EvaluationError: Error, Equatable, CustomStringConvertible {
    /// A label has no output of the model's head to be scored against.
    case labelOutOfRange(path: String, label: Int, classes: Int)
    /// The evaluated split has more class folders than the head has outputs.
    case headTooSmall(split: String, folders: Int, headClasses: Int, weights: String?)
    /// Weights that are NaN or infinite: every logit would be NaN.
    case nonFiniteWeights(source: String, tensor: String, count: Int, of: Int)
    /// An evaluation-transform setting out of range (the recipe key's name).
    case invalidSetting(key: String, reason: String)
    /// No checkpoint given and random weights not asked for.
    case noWeights(model: String)

    public var description: String {
        switch self {
        case let .labelOutOfRange(p, l, c):
            return "\(p) has label \(l) but the model's head has only \(c) outputs"
        case let .headTooSmall(split, folders, head, weights):
            return "\(split) has \(folders) class folders but the head of \(weights ?? "the model") has \(head) outputs; "
                + "evaluate on the classes it was trained on"
        case let .nonFiniteWeights(source, tensor, count, of):
            return "\(source): tensor '\(tensor)' holds \(count) NaN or infinite values of \(of); these weights cannot be evaluated"
        case let .invalidSetting(key, reason):
            return "invalid value for \(key): \(reason)"
        case let .noWeights(model):
            return "no weights to evaluate \(model): give --ckpt_path (a checkpoint file or run folder), "
                + "or --random_weights to score the untrained initial weights"
        }
    }

    /// Throws unless every label of `batch` indexes one of `classes` logits.
    static func checkLabels(_ batch: Batch, classes: Int) throws {
        for (i, y) in batch.labels.enumerated() where y < 0 || y >= classes {
            throw EvaluationError.labelOutOfRange(path: batch.paths[i], label: y, classes: classes)
        }
    }

    /// Throws naming the first tensor of `weights` (by name) that holds a NaN or an infinity.
    public static func checkFinite(_ weights: [String: Tensor], source: String) throws {
        for name in weights.keys.sorted() {
            guard let t = weights[name] else { continue }
            var bad = 0
            t.withUnsafeBuffer { b in for v in b where !v.isFinite { bad += 1 } }
            if bad > 0 { throw EvaluationError.nonFiniteWeights(source: source, tensor: name, count: bad, of: t.count) }
        }
    }
}

extension EvalSettings {
    /// Throws for the values a recipe refuses too: an unknown interpolation, `crop_pct` outside
    /// (0, 1], a size below 1, non-positive std, lists that are not three numbers.
    public func check() throws {
        if let interpolation, !Recipe.interpolations.contains(interpolation.lowercased()) {
            throw EvaluationError.invalidSetting(key: "interpolation", reason:
                "'\(interpolation)' is not one of \(Recipe.interpolations.joined(separator: ", "))")
        }
        if let cropPct, !(cropPct > 0 && cropPct <= 1) {
            throw EvaluationError.invalidSetting(key: "crop_pct", reason: "must be in (0, 1], got \(cropPct)")
        }
        if let imageResize, imageResize < 1 {
            throw EvaluationError.invalidSetting(key: "image_resize", reason: "must be at least 1, got \(imageResize)")
        }
        for (key, values) in [("mean", mean), ("std", std)] {
            guard let values else { continue }
            if values.count != 3 || !values.allSatisfy({ $0.isFinite }) {
                throw EvaluationError.invalidSetting(key: key, reason: "needs three finite numbers, got \(values)")
            }
            if key == "std", values.contains(where: { $0 <= 0 }) {
                throw EvaluationError.invalidSetting(key: key, reason: "must be positive, got \(values)")
            }
        }
    }
}
