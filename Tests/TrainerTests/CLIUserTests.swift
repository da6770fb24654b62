import Foundation
import XCTest
import DataPipeline
import Tensor
import TestSupport
@testable import Trainer

/// What a user coming from MindCV's or timm's model cards does with the built `zoo`: help that lists
/// every recipe key, a dry run, timm's flags, validation reports and batch prediction (docs/cli.md).
final class CLIUserTests: XCTestCase {
    nonisolated(unsafe) static var folder: DataTempFolder?
    nonisolated(unsafe) static var checkpoint = ""
    nonisolated(unsafe) static var recipePath = ""
    nonisolated(unsafe) static var summary: TrainingSummary?

    func zoo(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try BuiltExecutables.runZoo(arguments, environment: environment)
    }

    var publishedRecipe: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("recipes/pit/pit_ti_ascend.yaml").path
    }

    /// A colour-coded 3-class folder (train 8, val 4 per class) and a checkpoint trained on it for
    /// one epoch, made once for the class.
    func trainedRun() throws -> (folder: DataTempFolder, checkpoint: String, recipe: String) {
        if let f = Self.folder { return (f, Self.checkpoint, Self.recipePath) }
        let folder = try DataTempFolder("cli-user")
        var seed: UInt64 = 500
        for split in ["train", "val"] {
            for (c, cls) in ["blue", "green", "red"].enumerated() {
                for i in 0..<(split == "train" ? 8 : 4) {
                    seed += 1
                    var rng = RandomGenerator(seed: seed)
                    let image = RGBImage(width: 20, height: 20) { p in
                        for k in 0..<400 { for ch in 0..<3 { p[k * 3 + ch] = UInt8((ch == 2 - c ? 190 : 60) + Int(rng.next() % 50)) } }
                    }
                    try folder.write("\(split)/\(cls)/\(i).png", try ImageEncoder.png(image))
                }
            }
        }
        let yaml = """
        model: pit_ti
        image_resize: 32
        batch_size: 6
        num_parallel_workers: 2
        epoch_size: 1
        lr: 0.002
        warmup_epochs: 0
        opt: adamw
        color_jitter: 0.0
        crop_pct: 1.0
        val_while_train: True
        ema: True
        ema_decay: 0.5
        tensorboard: True
        data_dir: \(folder.path)
        ckpt_save_dir: \(folder.path)/ckpt
        """
        try folder.write("recipe.yaml", Array(yaml.utf8))
        let recipe = try Recipe.load(yamlPath: folder.path + "/recipe.yaml")
        let summary = try TrainingRun(recipe: recipe, log: { _ in }).run()
        Self.summary = summary
        Self.folder = folder
        Self.checkpoint = try XCTUnwrap(summary.lastCheckpoint)
        Self.recipePath = folder.path + "/recipe.yaml"
        return (folder, Self.checkpoint, Self.recipePath)
    }

    override class func tearDown() { folder?.cleanup(); folder = nil }

    // MARK: self-describing

    func testTrainHelpListsEveryRecipeKey() throws {
        let r = try zoo(["train", "--help"])
        XCTAssertEqual(r.status, 0, r.output)
        for key in Recipe.keys { XCTAssertTrue(r.output.contains("--\(key) ("), "--help lacks \(key)") }
        XCTAssertTrue(r.output.contains("--epoch_size (int, default 90)\n      number of epochs"), "epoch_size's type, default and meaning")
        XCTAssertTrue(r.output.contains("--dry_run"))
        XCTAssertTrue(r.output.contains("--epochs"), "timm's aliases are mentioned")
    }

    func testCompletionScript() throws {
        let r = try zoo(["--generate-completion-script", "bash"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("_zoo") && r.output.contains("validate"), String(r.output.prefix(300)))
    }

    func testDryRunPrintsResolvedRecipeModelAndData() throws {
        let (folder, _, _) = try trainedRun()
        let r = try zoo(["train", "-c", publishedRecipe, "--epochs", "3", "-b", "16", "--dry_run", folder.path])
        XCTAssertEqual(r.status, 0, r.output)
        // pit_ti with the recipe's 1000 classes: 4,847,272 trainable parameters (its model card).
        XCTAssertTrue(r.output.contains("model pit_ti: 4847272 trainable parameters"), r.output)
        XCTAssertTrue(r.output.contains("train 24 images in 3 classes; val 12 images"), r.output)
        // lr_base 0.002 for 1024 images, scaled to a global batch of 16.
        XCTAssertTrue(r.output.contains("global batch 16 "), r.output)
        XCTAssertTrue(r.output.contains("effective lr \(String(format: "%.6g", 0.002 * 16 / 1024))"), r.output)
        XCTAssertTrue(r.output.contains("epoch_size: 3\n"), r.output)
        XCTAssertTrue(r.output.contains("data_dir: \(folder.path)\n"), r.output)
        XCTAssertTrue(r.output.contains("no effect on a CPU fp32 run: "), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "./ckpt/pit_ti.yaml"), "a dry run writes nothing")
    }

    func testTimmNamesAndRefusalsThroughZoo() throws {
        let typo = try zoo(["train", "-c", publishedRecipe, "--epoch", "3", "--dry_run"])
        XCTAssertNotEqual(typo.status, 0)
        XCTAssertTrue(typo.output.contains("'--epochs' (timm's name for 'epoch_size')"), typo.output)
        let cifar = try zoo(["train", "-c", publishedRecipe, "--dataset", "cifar10", "--dry_run"])
        XCTAssertNotEqual(cifar.status, 0)
        XCTAssertTrue(cifar.output.contains("image folder"), cifar.output)
    }

    // MARK: validation reports

    func testValidateLikeTheModelCardsWithAReport() throws {
        let (folder, checkpoint, recipe) = try trainedRun()
        let json = folder.path + "/report.json"
        let r = try zoo(["validate", "-c", recipe, "--ckpt_path", checkpoint, "--data_dir", folder.path,
                         "--results_file", json, "--per_class"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("(EMA weights)"), "the recipe's ema choice: \(r.output)")
        XCTAssertTrue(r.output.contains("most confused with"), r.output)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        XCTAssertEqual(report["images"] as? Int, 12)
        XCTAssertEqual(report["classes"] as? [String], ["blue", "green", "red"])
        let matrix = try XCTUnwrap(report["confusion_matrix"] as? [[Int]])
        XCTAssertEqual(matrix.map { $0.reduce(0, +) }, [4, 4, 4], "each row counts that class's images")
        let diagonal = (0..<3).reduce(0) { $0 + matrix[$1][$1] }
        XCTAssertEqual(report["top1"] as? Double ?? -1, 100 * Double(diagonal) / 12, accuracy: 1e-9)
        let perClass = try XCTUnwrap(report["per_class"] as? [[String: Any]])
        XCTAssertEqual(perClass.map { $0["top1_correct"] as? Int ?? -1 }, (0..<3).map { matrix[$0][$0] })
        XCTAssertEqual(report["ema"] as? Bool, true)

        // The same numbers as the run's own validation of its EMA weights (metrics.csv, column 4).
        let metrics = try String(contentsOfFile: folder.path + "/ckpt/metrics.csv", encoding: .utf8).split(separator: "\n")
        let runTop1 = try XCTUnwrap(Double(metrics[1].split(separator: ",", omittingEmptySubsequences: false)[3]))
        XCTAssertEqual(report["top1"] as? Double ?? -1, runTop1, accuracy: 0.01)

        // timm's spelling, raw weights, CSV.
        let csv = folder.path + "/report.csv"
        let t = try zoo(["validate", folder.path, "--model", "pit_ti", "--checkpoint", checkpoint, "-b", "5", "-j", "1",
                         "--no-ema", "--results-file", csv])
        XCTAssertEqual(t.status, 0, t.output)
        XCTAssertFalse(t.output.contains("EMA"), t.output)
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(rows[0], "class,images,top1_correct,top1,top5_correct,top5,loss,predicted:blue,predicted:green,predicted:red")
        XCTAssertTrue(rows[1].hasPrefix("blue,4,"), rows[1])
        XCTAssertTrue(rows[4].hasPrefix("all,12,"), rows[4])
        XCTAssertEqual(rows[6], "skipped_image,reason")
        // Confusion row of each class sums to its image count.
        for i in 1...3 { XCTAssertEqual(rows[i].split(separator: ",").suffix(3).compactMap { Int($0) }.reduce(0, +), 4, rows[i]) }
    }

    func testValidateRefusesWhatItCannotDo() throws {
        let (folder, checkpoint, _) = try trainedRun()
        // Weights alone (no run files beside them) have no EMA weights to evaluate.
        let raw = folder.path + "/raw.safetensors"
        if !FileManager.default.fileExists(atPath: raw) { try FileManager.default.copyItem(atPath: checkpoint, toPath: raw) }
        let noEMA = try zoo(["validate", "--model", "pit_ti", "--ckpt_path", raw, "--data_dir", folder.path, "--ema"])
        XCTAssertNotEqual(noEMA.status, 0)
        XCTAssertTrue(noEMA.output.contains("raw.safetensors"), noEMA.output)
        let cifar = try zoo(["validate", "--model", "pit_ti", "--ckpt_path", checkpoint, "--data_dir", folder.path, "--dataset", "cifar10"])
        XCTAssertNotEqual(cifar.status, 0)
        XCTAssertTrue(cifar.output.contains("image folder"), cifar.output)
        let format = try zoo(["validate", "--model", "pit_ti", "--data_dir", folder.path, "--results_file", folder.path + "/r.txt"])
        XCTAssertNotEqual(format.status, 0)
        XCTAssertTrue(format.output.contains(".json or .csv"), format.output)
    }

    // MARK: TensorBoard and progress

    func testTrainingWritesTensorBoardScalars() throws {
        let (folder, _, _) = try trainedRun()
        let dir = folder.path + "/ckpt/tensorboard"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(files.count, 1)
        let (version, scalars) = try TensorBoardReader.read(dir + "/" + files[0])
        XCTAssertEqual(version, "brain.Event:2")
        func values(_ tag: String) -> [TensorBoardReader.Scalar] { scalars.filter { $0.tag == tag } }
        // 24 images, batch 6, one epoch: steps 1...4 with loss, lr and throughput each.
        XCTAssertEqual(values("train/loss").map(\.step), [1, 2, 3, 4])
        XCTAssertEqual(values("train/lr").count, 4)
        XCTAssertEqual(Double(values("train/lr")[0].value), 0.002, accuracy: 1e-9, "constant-then-cosine peak lr at step 1 with no warm-up")
        XCTAssertTrue(values("train/images_per_s").allSatisfy { $0.value > 0 })
        let record = try XCTUnwrap(Self.summary?.epochs.first)
        XCTAssertEqual(values("val/top1").map(\.step), [4])
        XCTAssertEqual(Double(values("val/top1")[0].value), try XCTUnwrap(record.top1), accuracy: 1e-4)
        XCTAssertEqual(Double(values("val/top5")[0].value), try XCTUnwrap(record.top5), accuracy: 1e-4)
        XCTAssertEqual(Double(values("val/loss")[0].value), try XCTUnwrap(record.valLoss), accuracy: 1e-5)
        XCTAssertEqual(Double(values("train/epoch_loss")[0].value), record.trainLoss, accuracy: 1e-5)
        // The epoch loss is the image-weighted mean of the step losses (equal batches: the plain mean).
        let mean = values("train/loss").map { Double($0.value) }.reduce(0, +) / 4
        XCTAssertEqual(record.trainLoss, mean, accuracy: 1e-5)
    }

    func testTrainFromTheCommandLineWithProgressAndTensorBoard() throws {
        let (folder, _, recipe) = try trainedRun()
        let out = folder.path + "/cli-run"
        let r = try zoo(["train", "-c", recipe, "--output", out, "--tensorboard", out + "/tb", "--val_while_train", "False",
                         "--ema", "False"], environment: ["ZOO_PROGRESS": "terminal"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("\r\u{1B}[Ktrain  epoch 1/1  loss "), r.output)
        XCTAssertTrue(r.output.contains("4/4 steps  100%"), r.output)
        let files = try FileManager.default.contentsOfDirectory(atPath: out + "/tb")
        XCTAssertEqual(files.filter { $0.hasPrefix("events.out.tfevents.") }.count, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/metrics.csv"), "--output is the checkpoint folder")

        let plain = try zoo(["validate", "-c", recipe, "--ckpt_path", Self.checkpoint, "-b", "4"], environment: ["ZOO_PROGRESS": "plain"])
        XCTAssertEqual(plain.status, 0, plain.output)
        XCTAssertTrue(plain.output.contains("validate  3/3 batches  100%"), plain.output)
        XCTAssertFalse(plain.output.contains("\u{1B}[K"), "no terminal codes in plain mode")
    }

    // MARK: batch prediction

    func testPredictBatchesKeepsGoingAndWritesEverything() throws {
        let (folder, checkpoint, _) = try trainedRun()
        try folder.write("predict/a.png", Array(try Data(contentsOf: URL(fileURLWithPath: folder.path + "/val/red/0.png"))))
        try folder.write("predict/b.png", Array(try Data(contentsOf: URL(fileURLWithPath: folder.path + "/val/blue/1.png"))))
        try folder.write("predict/c.png", Array(try Data(contentsOf: URL(fileURLWithPath: folder.path + "/val/green/2.png"))))
        try folder.write("predict/broken.png", Array("not an image".utf8))
        try folder.write("names.txt", Array("azure\nemerald\nscarlet\n".utf8))
        let out = folder.path + "/preds.json"
        let r = try zoo(["predict", "--model", "pit_ti", "--ckpt_path", checkpoint, "--batch_size", "2", "--topk", "2",
                         "--class_map", folder.path + "/names.txt", "--output", out, folder.path + "/predict", folder.path + "/missing.png"])
        XCTAssertNotEqual(r.status, 0, "unreadable inputs give a non-zero exit")
        XCTAssertTrue(r.output.contains("broken.png") && r.output.contains("missing.png"), r.output)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any])
        let preds = try XCTUnwrap(obj["predictions"] as? [[String: Any]])
        XCTAssertEqual(preds.map { ($0["path"] as? String).map { ($0 as NSString).lastPathComponent } }, ["a.png", "b.png", "c.png"])
        let bad = try XCTUnwrap(obj["unreadable"] as? [[String: Any]])
        XCTAssertEqual(Set(bad.compactMap { ($0["path"] as? String).map { ($0 as NSString).lastPathComponent } }), ["broken.png", "missing.png"])
        for p in preds {
            let names = try XCTUnwrap(p["class_names"] as? [String])
            XCTAssertEqual(names.count, 2)
            XCTAssertTrue(names.allSatisfy { ["azure", "emerald", "scarlet"].contains($0) }, "\(names)")
        }

        // Batched logits equal one-at-a-time logits; CSV has one row per image and rank.
        let csv = folder.path + "/preds.csv"
        let one = try zoo(["predict", "--model", "pit_ti", "--ckpt_path", checkpoint, "--batch_size", "1", "--topk", "2",
                           "--output", csv, folder.path + "/predict/a.png", folder.path + "/predict/c.png"])
        XCTAssertEqual(one.status, 0, one.output)
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(rows[0], "path,rank,class_index,class,probability,error")
        XCTAssertEqual(rows.count, 1 + 2 * 2)
        XCTAssertTrue(rows[1].hasSuffix(","), "no error for a readable image: \(rows[1])")
        let oneJSON = folder.path + "/one.json"
        let alone = try zoo(["predict", "--model", "pit_ti", "--ckpt_path", checkpoint, "--batch_size", "1", "--output", oneJSON,
                             folder.path + "/predict/c.png"])
        XCTAssertEqual(alone.status, 0, alone.output)
        let single = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: oneJSON))) as? [String: Any])
        let singleLogits = try XCTUnwrap((single["predictions"] as? [[String: Any]])?.first?["logits"] as? [Double])
        let batchedLogits = try XCTUnwrap(preds[2]["logits"] as? [Double])
        XCTAssertEqual(singleLogits.count, 3)
        for (a, b) in zip(singleLogits, batchedLogits) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    }

    func testConfusionAccumulatorCountsExactly() {
        let acc = ConfusionAccumulator(classCount: 3)
        // Rows: predicted 0, 2, 2, 1 for labels 0, 0, 2, 1.
        let logits = Tensor(shape: [4, 3], [3, 1, 0,  0, 1, 2,  0, 1, 5,  1, 4, 0])
        acc.add(logits: logits, labels: [0, 0, 2, 1])
        XCTAssertEqual(acc.matrix, [[1, 0, 1], [0, 1, 0], [0, 0, 1]])
        XCTAssertEqual(acc.top5Correct, [2, 1, 1])
        // Cross-entropy of row 1 for label 0: logsumexp(0, 1, 2) - 0.
        let lse1 = log(exp(0.0) + exp(1.0) + exp(2.0)), lse0 = log(exp(3.0) + exp(1.0) + exp(0.0))
        XCTAssertEqual(acc.lossSum[0], (lse0 - 3) + lse1, accuracy: 1e-6)
        var counts = EvaluationCounts()
        Metrics.accumulate(logits: logits, labels: [0, 0, 2, 1], into: &counts)
        let report = ClassificationReport(model: "m", checkpoint: nil, dataDir: "d", split: "val", ema: false, counts: counts,
                                          classes: ["a", "b", "c"], confusion: acc, skipped: [SkippedImage(path: "x,y.png", reason: "bad")])
        XCTAssertEqual(report.perClass.map(\.top1), [50, 100, 100])
        XCTAssertEqual(report.perClass[0].mostConfusedWith, "c")
        XCTAssertEqual(report.top1, 75)
        XCTAssertTrue(report.csv().hasSuffix("skipped_image,reason\n\"x,y.png\",bad\n"), report.csv())
    }
}
