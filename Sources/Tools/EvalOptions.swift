import ArgumentParser
import Models
import Trainer
import DistributedMPI
import ZooBenchmark

/// Evaluation-transform overrides shared by `validate` and `predict` (defaults: the training
/// recipe saved beside the checkpoint, then the model's data config).
struct EvalTransformOptions: ParsableArguments {
    @Option(name: [.customLong("image_resize"), .customLong("image-resize"), .customLong("img-size")], help: "Centre-crop size.")
    var imageResize: Int?
    @Option(name: [.customLong("crop_pct"), .customLong("crop-pct")], help: "Resize the shorter side to image_resize / crop_pct first.")
    var cropPct: Double?
    @Option(name: .customLong("interpolation"), help: "bilinear or bicubic.")
    var interpolation: String?
    @Option(name: .customLong("mean"), help: "Per-channel mean on the 0-255 scale, comma-separated.")
    var mean: String?
    @Option(name: .customLong("std"), help: "Per-channel std on the 0-255 scale, comma-separated.")
    var std: String?
    @Option(name: .customLong("numerics"), help: "mindcv or timm (default: the run's recipe, else the model name's own).")
    var numerics: String?

    func chosenNumerics() throws -> Numerics? { try numerics.map { try Numerics(parsing: $0) } }

    func settings() throws -> EvalSettings {
        func list(_ s: String?, _ name: String) throws -> [Double]? {
            guard let s else { return nil }
            let v = s.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard v.count == 3, v.allSatisfy({ $0 != nil }) else { throw ValidationError("--\(name) needs three comma-separated numbers, got '\(s)'") }
            return v.compactMap { $0 }
        }
        return EvalSettings(imageResize: imageResize, cropPct: cropPct, interpolation: interpolation,
                            mean: try list(mean, "mean"), std: try list(std, "std"))
    }
}
