import Foundation
import Models
import Tensor
import TestSupport
import XCTest
@testable import Trainer
import DataPipeline

/// End-to-end: a tiny recipe trains on a generated folder, resumes exactly, stops on NaN, and
/// rejects bad input before any work starts.
final class TrainingRunTests: TinyTrainingCase {
    func recipe(_ extra: [String] = []) throws -> Recipe { try TinyTraining.recipe(folder, extra) }

    func testTinyRunLearnsAndWritesMetricsAndCheckpoints() throws {
        let run = try TrainingRun(recipe: try recipe(), log: { _ in })
        let summary = try run.run()
        XCTAssertEqual(summary.epochs.count, 4)
        XCTAssertLessThan(summary.epochs.last!.trainLoss, summary.epochs.first!.trainLoss * 0.8, "loss falls: \(summary.epochs.map(\.trainLoss))")
        XCTAssertGreaterThanOrEqual(summary.bestTop1 ?? 0, 70, "validation accuracy on colour-coded classes (chance: 33%)")
        let metrics = try String(contentsOfFile: folder.path + "/ckpt/metrics.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(metrics.count, 5, "header + one line per epoch")
        XCTAssertTrue(metrics[0].hasPrefix("epoch,train_loss,lr,val_top1"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.path + "/ckpt/pit_ti-3.safetensors"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.path + "/ckpt/pit_ti.yaml"), "resolved recipe beside the checkpoints")
        XCTAssertNotNil(summary.bestCheckpoint)

        // The checkpoint evaluates to the same accuracy through the inference session.
        let session = try InferenceSession(modelName: "pit_ti", checkpoint: folder.path + "/ckpt/pit_ti-3.safetensors")
        XCTAssertEqual(session.classNames ?? [], ["blue", "green", "red"])
        let counts = try session.validate(dataDir: folder.path, batchSize: 5, workers: 1)
        XCTAssertEqual(counts.top1, summary.epochs.last!.top1!, accuracy: 1e-9)
        let preds = try session.predict([folder.path + "/val/red/0.png"], topk: 2)
        XCTAssertEqual(preds.first?.topk.count, 2)
        XCTAssertEqual(preds.first?.logits.count, 3)
    }

    func testEMARunIsEvaluatedWithItsAveragedWeights() throws {
        // With `ema: True` the run validates (and picks its best checkpoint by) the averaged weights;
        // evaluating the checkpoint afterwards must use them too and reproduce the run's accuracy.
        let run = try TrainingRun(recipe: try recipe(["--ema", "True", "--ema_decay", "0.9", "--epoch_size", "2",
                                                      "--ckpt_save_dir", folder.path + "/ema"]), log: { _ in })
        let summary = try run.run()
        let info = try CheckpointInfo(path: folder.path + "/ema/pit_ti-1.safetensors")
        XCTAssertTrue(info.usesEMA)
        let raw = try CheckpointInfo(path: folder.path + "/ema/pit_ti-1.safetensors", preferEMA: false)
        XCTAssertFalse(raw.usesEMA)
        let name = "head.weight"
        XCTAssertNotEqual(info.weights[name]?.scalars, raw.weights[name]?.scalars, "EMA and model weights differ after 2 epochs")
        let session = try InferenceSession(modelName: "pit_ti", checkpoint: folder.path + "/ema/pit_ti-1.safetensors")
        XCTAssertTrue(session.usesEMA)
        let counts = try session.validate(dataDir: folder.path, batchSize: 5, workers: 1)
        XCTAssertEqual(counts.loss, summary.epochs.last!.valLoss!, accuracy: 1e-5)
        XCTAssertEqual(counts.top1, summary.epochs.last!.top1!, accuracy: 1e-9)
    }

    func testResumeEqualsUninterruptedRun() throws {
        let straight = try TrainingRun(recipe: try recipe(["--ckpt_save_dir", folder.path + "/a", "--val_while_train", "False"]), log: { _ in })
        try straight.run()
        let first = try TrainingRun(recipe: try recipe(["--ckpt_save_dir", folder.path + "/b", "--val_while_train", "False", "--epoch_size", "4"]), log: { _ in })
        // Stop after the first epoch, as a split run would.
        first.stopAfterEpoch = 1
        try first.run()
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.path + "/b/pit_ti-0.json"))
        let resumed = try TrainingRun(recipe: try recipe(["--ckpt_save_dir", folder.path + "/b", "--val_while_train", "False",
                                                          "--resume", folder.path + "/b"]), log: { _ in })
        try resumed.run()
        var compared = 0
        let a = straight.model.stateDict(), b = resumed.model.stateDict()
        for (name, t) in a {
            XCTAssertEqual(t.scalars, b[name]?.scalars, "\(name) differs after resume")
            compared += 1
        }
        XCTAssertEqual(compared, a.count)
    }

    func testNonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
        let good = try TrainingRun(recipe: try recipe(["--epoch_size", "1", "--val_while_train", "False"]), log: { _ in })
        try good.run()
        let ckpt = folder.path + "/ckpt/pit_ti-0.safetensors"
        let before = try Data(contentsOf: URL(fileURLWithPath: ckpt))
        let bad = try TrainingRun(recipe: try recipe(["--epoch_size", "2", "--lr", "1e30", "--resume", folder.path + "/ckpt", "--val_while_train", "False"]), log: { _ in })
        XCTAssertThrowsError(try bad.run()) { error in
            guard case let TrainingError.nonFiniteLoss(epoch, _, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(epoch, 1)
            XCTAssertTrue("\(error)".contains("epoch 2"))
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: ckpt)), before, "the last good checkpoint is intact")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path + "/ckpt/pit_ti-1.json"))
    }

    func testBadInputFailsBeforeTraining() throws {
        XCTAssertThrowsError(try TrainingRun(recipe: try recipe(["--model", "pit_tiny"]), log: { _ in })) { e in
            XCTAssertTrue("\(e)".contains("pit_ti"), "\(e)")
        }
        XCTAssertThrowsError(try TrainingRun(recipe: try recipe(["--data_dir", folder.path + "/nope"]), log: { _ in })) { e in
            XCTAssertTrue("\(e)".contains(folder.path + "/nope"), "\(e)")
        }
        // A checkpoint of another model does not fit: names and both shapes. (A head of another class
        // count alone is re-initialised instead, docs/finetuning.md; Tests/TrainerTests/FineTuneRunTests.swift.)
        let other = try ModelRegistry.create("pit_xs", options: ModelOptions(numClasses: 5, imageSize: 32))
        try FileManager.default.createDirectory(atPath: folder.path + "/w", withIntermediateDirectories: true)
        try SafeTensorsFile.write(other.stateDict(), to: folder.path + "/w/other.safetensors")
        XCTAssertThrowsError(try TrainingRun(recipe: try recipe(["--ckpt_path", folder.path + "/w/other.safetensors"]), log: { _ in })) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("transformers.0.blocks.0.attn.qkv.weight: model [192, 64], checkpoint [288, 96]"), text)
        }
    }
}

