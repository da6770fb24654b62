import Foundation
import XCTest
@testable import Trainer
import DataPipeline

final class RecipeTests: XCTestCase {
    static let recipesDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("recipes").resolvingSymlinksInPath().path

    static let published = [
        "vit/vit_b32_224_ascend", "vit/vit_l32_224_ascend", "vit/vit_l16_224_ascend",
        "pit/pit_ti_ascend", "pit/pit_xs_ascend", "pit/pit_s_ascend", "pit/pit_b_ascend",
        "pvt/pvt_tiny_ascend", "pvt/pvt_small_ascend", "pvt/pvt_medium_ascend", "pvt/pvt_large_ascend",
        "convit/convit_tiny_ascend", "convit/convit_tiny_gpu", "convit/convit_tiny_plus_ascend", "convit/convit_small_ascend",
        "convit/convit_small_plus_ascend", "convit/convit_base_ascend", "convit/convit_base_plus_ascend",
        "visformer/visformer_tiny_ascend", "visformer/visformer_tiny_v2_ascend", "visformer/visformer_small_ascend",
        "visformer/visformer_small_v2_ascend",
    ]

    func recipe(_ name: String) throws -> Recipe { try Recipe.load(yamlPath: "\(Self.recipesDir)/\(name).yaml") }

    func expectError(_ yaml: String, overrides: [String] = [], file: StaticString = #filePath, line: UInt = #line,
                     _ check: (RecipeError) -> Void) {
        XCTAssertThrowsError(try Recipe.parse(yaml: yaml, source: "test.yaml", overrides: overrides), file: file, line: line) { e in
            guard let e = e as? RecipeError else { return XCTFail("not a RecipeError: \(e)", file: file, line: line) }
            check(e)
        }
    }

    // MARK: recipe files

