import ArgumentParser
import Foundation
import Models
import Trainer
import DataPipeline
import DistributedMPI
import ZooBenchmark

/// `zoo validate -c RECIPE --ckpt_path W --data_dir D` (MindCV's model cards), or
/// `zoo validate DATA --model M --checkpoint W` (timm's validate.py); see docs/cli.md.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate", abstract: "Top-1/top-5 accuracy, loss and per-class results of a checkpoint on DATA_DIR/val.",
        discussion: """
            With -c RECIPE the model, num_classes, ema choice, eval transform (image_resize, crop_pct, interpolation, \
            mean, std), val_split, batch_size and num_parallel_workers come from the recipe; flags override them. \
            Without it they come from the recipe saved beside the checkpoint, then the model's defaults.
            """)

    @Option(name: [.customShort("c"), .customLong("config")], help: "Recipe YAML file (MindCV's validate.py -c).") var config: String?
    @Option(name: .long, help: "Registered model name (default: the recipe's).") var model: String?
    @Option(name: [.customLong("data_dir"), .customLong("data-dir")], help: "ImageNet-layout folder (or give it as the positional argument).") var dataDir: String?
    @Argument(help: "The data folder (timm's positional argument).") var data: String?
    @Option(name: [.customLong("ckpt_path"), .customLong("ckpt-path"), .customLong("checkpoint")], help: "Checkpoint file or run directory.") var ckptPath: String?
    @Option(name: [.customLong("batch_size"), .customLong("batch-size"), .customShort("b")], help: "Default: the recipe's, else 64.") var batchSize: Int?
    @Option(name: [.customLong("num_parallel_workers"), .customLong("num-parallel-workers"), .customLong("workers"), .customShort("j")]) var workers: Int?
    @Option(name: [.customLong("val_split"), .customLong("val-split"), .customLong("split")]) var split: String?
    @Option(name: [.customLong("num_classes"), .customLong("num-classes")], help: "Classifier outputs (default: from the checkpoint).") var numClasses: Int?
    @Flag(name: [.customLong("ema"), .customLong("use-ema")], inversion: .prefixedNo,
          help: "Evaluate the checkpoint's EMA weights (default: the recipe's ema, else the run's).") var ema: Bool?
    @Option(name: .long, help: "imagenet (an image folder); MindCV's built-in readers are refused.") var dataset: String?
    @Flag(name: .long, help: "Print a JSON object: top1, top5 (percent), loss, images, skipped (unreadable images left out).") var json = false
    @Flag(name: .long, help: "Evaluate the model card's published weights (from $VITZOO_HOME, downloaded when missing).")
    var pretrained = false
    @Flag(name: [.customLong("random_weights"), .customLong("random-weights")], help: "Score the untrained initial weights (no --ckpt_path).")
    var randomWeights = false
    @Option(name: [.customLong("results_file"), .customLong("results-file")], help: "Write the full report to FILE (.json or .csv).") var resultsFile: String?
    @Flag(name: [.customLong("per_class"), .customLong("per-class")], help: "Print per-class accuracy and the most confused class.") var perClass = false
    @OptionGroup var eval: EvalTransformOptions

    func validate() throws {
        if config == nil && model == nil { throw ValidationError("give --model NAME or -c RECIPE.yaml") }
        if dataDir != nil && data != nil { throw ValidationError("give the data folder once: --data_dir D or the positional argument") }
        if let resultsFile, !["json", "csv"].contains((resultsFile as NSString).pathExtension.lowercased()) {
            throw ValidationError("--results_file must end in .json or .csv, got '\(resultsFile)'")
        }
        if let batchSize, batchSize < 1 { throw ValidationError("--batch_size must be positive") }
        if pretrained && (ckptPath != nil || randomWeights) { throw ValidationError("--pretrained excludes --ckpt_path and --random_weights") }
    }

    func run() throws {
        // The recipe's values are defaults; flags given here override them and are checked with it.
        var overrides: [String] = []
        if let model { overrides += ["--model", model] }
        if let dataset { overrides += ["--dataset", dataset] }
        if let numClasses { overrides += ["--num_classes", "\(numClasses)"] }
        let recipe = try config.map { try Recipe.load(yamlPath: $0, overrides: overrides) }
        if config == nil, let dataset { _ = try Recipe.parse(yaml: "", source: "command line", overrides: ["--dataset", dataset]) }
        guard let modelName = model ?? recipe?.model else { throw ValidationError("give --model NAME") }
        let dir = dataDir ?? data ?? recipe?.dataDir ?? "./"
        let split = self.split ?? recipe?.valSplit ?? "val"
        let checkpoint = pretrained || recipe?.pretrained == true
            ? try PretrainedWeights.localFile(for: modelName, progress: downloadProgress)
            : ckptPath ?? recipe.flatMap { $0.ckptPath.isEmpty ? nil : $0.ckptPath }
        let session = try InferenceSession(modelName: modelName, checkpoint: checkpoint,
                                           settings: try eval.settings(), classes: numClasses ?? recipe?.numClasses,
                                           numerics: try eval.chosenNumerics(), randomWeights: randomWeights,
                                           batchSize: batchSize ?? recipe?.batchSize ?? 64, recipe: recipe, ema: ema ?? recipe?.ema)
        let classes = try ImageFolder(root: dir, split: split).classes
        let confusion = ConfusionAccumulator(classCount: max(classes.count, 1))
        let progress = ProgressLine(phase: "validate", enabled: !json)
        let counts = try session.validate(dataDir: dir, split: split, batchSize: batchSize ?? recipe?.batchSize ?? 64,
                                          workers: workers ?? recipe?.numParallelWorkers ?? 2,
                                          progress: { i, n in progress.update(step: i, of: n) },
                                          observe: { logits, labels in confusion.add(logits: logits, labels: labels) })
        progress.finish()
        let report = ClassificationReport(model: modelName, checkpoint: ckptPath, dataDir: dir, split: split, ema: session.usesEMA,
                                          counts: counts, classes: classes, confusion: confusion,
                                          skipped: counts.skipped.map { SkippedImage(path: $0.path, reason: $0.reason) })
        if json {
            func number(_ x: Double) -> Any { x.isFinite ? x : NSNull() }
            let obj: [String: Any] = ["model": modelName, "top1": counts.top1, "top5": counts.top5, "loss": number(counts.loss),
                                      "images": counts.images, "images_per_s": counts.imagesPerSecond, "ema": session.usesEMA,
                                      "skipped": counts.skippedImages, "skipped_paths": counts.skipped.map(\.path)]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            if perClass { print(report.perClassTable()) }
            print(String(format: "%@%@ on %@/%@: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%d images, %.1f images/s)",
                         modelName, session.usesEMA ? " (EMA weights)" : "", dir, split, counts.top1, counts.top5, counts.loss,
                         counts.images, counts.imagesPerSecond))
            if counts.skippedImages > 0 {
                print("\(counts.skippedImages) unreadable images left out: " + counts.skipped.map { "\($0.path) (\($0.reason))" }.joined(separator: "; "))
            }
        }
        if let resultsFile { try report.write(to: resultsFile) }
    }
}