/// A test case with a fresh `TinyTraining` folder per test.
class TinyTrainingCase: XCTestCase {
    var folder: DataTempFolder!

    override func setUpWithError() throws {
        folder = try DataTempFolder("tiny-training")
        try TinyTraining.makeFolder(folder)
    }

    override func tearDownWithError() throws { folder.cleanup() }
}

/// Three colour-coded classes with noise (16 training and 6 validation images each, 24 px), learnable
/// in a few steps, and a tiny pit_ti recipe over them (4 epochs of 6 steps).
enum TinyTraining {
    static func makeFolder(_ folder: DataTempFolder) throws {
        var seed: UInt64 = 100
        for split in ["train", "val"] {
            for (c, cls) in ["blue", "green", "red"].enumerated() {
                for i in 0..<(split == "train" ? 16 : 6) {
                    seed += 1
                    var rng = RandomGenerator(seed: seed)
                    let image = RGBImage(width: 24, height: 24) { p in
                        for k in 0..<(24 * 24) {
                            for ch in 0..<3 {
                                let base = ch == 2 - c ? 190 : 60
                                p[k * 3 + ch] = UInt8(base + Int(rng.next() % 50))
                            }
                        }
                    }
                    try folder.write("\(split)/\(cls)/\(i).png", try ImageEncoder.png(image))
                }
            }
        }
    }

    static let yaml = """
        model: pit_ti
        image_resize: 32
        batch_size: 8
        num_parallel_workers: 2
        epoch_size: 4
        scheduler: cosine_decay
        lr: 0.002
        warmup_epochs: 0
        decay_epochs: 4
        min_lr: 0.00001
        opt: adamw
        weight_decay: 0.05
        scale: [0.8, 1.0]
        color_jitter: 0.0
        hflip: 0.5
        label_smoothing: 0.1
        val_while_train: True
        crop_pct: 1.0
        log_interval: 1000
        keep_checkpoint_max: 5
        seed: 7
        """

    static func recipe(_ folder: DataTempFolder, _ extra: [String] = []) throws -> Recipe {
        try Recipe.parse(yaml: yaml, source: "test.yaml",
                         overrides: ["--data_dir", folder.path, "--ckpt_save_dir", folder.path + "/ckpt"] + extra)
    }
}