    func testEveryRecipeFileLoads() throws {
        let files = FileManager.default.enumerator(atPath: Self.recipesDir)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".yaml") }
        XCTAssertGreaterThanOrEqual(files.count, 24)
        for f in files.sorted() {
            XCTAssertNoThrow(try Recipe.load(yamlPath: "\(Self.recipesDir)/\(f)"), f)
        }
        for name in Self.published {
            XCTAssertTrue(files.contains(name + ".yaml"), "missing recipe \(name)")
        }
        XCTAssertTrue(files.contains("fashion_mnist/pit_demo.yaml"))
    }

    func testPublishedRecipesScaleToTheirGlobalBatch() throws {
        // On 8 ranks every recipe reproduces its published absolute lr.
        let published: [String: Double] = ["vit/vit_b32_224_ascend": 0.0016, "pit/pit_ti_ascend": 0.002, "pvt/pvt_small_ascend": 0.0005,
                                           "convit/convit_tiny_ascend": 0.00072, "visformer/visformer_small_ascend": 0.0005]
        for name in Self.published {
            let r = try recipe(name)
            XCTAssertNil(r.lr, name)
            XCTAssertEqual(r.lrBaseSize, r.batchSize * 8, name)
            if let lr = published[name] { XCTAssertEqual(r.effectiveLR(worldSize: 8), lr, accuracy: 1e-12, name) }
            XCTAssertEqual(r.opt, "adamw", name)
            XCTAssertEqual(r.labelSmoothing, 0.1, name)
        }
        let pit = try recipe("pit/pit_ti_ascend")
        XCTAssertEqual(pit.effectiveLR(worldSize: 1), 0.002 / 8, accuracy: 1e-12)
        XCTAssertEqual(pit.minLR, 1e-5)
        XCTAssertEqual(pit.reValue, .random)
        XCTAssertEqual(pit.loss, "ce")
        XCTAssertEqual(pit.numParallelWorkers, 16)
        XCTAssertEqual(pit.warmupEpochs, 10)
        XCTAssertEqual(pit.decayEpochs, 490)
        let vit = try recipe("vit/vit_l16_224_ascend")
        XCTAssertEqual(vit.weightDecayFilter, "norm_and_bias")
        XCTAssertEqual(vit.ckptSavePolicy, "top_k")
        XCTAssertTrue(vit.ema)
        XCTAssertEqual(vit.dropRate, 0.15)
        XCTAssertEqual(vit.minLR, 0)
        let vis = try recipe("visformer/visformer_tiny_ascend")
        XCTAssertEqual(vis.imageResize, 224)  // absent → default
        XCTAssertTrue(vis.lrEpochStair)
        XCTAssertEqual(vis.warmupFactor, 0.002)
        XCTAssertEqual(vis.ampLevel, "O3")
        let gpu = try recipe("convit/convit_tiny_gpu")
        XCTAssertEqual(gpu.colorJitter, [0.4, 0.4, 0.4])
        XCTAssertEqual(gpu.cutmix, 0)
        let conv = try recipe("convit/convit_small_ascend")
        XCTAssertEqual(conv.scheduler, "warmup_cosine_decay")
        XCTAssertEqual(conv.autoAugment, "autoaug-mstd0.5")
    }

    func testDefaultsAreMindCVs() throws {
        let r = try Recipe.load(yamlPath: nil)
        XCTAssertEqual(r, Recipe())
        XCTAssertEqual(r.warmupEpochs, 3)
        XCTAssertEqual(r.opt, "adam")
        XCTAssertEqual(r.weightDecay, 1e-6)
        XCTAssertEqual(r.effectiveLR(), 0.001)
        XCTAssertEqual(r.colorJitter, [0.4])
        XCTAssertEqual(r.ckptSavePolicy, "latest_k")
        XCTAssertEqual(r.mean, [123.675, 116.28, 103.53])
        XCTAssertEqual(Recipe.keys.count, Set(Recipe.keys).count)
        // Every key of the table is a coding key and vice versa.
        XCTAssertEqual(Set(Recipe.keys), Set(Recipe.CodingKeys.allCases.map { $0.rawValue }))
    }

    // MARK: strictness

    func testUnknownKeyNamesFileLineAndClosestKey() {
        expectError("model: pit_ti\nbatchsize: 64\n") { e in
            XCTAssertEqual(e.line, 2)
            XCTAssertEqual(e.key, "batchsize")
            XCTAssertEqual(e.kind, .unknownKey(suggestion: "batch_size"))
            XCTAssertTrue(e.description.hasPrefix("test.yaml:2: 'batchsize': unknown key; did you mean 'batch_size'?"), e.description)
        }
        expectError("", overrides: ["--drop-path-rte", "0.1"]) { e in
            XCTAssertEqual(e.source, "command line")
            XCTAssertEqual(e.kind, .unknownKey(suggestion: "drop_path_rate"))
        }
    }

    func testWrongTypesAreRejected() {
        expectError("seed: 1\nbatch_size: many\n") { e in
            XCTAssertEqual(e.line, 2)
            XCTAssertEqual(e.key, "batch_size")
            XCTAssertEqual(e.kind, .wrongType(expected: "an integer", found: "'many'"))
        }
        expectError("epoch_size: 2.5") { e in XCTAssertEqual(e.key, "epoch_size") }
        expectError("scale: 0.5") { e in XCTAssertEqual(e.kind, .wrongType(expected: "a list of 2 numbers", found: "'0.5'")) }
        expectError("scale: [0.1, 0.5, 1.0]") { e in XCTAssertEqual(e.key, "scale") }
        expectError("distribute: maybe") { e in XCTAssertEqual(e.key, "distribute") }
        expectError("batch_size: null") { e in XCTAssertEqual(e.key, "batch_size") }
        expectError("mean: {a: 1}") { e in XCTAssertEqual(e.key, "mean") }
        expectError("- a\n- b\n") { e in XCTAssertEqual(e.kind, .notAMapping) }
        expectError("batch_size: [1, 2\n") { e in
            guard case .syntax = e.kind else { return XCTFail("\(e)") }
        }
    }

    func testOutOfRangeValuesAreRejected() {
        for (yaml, key) in [("hflip: 1.5", "hflip"), ("batch_size: 0", "batch_size"), ("label_smoothing: 1.0", "label_smoothing"),
                            ("lr: -0.1", "lr"), ("re_prob: -0.2", "re_prob"), ("scale: [0.9, 0.1]", "scale"),
                            ("drop_path_rate: 1.0", "drop_path_rate"), ("mean: [1, 2]", "mean"), ("aug_splits: 2", "aug_splits"),
                            ("warmup_epochs: -1", "warmup_epochs"), ("keep_checkpoint_max: 0", "keep_checkpoint_max"),
                            ("lr_base_scale: cube", "lr_base_scale"), ("auto_augment: randomaug-m9", "auto_augment")] {
            expectError("seed: 1\n" + yaml + "\n") { e in
                XCTAssertEqual(e.key, key, yaml)
                XCTAssertEqual(e.line, 2, yaml)
                guard case .outOfRange = e.kind else { return XCTFail("\(yaml): \(e)") }
            }
        }
    }

    func testChoicesSuggestAndUnsupportedAreNamed() {
        expectError("scheduler: cosine_decya") { e in
            XCTAssertEqual(e.key, "scheduler")
            XCTAssertTrue(e.description.contains("did you mean 'cosine_decay'"), e.description)
        }
        expectError("weight_decay_filter: norm_bias") { e in XCTAssertTrue(e.description.contains("'norm_and_bias'"), e.description) }
        expectError("opt: lamb") { e in XCTAssertTrue(e.description.contains("does not implement"), e.description) }
        expectError("scheduler: one_cycle\nwarmup_epochs: 0") { e in XCTAssertTrue(e.description.contains("does not implement"), e.description) }
        expectError("ckpt_save_policy: top_k") { e in XCTAssertEqual(e.key, "ckpt_save_policy") }
        XCTAssertNoThrow(try Recipe.parse(yaml: "ckpt_save_policy: top_k\nval_while_train: True"))
        XCTAssertNoThrow(try Recipe.parse(yaml: "opt: AdamW\nloss: ce\ninterpolation: BICUBIC\nscheduler: warmup_cosine_decay"))
    }

    func testDuplicateKey() {
        expectError("seed: 1\nlr: 0.1\nseed: 2\n") { e in
            XCTAssertEqual(e.line, 3)
            XCTAssertEqual(e.kind, .duplicateKey(firstLine: 1))
        }
    }

    func testMindCVValueQuirks() throws {
        let r = try Recipe.parse(yaml: """
            min_lr: "1e-5"
            lr: 1
            warmup_factor: 1e-2
            distribute: yes
            shuffle: 0
            val_while_train: TRUE
            epoch_size: 10.0
            batch_size: '64'
            auto_augment: null
            ckpt_save_policy: ~
            num_classes:
            color_jitter: [0.1, 0.2, 0.3, 0.05]
            re_value: [0.1, 0.2, 0.3]
            dataset: ''
            multi_step_decay_milestones: [10, 20]
            """)
        XCTAssertEqual(r.minLR, 1e-5)
        XCTAssertEqual(r.lr, 1.0)
        XCTAssertEqual(r.warmupFactor, 0.01)
        XCTAssertTrue(r.distribute)
        XCTAssertFalse(r.shuffle)
        XCTAssertTrue(r.valWhileTrain)
        XCTAssertEqual(r.epochSize, 10)
        XCTAssertEqual(r.batchSize, 64)
        XCTAssertNil(r.autoAugment)
        XCTAssertNil(r.ckptSavePolicy)
        XCTAssertNil(r.numClasses)
        XCTAssertEqual(r.colorJitter, [0.1, 0.2, 0.3, 0.05])
        XCTAssertEqual(r.reValue, .perChannel([0.1, 0.2, 0.3]))
        XCTAssertEqual(r.dataset, "")
        XCTAssertEqual(r.multiStepDecayMilestones, [10, 20])
    }

    // MARK: command line

    func testCommandLineOverridesRecipe() throws {
        let yaml = "batch_size: 128\ndrop_path_rate: 0.2\nmodel: pit_ti\nscale: [0.08, 1.0]\n"
        let r = try Recipe.parse(yaml: yaml, overrides: [
            "--batch_size", "64", "--drop-path-rate=0.1", "--distribute", "--seed", "3", "--scale", "0.5,1.0",
            "--mean=[1, 2, 3]", "--auto_augment", "randaug-m9-mstd0.5", "--re-value", "random", "--num_classes=none",
            "--val_while_train", "no", "--clip_grad",
        ])
        XCTAssertEqual(r.batchSize, 64)
        XCTAssertEqual(r.dropPathRate, 0.1)
        XCTAssertTrue(r.distribute)
        XCTAssertEqual(r.seed, 3)
        XCTAssertEqual(r.scale, [0.5, 1.0])
        XCTAssertEqual(r.mean, [1, 2, 3])
        XCTAssertEqual(r.autoAugment, "randaug-m9-mstd0.5")
        XCTAssertEqual(r.reValue, .random)
        XCTAssertNil(r.numClasses)
        XCTAssertFalse(r.valWhileTrain)
        XCTAssertTrue(r.clipGrad)
        XCTAssertEqual(r.model, "pit_ti")
    }

    func testCommandLineErrors() {
        expectError("", overrides: ["--batch_size"]) { e in
            XCTAssertEqual(e.kind, .missingValue)
            XCTAssertEqual(e.key, "--batch_size")
        }
        expectError("", overrides: ["--batch_size", "--distribute"]) { e in XCTAssertEqual(e.kind, .missingValue) }
        expectError("", overrides: ["--hflip", "2"]) { e in
            XCTAssertEqual(e.source, "command line")
            XCTAssertEqual(e.key, "hflip")
        }
        expectError("", overrides: ["batch_size", "3"]) { e in
            guard case .syntax = e.kind else { return XCTFail("\(e)") }
        }
        expectError("", overrides: ["--lr", "abc"]) { e in XCTAssertEqual(e.kind, .wrongType(expected: "a number or null", found: "'abc'")) }
        // A range error caused by the recipe file names the file and line.
        expectError("seed: 0\nhflip: 0.5\nvflip: 7\n", overrides: ["--hflip", "0.1"]) { e in
            XCTAssertEqual(e.source, "test.yaml")
            XCTAssertEqual(e.line, 3)
        }
    }

    // MARK: learning rate

    func testEffectiveLR() throws {
        var r = try Recipe.parse(yaml: "lr_base: 0.002\nlr_base_size: 1024\nbatch_size: 128\n")
        XCTAssertEqual(r.effectiveLR(worldSize: 8), 0.002, accuracy: 1e-15)
        XCTAssertEqual(r.effectiveLR(worldSize: 1), 0.00025, accuracy: 1e-15)
        r.gradientAccumulationSteps = 4
        XCTAssertEqual(r.effectiveLR(worldSize: 2), 0.002, accuracy: 1e-15)
        r.lrBaseScale = "sqrt"
        r.gradientAccumulationSteps = 1
        XCTAssertEqual(r.effectiveLR(worldSize: 2), 0.002 * 0.5, accuracy: 1e-15)
        // Default lr_base_size 256.
        XCTAssertEqual(try Recipe.parse(yaml: "lr_base: 0.001\nbatch_size: 512").effectiveLR(), 0.002, accuracy: 1e-15)
        // An absolute lr is never scaled.
        XCTAssertEqual(try Recipe.parse(yaml: "lr: 0.01\nbatch_size: 512").effectiveLR(worldSize: 8), 0.01)
    }

    func testLRAndLRBasePrecedence() throws {
        expectError("lr: 0.1\nbatch_size: 8\nlr_base: 0.2\n") { e in
            XCTAssertEqual(e.line, 3)
            XCTAssertEqual(e.key, "lr_base")
            guard case .conflict = e.kind else { return XCTFail("\(e)") }
        }
        let yaml = "lr_base: 0.002\nlr_base_size: 1024\n"
        let cliLR = try Recipe.parse(yaml: yaml, overrides: ["--lr", "0.0005"])
        XCTAssertNil(cliLR.lrBase)
        XCTAssertEqual(cliLR.effectiveLR(worldSize: 8), 0.0005)
        let cliBase = try Recipe.parse(yaml: "lr: 0.1\n", overrides: ["--lr_base", "0.001"])
        XCTAssertNil(cliBase.lr)
        XCTAssertEqual(cliBase.effectiveLR(), 0.0005, accuracy: 1e-15)  // 128 / 256
    }

    // MARK: resolved recipe

    func testResolvedYAMLRoundTrips() throws {
        let r = try Recipe.load(yamlPath: "\(Self.recipesDir)/pit/pit_s_ascend.yaml",
                                overrides: ["--batch_size", "32", "--data_dir", "/data/my imagenet: v2", "--ckpt_path", "yes",
                                            "--ckpt-save-policy", "null", "--num_classes", "10"])
        let text = r.resolvedYAML(worldSize: 2)
        XCTAssertTrue(text.contains("# effective lr: 0.000125 "), text)
        XCTAssertTrue(text.contains("\nbatch_size: 32\n"))
        XCTAssertTrue(text.contains("\nlr_base: 0.002\n"))
        let back = try Recipe.parse(yaml: text, source: "resolved.yaml")
        XCTAssertEqual(back, r)
        XCTAssertEqual(back.dataDir, "/data/my imagenet: v2")
        XCTAssertEqual(back.ckptPath, "yes")
        XCTAssertNil(back.ckptSavePolicy)
        // Defaults also round-trip, and Codable (JSON) works with MindCV key names.
        XCTAssertEqual(try Recipe.parse(yaml: Recipe().resolvedYAML()), Recipe())
        let json = try JSONEncoder().encode(r)
        XCTAssertTrue(String(decoding: json, as: UTF8.self).contains("\"batch_size\":32"))
        XCTAssertEqual(try JSONDecoder().decode(Recipe.self, from: json), r)
    }

    func testRecipeFileErrorsNameThePath() {
        XCTAssertThrowsError(try Recipe.load(yamlPath: "/nonexistent/x.yaml")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/x.yaml"), "\(e)")
        }
    }
}
