import Foundation
import XCTest
@testable import Trainer

/// The recipe's self-description (key help), timm's flag names as aliases, and the keys that are
/// refused with what to do instead (docs/cli.md).
final class RecipeDialectTests: XCTestCase {
    func parse(_ overrides: [String], yaml: String = "") throws -> Recipe {
        try Recipe.parse(yaml: yaml, source: "test.yaml", overrides: overrides)
    }

    func error(_ overrides: [String], yaml: String = "", file: StaticString = #filePath, line: UInt = #line) -> RecipeError? {
        do {
            _ = try parse(overrides, yaml: yaml)
            XCTFail("expected an error for \(overrides) / \(yaml)", file: file, line: line)
            return nil
        } catch let e as RecipeError {
            return e
        } catch {
            XCTFail("not a RecipeError: \(error)", file: file, line: line)
            return nil
        }
    }

    // MARK: help

    func testEveryKeyHasOneGroupAndMeaning() {
        let documented = Recipe.keyGroups.flatMap { $0.keys.map(\.name) }
        XCTAssertEqual(documented.count, Set(documented).count, "a key is documented twice")
        XCTAssertEqual(Set(documented), Set(Recipe.keys), "documented keys differ from accepted keys")
        for g in Recipe.keyGroups { for k in g.keys { XCTAssertFalse(k.meaning.isEmpty, k.name) } }
    }

    func testKeyHelpShowsTypeDefaultAndMeaning() {
        let help = Recipe.keyHelp()
        let lines = help.split(separator: "\n").map(String.init)
        func block(_ key: String) -> String {
            guard let i = lines.firstIndex(where: { $0.hasPrefix("  --\(key) (") }) else { return "" }
            return lines[i] + "\n" + lines[i + 1]
        }
        XCTAssertTrue(block("epoch_size").hasPrefix("  --epoch_size (int, default 90)\n      number of epochs"), block("epoch_size"))
        XCTAssertTrue(block("lr").contains("(float?, default null)"), block("lr"))
        XCTAssertTrue(block("scale").contains("(2 floats, default [0.08, 1.0])"), block("scale"))
        XCTAssertTrue(block("model").contains("(str, default mobilenet_v2_035_224)"), block("model"))
        XCTAssertTrue(block("ema").contains("(bool, default False)"), block("ema"))
        XCTAssertTrue(block("label_smoothing").contains("label smoothing"), block("label_smoothing"))
        XCTAssertTrue(lines.allSatisfy { $0.count <= 80 }, "every line fits the help printer's width")
        for title in ["System:", "Dataset:", "Augmentation:", "Model:", "LR schedule:", "Optimizer:"] {
            XCTAssertTrue(lines.contains(title), title)
        }
    }

    // MARK: timm's flags

    func testTimmTrainFlagsSetTheirRecipeKeys() throws {
        let r = try parse(["--epochs", "3", "--sched", "cosine", "--smoothing", "0.1", "--drop-path", "0.2", "--drop", "0.1",
                           "--aa", "rand-m9-mstd0.5-inc1", "--reprob", "0.25", "--remode", "pixel", "--model-ema",
                           "--model-ema-decay", "0.999", "--output", "/tmp/out", "-b", "16", "-j", "3", "--img-size", "160",
                           "--initial-checkpoint", "/w/init.safetensors", "--checkpoint-hist", "4", "--mixup-prob", "0.5",
                           "--grad-accum-steps", "2", "--warmup-epochs", "1", "--min-lr", "1e-5", "/data/folder"])
        XCTAssertEqual(r.epochSize, 3)
        XCTAssertEqual(r.scheduler, "cosine_decay")
        XCTAssertEqual(r.labelSmoothing, 0.1)
        XCTAssertEqual(r.dropPathRate, 0.2)
        XCTAssertEqual(r.dropRate, 0.1)
        XCTAssertEqual(r.autoAugment, "randaug-m9-mstd0.5-inc1")
        XCTAssertEqual(r.reProb, 0.25)
        XCTAssertEqual(r.reValue, .random)
        XCTAssertTrue(r.ema)
        XCTAssertEqual(r.emaDecay, 0.999)
        XCTAssertEqual(r.ckptSaveDir, "/tmp/out")
        XCTAssertEqual(r.batchSize, 16)
        XCTAssertEqual(r.numParallelWorkers, 3)
        XCTAssertEqual(r.imageResize, 160)
        XCTAssertEqual(r.ckptPath, "/w/init.safetensors")
        XCTAssertEqual(r.keepCheckpointMax, 4)
        XCTAssertEqual(r.cutmixProb, 0.5)
        XCTAssertEqual(r.gradientAccumulationSteps, 2)
        XCTAssertEqual(r.warmupEpochs, 1)
        XCTAssertEqual(r.minLR, 1e-5)
        XCTAssertEqual(r.dataDir, "/data/folder")
    }

    func testTimmValueTranslations() throws {
        XCTAssertEqual(try parse(["--sched", "step"]).scheduler, "step_decay")
        XCTAssertEqual(try parse(["--sched", "multistep"]).scheduler, "multi_step_decay")
        XCTAssertEqual(try parse(["--sched", "poly"]).scheduler, "polynomial_decay")
        XCTAssertEqual(try parse(["--aa", "original"]).autoAugment, "autoaug")
        XCTAssertEqual(try parse(["--aa=augmix-m3-w3"]).autoAugment, "augmix-m3-w3")
        XCTAssertEqual(try parse(["--remode", "const"]).reValue, .constant(0))
        XCTAssertEqual(try parse(["--model-ema", "False"]).ema, false)
    }

