import Foundation
import Models
import Tensor
import TestSupport
import XCTest
@testable import Trainer
import DataPipeline

/// Resuming (docs/training.md §9): inside an epoch from a recovery checkpoint to bit-identical
/// files; a resume with nothing left to do; hand-edited state refused; no duplicate metrics lines.
final class ResumeTests: TinyTrainingCase {
    func recipe(_ dir: String, _ extra: [String]) throws -> Recipe {
        try TinyTraining.recipe(folder, ["--ckpt_save_dir", folder.path + "/" + dir] + extra)
    }

    func files(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path + "/" + dir)) ?? []).sorted()
    }

    func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: folder.path + "/" + path)) }

    /// The `train_loss` column of a metrics file, by epoch.
    func trainLosses(_ dir: String) throws -> [String] {
        try String(contentsOfFile: folder.path + "/\(dir)/metrics.csv", encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).prefix(2).joined(separator: ",") }
    }

    // MARK: recovery checkpoints

    func testRecoveryResumeInsideEpochsIsBitIdentical() throws {
        // EMA, accumulation over 2 micro-batches and Mixup: every piece of state a step carries.
        // 6 steps per epoch; updates after global steps 2, 4, 6, 8, …; recovery checkpoints after
        // steps 4 (epoch 1) and 8 (epoch 2, step 2).
        let extra = ["--val_while_train", "False", "--epoch_size", "2", "--ema", "True", "--ema_decay", "0.9",
                     "--gradient_accumulation_steps", "2", "--mixup", "0.2", "--recovery_interval", "3"]
        try TrainingRun(recipe: try recipe("a", extra), log: { _ in }).run()
        XCTAssertFalse(files("a").contains { $0.contains("_recovery_") }, "recovery files are pruned by the epoch checkpoints: \(files("a"))")

        for stop in [5, 11] {
            let run = try TrainingRun(recipe: try recipe("b", extra + (stop == 5 ? [] : ["--resume", folder.path + "/b"])), log: { _ in })
            let stopper = StopAtStep(stop, run)
            run.addObserver(stopper)
            let summary = try run.run()
            XCTAssertEqual(stopper.seen.last, stop)
            XCTAssertEqual(summary.epochs.map(\.epoch), stop == 5 ? [] : [1], "epoch 1 ends in the second run; an interrupted epoch has no record")
            let expected = stop == 5 ? "pit_ti_recovery_0_4.json" : "pit_ti_recovery_1_2.json"
            XCTAssertEqual(files("b").filter { $0.contains("_recovery_") && $0.hasSuffix(".json") }, [expected], "only the newest recovery point is kept")
        }
        let lines = Lines()
        let resumed = try TrainingRun(recipe: try recipe("b", extra + ["--resume", folder.path + "/b"]), log: lines.add)
        let stopper = StopAtStep(nil, resumed)
        resumed.addObserver(stopper)
        try resumed.run()
        XCTAssertEqual(stopper.seen, [9, 10, 11, 12], "continues after the recovery point's step 8")
        XCTAssertTrue(lines.text.contains("epoch 2, 2 of 6 steps done, global step 8"), lines.text)
        for file in ["pit_ti-1.safetensors", "pit_ti-1.state.safetensors", "pit_ti-1.json"] {
            XCTAssertEqual(try bytes("a/" + file), try bytes("b/" + file), "\(file) differs from the uninterrupted run's")
        }
        XCTAssertEqual(try trainLosses("b"), try trainLosses("a"), "same epoch losses, each epoch once")
        XCTAssertEqual(try trainLosses("a").count, 2)
        XCTAssertFalse(files("b").contains { $0.contains("_recovery_") || $0.contains(".tmp-") }, "\(files("b"))")
    }

    // MARK: row 3: nothing left to train

    func testResumeWithEpochSizeReachedEndsAtOnce() throws {
        let extra = ["--val_while_train", "False", "--epoch_size", "1"]
        try TrainingRun(recipe: try recipe("ckpt", extra), log: { _ in }).run()
        func listing() throws -> [String: Date] {
            var out: [String: Date] = [:]
            for f in files("ckpt") {
                out[f] = try FileManager.default.attributesOfItem(atPath: folder.path + "/ckpt/" + f)[.modificationDate] as? Date
            }
            return out
        }
        let before = try listing()
        let lines = Lines()
        let again = try TrainingRun(recipe: try recipe("ckpt", extra + ["--resume", folder.path + "/ckpt"]), log: lines.add)
        XCTAssertEqual(try again.run().epochs.count, 0)
        XCTAssertTrue(lines.text.contains("nothing to train") && lines.text.contains("1 epochs done and epoch_size is 1"), lines.text)
        XCTAssertEqual(try listing(), before, "no new or rewritten file")

        // A state file claiming a million epochs: the same, with epoch_size 4.
        try editState("ckpt/pit_ti-0.json") { $0["epoch"] = 1_000_000 }
        let edited = try listing()
        let lines2 = Lines()
        let far = try TrainingRun(recipe: try recipe("ckpt", ["--val_while_train", "False", "--resume", folder.path + "/ckpt"]), log: lines2.add)
        XCTAssertEqual(try far.run().epochs.count, 0)
        XCTAssertTrue(lines2.text.contains("1000001 epochs done and epoch_size is 4"), lines2.text)
        XCTAssertEqual(try listing(), edited)
    }

    // MARK: row 10: hand-edited state

    func testHandEditedStateIsRefusedNamingFileAndField() throws {
        let extra = ["--val_while_train", "False", "--epoch_size", "2"]
        try TrainingRun(recipe: try recipe("ckpt", extra), log: { _ in }).run()
        let json = folder.path + "/ckpt/pit_ti-1.json"
        let original = try bytes("ckpt/pit_ti-1.json")
        let edits: [(String, ([String: Any]) -> [String: Any])] = [
            ("epoch", { var d = $0; d["epoch"] = -5; return d }),
            ("globalStep", { var d = $0; d["globalStep"] = -100; return d }),
            ("optimizerSteps", { var d = $0; d["globalStep"] = 3; return d }),  // 12 updates cannot come from 3 data steps
            ("optimizerSteps", { var d = $0; d["optimizerSteps"] = 999; return d }),
            ("partialEpoch.steps", { var d = $0; d["stepsPerEpoch"] = 6
                d["partialEpoch"] = ["steps": 6, "lossSum": 1.0, "samples": 48, "skipped": 0]; return d }),
            ("classNames", { var d = $0; d["classNames"] = ["a", "b", "c"]; return d }),
            ("model", { var d = $0; d["model"] = "pit_xs"; return d }),
        ]
        for (field, edit) in edits {
            try original.write(to: URL(fileURLWithPath: json))
            try editState("ckpt/pit_ti-1.json") { d in d = edit(d) }
            XCTAssertThrowsError(try TrainingRun(recipe: try recipe("ckpt", ["--val_while_train", "False", "--epoch_size", "4",
                                                                            "--resume", folder.path + "/ckpt"]), log: { _ in })) { e in
                XCTAssertTrue("\(e)".contains(json) && "\(e)".contains("'\(field)'"), "\(field): \(e)")
            }
        }
        // Unparseable: refused naming the file, not passed over for pit_ti-0.
        try Data("{\"epoch\": 1, \"globalStep\": ".utf8).write(to: URL(fileURLWithPath: json))
        XCTAssertThrowsError(try TrainingRun(recipe: try recipe("ckpt", ["--val_while_train", "False", "--epoch_size", "4",
                                                                        "--resume", folder.path + "/ckpt"]), log: { _ in })) { e in
            guard case let CheckpointError.badMetadata(path, _) = e else { return XCTFail("\(e)") }
            XCTAssertEqual(path, json)
        }
    }

    // MARK: row 14: a kill between metrics.csv and the checkpoint; stale temporaries

    func testResumeAfterKillBeforeCheckpointWritesEachEpochOnce() throws {
        let extra = ["--val_while_train", "False", "--epoch_size", "3"]
        let first = try TrainingRun(recipe: try recipe("ckpt", extra), log: { _ in })
        first.stopAfterEpoch = 2
        try first.run()
        XCTAssertEqual(try trainLosses("ckpt").count, 2)
        // As if killed after epoch 2's metrics line and before its checkpoint (and mid-write of it).
        for suffix in [".safetensors", ".state.safetensors", ".json"] {
            try FileManager.default.removeItem(atPath: folder.path + "/ckpt/pit_ti-1" + suffix)
        }
        let dead = Int32.max - 1, alive = Int32(1)
        try Data("partial".utf8).write(to: URL(fileURLWithPath: folder.path + "/ckpt/.pit_ti-1.safetensors.tmp-\(dead)"))
        try Data("busy".utf8).write(to: URL(fileURLWithPath: folder.path + "/ckpt/.other.json.tmp-\(alive)"))
        let resumed = try TrainingRun(recipe: try recipe("ckpt", extra + ["--resume", folder.path + "/ckpt"]), log: { _ in })
        XCTAssertEqual(try resumed.run().epochs.map(\.epoch), [2, 3])
        let epochs = try trainLosses("ckpt").map { $0.prefix { $0 != "," } }
        XCTAssertEqual(epochs, ["1", "2", "3"], "each epoch once")
        XCTAssertFalse(files("ckpt").contains(".pit_ti-1.safetensors.tmp-\(dead)"), "a dead writer's temporary is removed")
        XCTAssertTrue(files("ckpt").contains(".other.json.tmp-\(alive)"), "a live process's temporary is left alone")
    }

    // MARK: pieces

    func testLoaderStartsAnEpochAtAnyBatch() throws {
        let set = try ImageFolder(root: folder.path, split: "train")
        let transform = try TrainTransform(imageSize: 16, scale: 0.5...1.0)
        let loader = try DataLoader(dataset: set, transform: transform, options: LoaderOptions(batchSize: 8, numParallelWorkers: 2, seed: 3))
        var full: [Batch] = []
        let all = loader.epoch(2)
        while let b = try all.next() { full.append(b) }
        var tail: [Batch] = []
        let rest = loader.epoch(2, startBatch: 4)
        while let b = try rest.next() { tail.append(b) }
        XCTAssertEqual(full.count, 6)
        XCTAssertEqual(tail.map(\.index), [4, 5])
        for (a, b) in zip(full.suffix(2), tail) {
            XCTAssertEqual(a.labels, b.labels)
            XCTAssertEqual(tensorBits(a.images), tensorBits(b.images))
        }
        var none = 0
        let past = loader.epoch(2, startBatch: 99)
        while try past.next() != nil { none += 1 }
        XCTAssertEqual(none, 0)
    }

    func testRecoveryIntervalIsARecipeKey() throws {
        XCTAssertEqual(try recipe("x", ["--recovery_interval", "50"]).recoveryInterval, 50)
        XCTAssertEqual(try recipe("x", []).recoveryInterval, 0)
        XCTAssertThrowsError(try recipe("x", ["--recovery_interval", "-1"])) { e in
            XCTAssertTrue("\(e)".contains("recovery_interval"), "\(e)")
        }
    }

    func editState(_ path: String, _ edit: (inout [String: Any]) -> Void) throws {
        let url = URL(fileURLWithPath: folder.path + "/" + path)
        guard var d = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else { return XCTFail("not an object") }
        edit(&d)
        try JSONSerialization.data(withJSONObject: d).write(to: url)
    }
}

/// Records the global steps it sees and stops the run after step `stop`.
final class StopAtStep: TrainingObserver {
    let stop: Int?
    weak var run: TrainingRun?
    var seen: [Int] = []
    init(_ stop: Int?, _ run: TrainingRun) { self.stop = stop; self.run = run }
    func stepFinished(_ e: StepEvent) {
        seen.append(e.globalStep)
        if e.globalStep == stop { run?.stopRequested = true }
    }
}

/// Log lines collected from any thread.
final class Lines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    var add: @Sendable (String) -> Void { { [self] l in lock.lock(); lines.append(l); lock.unlock() } }
    var text: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }
}
