import Foundation
import Models
import Tensor
import TestSupport
import XCTest
@testable import Trainer
import DataPipeline

/// recipes/fashion_mnist/pit_finetune.yaml from a 1000-class 224 px pit_ti checkpoint on a tiny
/// 40 px folder (docs/finetuning.md): the blocks load unchanged, only the head is new and the
/// position map is resampled, and the run trains.
final class FineTuneRunTests: XCTestCase {
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }
    }

    func testFineTuneRecipeAdaptsA1000Class224pxCheckpoint() throws {
        let folder = try DataTempFolder("finetune")
        defer { folder.cleanup() }
        for split in ["train", "val"] { try makeImageFolder(folder, split: split, classes: ["a", "b", "c"], perClass: 2, size: (44, 40)) }
        let pretrained = PiT(config: .ti, options: ModelOptions(numClasses: 1000, seed: 11))
        let ckpt = folder.path + "/pit_ti_in1k.safetensors"
        try SafeTensorsFile.write(pretrained.stateDict(), to: ckpt)
        let source = pretrained.stateDict().mapValues { $0.scalars }

        let repo = Fixtures.directory.deletingLastPathComponent().deletingLastPathComponent()
        let recipe = try Recipe.load(yamlPath: repo.appendingPathComponent("recipes/fashion_mnist/pit_finetune.yaml").path,
                                     overrides: ["--data_dir", folder.path, "--ckpt_path", ckpt, "--ckpt_save_dir", folder.path + "/run",
                                                 "--epoch_size", "1", "--batch_size", "3", "--num_parallel_workers", "1",
                                                 "--warmup_epochs", "0", "--decay_epochs", "1", "--val_while_train", "False"])
        XCTAssertEqual(recipe.numClasses, 10)
        XCTAssertEqual(recipe.imageResize, 40)
        let log = Lines()
        let run = try TrainingRun(recipe: recipe, log: { log.append($0) })

        // After loading: every block, norm and the patch conv as in the checkpoint; the head new;
        // the 27×27 position map resampled to the 4×4 grid of 40 px inputs.
        var changed: [String] = []
        for (name, p) in run.model.namedParameters() {
            if name.hasPrefix("head.") {
                XCTAssertEqual(p.shape, name == "head.weight" ? [10, 256] : [10])
                changed.append(name)
            } else if name == "pos_embed" {
                XCTAssertEqual(p.shape, [1, 64, 4, 4])
                XCTAssertEqual(p.value.scalars, bicubicResample(source[name]!, channels: 64, from: (27, 27), to: (4, 4), channelsLast: false))
                changed.append(name)
            } else {
                XCTAssertEqual(p.value.scalars, source[name], "\(name) keeps the checkpoint's values")
            }
        }
        XCTAssertEqual(changed.sorted(), ["head.bias", "head.weight", "pos_embed"])
        XCTAssertTrue(log.text.contains("classifier re-initialised"), log.text)
        XCTAssertTrue(log.text.contains("head.weight [1000, 256] → [10, 256]"), log.text)
        XCTAssertTrue(log.text.contains("pos_embed [1, 64, 27, 27] → [1, 64, 4, 4]"), log.text)

        // And it trains from there.
        let summary = try run.run()
        XCTAssertEqual(summary.epochs.count, 1)
        XCTAssertTrue(summary.epochs[0].trainLoss.isFinite)
        let block = "transformers.1.blocks.0.mlp.fc1.weight"
        XCTAssertNotEqual(run.model.namedParameters().first { $0.name == block }?.parameter.value.scalars, source[block])
    }
}
