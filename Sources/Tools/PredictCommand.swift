import ArgumentParser
import Foundation
import Trainer
import DistributedMPI
import ZooBenchmark

/// `zoo predict --model NAME --ckpt_path P [--topk 5] [--output preds.json] IMAGE_OR_DIR...`.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "predict", abstract: "Top-k classes of images.")

    @Option(name: .long) var model: String
    @Option(name: [.customLong("ckpt_path"), .customLong("ckpt-path")]) var ckptPath: String
    @Option(name: .long) var topk = 5
    @Option(name: .long, help: "Write a JSON array: path, topk, probs, logits per image.") var output: String?
    @OptionGroup var eval: EvalTransformOptions
    @Argument(help: "Image files or folders.") var inputs: [String]

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one image file or folder") }
        if topk < 1 { throw ValidationError("--topk must be at least 1") }
    }

    func run() throws {
        let session = try InferenceSession(modelName: model, checkpoint: ckptPath, settings: try eval.settings(),
                                           numerics: try eval.chosenNumerics())
        let preds = try session.predict(inputs, topk: topk)
        for p in preds {
            let labels = zip(p.topk, p.probs).enumerated().map { i, e in
                "\(p.classNames?[i] ?? "\(e.0)") \(String(format: "%.4f", e.1))"
            }
            print("\(p.path): " + labels.joined(separator: ", "))
        }
        if let output {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            enc.keyEncodingStrategy = .convertToSnakeCase
            enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try enc.encode(preds).write(to: URL(fileURLWithPath: output), options: .atomic)
        }
    }
}
