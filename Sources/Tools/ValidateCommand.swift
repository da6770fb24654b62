import ArgumentParser
import Foundation
import Trainer
import DistributedMPI
import ZooBenchmark

/// `zoo validate --model NAME --data_dir D [--ckpt_path P] [--batch_size N] [--json]`.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validate", abstract: "Top-1/top-5 accuracy of a checkpoint on DATA_DIR/val.")

    @Option(name: .long, help: "Registered model name.") var model: String
    @Option(name: [.customLong("data_dir"), .customLong("data-dir")], help: "ImageNet-layout folder.") var dataDir: String
    @Option(name: [.customLong("ckpt_path"), .customLong("ckpt-path")], help: "Checkpoint file or run directory.") var ckptPath: String?
    @Option(name: [.customLong("batch_size"), .customLong("batch-size")]) var batchSize = 64
    @Option(name: [.customLong("num_parallel_workers"), .customLong("num-parallel-workers")]) var workers = 2
    @Option(name: [.customLong("val_split"), .customLong("val-split")]) var split = "val"
    @Flag(name: .long, help: "Print a JSON object: top1, top5 (percent), loss, images, skipped (unreadable images left out).") var json = false
    @Flag(name: [.customLong("random_weights"), .customLong("random-weights")], help: "Score the untrained initial weights (no --ckpt_path).")
    var randomWeights = false
    @OptionGroup var eval: EvalTransformOptions

    func run() throws {
        let session = try InferenceSession(modelName: model, checkpoint: ckptPath, settings: try eval.settings(),
                                           numerics: try eval.chosenNumerics(), randomWeights: randomWeights, batchSize: batchSize)
        let counts = try session.validate(dataDir: dataDir, split: split, batchSize: batchSize, workers: workers) { i, n in
            if !json && (i % 20 == 0 || i == n) { FileHandle.standardError.write(Data("\r\(i)/\(n) batches".utf8)) }
        }
        if !json { FileHandle.standardError.write(Data("\n".utf8)) }
        if json {
            func number(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
            let obj: [String: Any] = ["model": model, "top1": counts.top1, "top5": counts.top5, "loss": number(counts.loss),
                                      "images": counts.images, "images_per_s": counts.imagesPerSecond, "ema": session.usesEMA,
                                      "skipped": counts.skippedImages, "skipped_paths": counts.skipped.map(\.path)]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "%@%@ on %@/%@: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%d images, %.1f images/s)",
                         model, session.usesEMA ? " (EMA weights)" : "", dataDir, split, counts.top1, counts.top5, counts.loss,
                         counts.images, counts.imagesPerSecond))
            if counts.skippedImages > 0 {
                print("\(counts.skippedImages) unreadable images left out: " + counts.skipped.map { "\($0.path) (\($0.reason))" }.joined(separator: "; "))
            }
        }
    }
}