    func testClipGradInBothDialects() throws {
        let timm = try parse(["--clip-grad", "1.5"])
        XCTAssertTrue(timm.clipGrad)
        XCTAssertEqual(timm.clipValue, 1.5)
        let mindcv = try parse(["--clip_grad", "--clip_value", "3"])
        XCTAssertTrue(mindcv.clipGrad)
        XCTAssertEqual(mindcv.clipValue, 3)
        let off = try parse(["--clip_grad", "False"])
        XCTAssertFalse(off.clipGrad)
        XCTAssertEqual(off.clipValue, 15)
    }

    func testListsAsSeparateWordsAndBooleansLeaveTheDataFolder() throws {
        let r = try parse(["--scale", "0.5", "1.0", "--ratio", "0.8", "1.2", "--distribute", "/data/x", "--mean", "1", "2", "3"])
        XCTAssertEqual(r.scale, [0.5, 1.0])
        XCTAssertEqual(r.ratio, [0.8, 1.2])
        XCTAssertTrue(r.distribute)
        XCTAssertEqual(r.dataDir, "/data/x")
        XCTAssertEqual(r.mean, [1, 2, 3])
        let e = error(["/data/a", "/data/b"])
        guard case .syntax? = e?.kind else { return XCTFail("\(String(describing: e))") }
        XCTAssertTrue(e?.description.contains("/data/a") == true, e?.description ?? "")
    }

    func testTensorboardFlagTakesAFolder() throws {
        let withDir = try parse(["--tensorboard", "/tmp/tb", "--ckpt_save_dir", "/tmp/ck"])
        XCTAssertTrue(withDir.tensorboard)
        XCTAssertEqual(withDir.resolvedTensorboardDir, "/tmp/tb")
        let bare = try parse(["--tensorboard", "--ckpt_save_dir", "/tmp/ck"])
        XCTAssertTrue(bare.tensorboard)
        XCTAssertEqual(bare.resolvedTensorboardDir, "/tmp/ck/tensorboard")
        XCTAssertTrue(try parse([], yaml: "tensorboard: True\n").tensorboard)
    }

    func testSuggestionsKnowTimmNames() {
        let e = error(["--epoch", "3"])
        XCTAssertEqual(e?.kind, .unknownKey(suggestion: "epochs"))
        XCTAssertTrue(e?.description.contains("'--epochs' (timm's name for 'epoch_size')") == true, e?.description ?? "")
        // In a YAML file a timm name suggests the MindCV key.
        let y = error([], yaml: "epochs: 3\n")
        XCTAssertEqual(y?.kind, .unknownKey(suggestion: "epoch_size"))
        XCTAssertEqual(y?.line, 1)
        XCTAssertEqual(error(["--batchsize", "3"])?.kind, .unknownKey(suggestion: "batch_size"))
    }

    // MARK: no silent keys

    func testUnimplementedKeysAreRefusedWithWhatToDo() {
        let cases: [(String, String, String)] = [
            ("dataset: cifar10\n", "dataset", "image folder"),
            ("dataset_download: True\n", "dataset_download", "dataset_download: False"),
            ("auto_augment: augmix\naug_splits: 3\n", "aug_splits", "aug_splits: 0"),
            ("eval_shuffle: True\n", "eval_shuffle", "eval_shuffle: False"),
            ("aux_factor: 0.4\n", "aux_factor", "aux_factor: 0"),
            ("reduction: sum\n", "reduction", "reduction: mean"),
            ("loss: BCE\n", "loss", "loss: CE"),
        ]
        for (yaml, key, hint) in cases {
            guard let e = error([], yaml: yaml) else { continue }
            XCTAssertEqual(e.key, key, yaml)
            XCTAssertEqual(e.source, "test.yaml", yaml)
            guard case let .refused(message) = e.kind else { XCTFail("\(yaml): \(e)"); continue }
            XCTAssertTrue(message.contains(hint), "\(yaml): \(message)")
        }
        XCTAssertEqual(try parse([], yaml: "dataset: imagefolder\n").dataset, "imagefolder")
        // `pretrained: True` loads the model card's weights through the cache (docs/checkpoints.md §6).
        XCTAssertEqual(try parse([], yaml: "pretrained: True\n").pretrained, true)
        XCTAssertEqual(error([], yaml: "pretrained: True\nckpt_path: w.ckpt\n")?.key, "pretrained")
    }

    func testUnsupportedTimmFlagsAreRefusedWithWhatToDo() {
        for (args, hint) in [(["--cooldown-epochs", "10"], "--epochs"), (["--warmup-lr", "1e-6"], "warmup_factor"),
                             (["--sched", "plateau"], "cosine"), (["--aa", "v0"], "original"), (["--amp"], "fp32")] {
            guard let e = error(args) else { continue }
            guard case let .refused(message) = e.kind else { XCTFail("\(args): \(e)"); continue }
            XCTAssertTrue(message.contains(hint), "\(args): \(message)")
            XCTAssertEqual(e.key, args[0])
        }
    }

    func testNoEffectSettingsAreListed() throws {
        let r = try parse([], yaml: "amp_level: O2\nloss_scale_type: auto\nbatch_size: 8\n")
        XCTAssertEqual(r.noEffectSettings, ["amp_level O2", "loss_scale_type auto"])
        XCTAssertEqual(Recipe().noEffectSettings, [])
    }
}
