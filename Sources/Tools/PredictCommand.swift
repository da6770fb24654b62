import ArgumentParser
import Foundation
import Trainer
import DistributedMPI
import ZooBenchmark

/// `zoo predict --model NAME --ckpt_path P [--topk 5] [--batch_size 32] [--output preds.json|.csv]
/// [--class_map FILE] IMAGE_OR_DIR...`: unreadable inputs are reported and skipped; the exit status is
/// non-zero when there were any, after everything else has been written.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict", abstract: "Top-k classes of images, in batches.",
        discussion: "Class names come from --class_map FILE (one name per line, or JSON), else from the checkpoint's training run.")

    @Option(name: .long) var model: String
    @Option(name: [.customLong("ckpt_path"), .customLong("ckpt-path"), .customLong("checkpoint")]) var ckptPath: String
    @Option(name: .long) var topk = 5
    @Option(name: [.customLong("batch_size"), .customLong("batch-size"), .customShort("b")], help: "Images per forward pass.") var batchSize = 32
    @Option(name: [.customLong("output"), .customLong("results_file"), .customLong("results-file")],
            help: "Write the predictions to FILE: .json ({predictions, unreadable}) or .csv (one row per image and rank).") var output: String?
    @Option(name: [.customLong("class_map"), .customLong("class-map")], help: "Class names: one per line (line i = class i), or a JSON array/object.") var classMap: String?
    @Option(name: [.customLong("num_classes"), .customLong("num-classes")], help: "Classifier outputs (default: from the checkpoint).") var numClasses: Int?
    @OptionGroup var eval: EvalTransformOptions
    @Argument(help: "Image files or folders.") var inputs: [String] = []

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one image file or folder") }
        if topk < 1 { throw ValidationError("--topk must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch_size must be at least 1") }
        if let output, !["json", "csv"].contains((output as NSString).pathExtension.lowercased()) {
            throw ValidationError("--output must end in .json or .csv, got '\(output)'")
        }
    }

    func run() throws {
        let names = try classMap.map { try ClassMap.load($0) }
        let session = try InferenceSession(modelName: model, checkpoint: ckptPath, settings: try eval.settings(), classes: numClasses,
                                           numerics: try eval.chosenNumerics())
        if let names, names.count != session.numClasses {
            FileHandle.standardError.write(Data("warning: the class map names \(names.count) classes, the model has \(session.numClasses)\n".utf8))
        }
        let progress = ProgressLine(phase: "predict")
        let results = session.predictBatched(inputs, topk: topk, batchSize: batchSize, classNames: names) { done, total in
            progress.update(step: done, of: total, items: done)
        }
        progress.finish()
        for p in results.predictions {
            let labels = zip(p.topk, p.probs).enumerated().map { i, e in
                "\(p.classNames?[i] ?? "\(e.0)") \(String(format: "%.4f", e.1))"
            }
            print("\(p.path): " + labels.joined(separator: ", "))
        }
        if let output { try results.write(to: output) }
        if !results.unreadable.isEmpty {
            for u in results.unreadable { FileHandle.standardError.write(Data("unreadable: \(u.path): \(u.reason)\n".utf8)) }
            throw PredictionFailed(count: results.unreadable.count, written: results.predictions.count, output: output)
        }
    }
}

/// The exit error after a prediction run that met unreadable inputs.
struct PredictionFailed: Error, CustomStringConvertible {
    let count: Int, written: Int, output: String?
    var description: String {
        "\(count) input(s) could not be read (listed above); \(written) prediction(s) " + (output.map { "written to \($0)" } ?? "printed")
    }
}
