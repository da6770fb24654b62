import Foundation
import Models
import Tensor
import XCTest
@testable import Trainer
import DataPipeline

final class CheckpointTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "vitzoo-ckpt-\(UUID().uuidString)"
    }

    override func tearDownWithError() throws {
        _ = chmod(dir, 0o755)
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A model, an AdamW that has taken one step, and an EMA that has seen it.
    func trained(seed: UInt64 = 0) -> (FilterNet, AdamW, ExponentialMovingAverage) {
        let net = FilterNet()
        let params = net.namedParameters()
        let opt = AdamW(parameters: params, weightDecay: 0.05)
        let ema = ExponentialMovingAverage(model: net, decay: 0.999)
        var g = RandomGenerator(seed: seed)
        setGradients(params, params.map { Tensor.randn($0.parameter.shape, generator: &g) })
        opt.step(lr: 0.01)
        opt.zeroGrad()
        ema.update()
        return (net, opt, ema)
    }

    func state(epoch: Int, metric: Double? = nil) -> TrainingState {
        var rng = RandomGenerator(seed: 99)
        _ = rng.next()
        return TrainingState(epoch: epoch, globalStep: epoch * 10, optimizerSteps: 0, rng: ["data": rng, "model": RandomGenerator(seed: 5)],
                             metric: metric, bestMetric: metric, bestEpoch: epoch, classNames: ["a", "b", "c"], model: "filternet",
                             extra: ["opt": "adamw"])
    }

    func epochs(_ m: CheckpointManager) -> [Int] { m.entries.map { $0.epoch } }

    func filesOnDisk() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() }

    func testSaveAndResumeRestoresEverything() throws {
        let (net, opt, ema) = trained()
        let m = try CheckpointManager(directory: dir, modelName: "filternet", policy: .latestK(10))
        let p = try m.save(model: net, optimizer: opt, ema: ema, state: state(epoch: 3, metric: 41.5))
        XCTAssertEqual(p.weights, dir + "/filternet-3.safetensors")
        XCTAssertEqual(filesOnDisk(), ["filternet-3.json", "filternet-3.safetensors", "filternet-3.state.safetensors"])
        // Weights under canonical names only; optimizer and EMA tensors in the state file.
        let weights = try SafeTensorsFile(path: p.weights)
        XCTAssertEqual(Set(weights.tensors.keys), Set(net.stateDict().keys))
        let st = try SafeTensorsFile(path: p.state)
        XCTAssertTrue(st.tensors.keys.contains("optimizer.exp_avg.fc.weight"))
        XCTAssertTrue(st.tensors.keys.contains("ema.bn.running_var"))

        let (net2, opt2, ema2) = trained(seed: 1)
        let resolved = try CheckpointManager.resolve(dir)
        XCTAssertEqual(resolved, p)
        let restored = try CheckpointManager.load(resolved, model: net2, optimizer: opt2, ema: ema2)
        var expected = state(epoch: 3, metric: 41.5)
        expected.optimizerSteps = 1
        expected.emaUpdates = 1
        XCTAssertEqual(restored, expected)
        for (k, v) in net.stateDict() { XCTAssertEqual(net2.stateDict()[k]?.scalars, v.scalars, k) }
        for (k, v) in opt.stateTensors() { XCTAssertEqual(opt2.stateTensors()[k]?.scalars, v.scalars, k) }
        for (k, v) in ema.stateTensors() { XCTAssertEqual(ema2.stateTensors()[k]?.scalars, v.scalars, k) }
        XCTAssertEqual(opt2.stepCount, 1)
        XCTAssertEqual(ema2.updates, 1)
        // The restored generator continues the same stream.
        var a = restored.rng["data"]!, b = expected.rng["data"]!
        XCTAssertEqual(a.next(), b.next())
        // EMA weights for evaluation.
        XCTAssertEqual(try CheckpointManager.weights(p, ema: true)["fc.weight"]?.scalars, ema.averagedStateDict()["fc.weight"]?.scalars)
    }

    func testLatestKKeepsTheNewest() throws {
        let (net, opt, _) = trained()
        let m = try CheckpointManager(directory: dir, modelName: "filternet", policy: .latestK(2))
        for e in 1...4 { try m.save(model: net, optimizer: opt, ema: nil, state: state(epoch: e)) }
        XCTAssertEqual(epochs(m), [3, 4])
        XCTAssertEqual(filesOnDisk().filter { $0.hasSuffix(".json") }, ["filternet-3.json", "filternet-4.json"])
        XCTAssertEqual(filesOnDisk().count, 6)
        // A new manager on the same directory picks the kept ones up and keeps pruning.
        let m2 = try CheckpointManager(directory: dir, modelName: "filternet", policy: .latestK(2))
        XCTAssertEqual(epochs(m2), [3, 4])
        try m2.save(model: net, optimizer: opt, ema: nil, state: state(epoch: 5))
        XCTAssertEqual(epochs(m2), [4, 5])
        XCTAssertEqual(try CheckpointManager.resolve(dir).meta, dir + "/filternet-5.json")
    }

    func testTopKKeepsTheBestAndTiesDoNotDisplace() throws {
        let (net, opt, _) = trained()
        let m = try CheckpointManager(directory: dir, modelName: "filternet", policy: .topK(2))
        for (e, acc) in [50.0, 70, 60, 40, 60, 75].enumerated() {
            try m.save(model: net, optimizer: opt, ema: nil, state: state(epoch: e + 1, metric: acc))
        }
        XCTAssertEqual(epochs(m), [2, 6])
        XCTAssertEqual(Set(filesOnDisk().filter { $0.hasSuffix(".json") }), ["filternet-2.json", "filternet-6.json"])
        // Policy from the recipe.
        XCTAssertEqual(CheckpointManager.Policy(name: "top_k", keep: 3), .topK(3))
        XCTAssertEqual(CheckpointManager.Policy(name: "latest_k", keep: 3), .latestK(3))
        XCTAssertEqual(CheckpointManager.Policy(name: nil, keep: 3), .keepAll)
    }

    func testKeepAllAndBest() throws {
        let (net, opt, _) = trained()
        let m = try CheckpointManager(directory: dir, modelName: "filternet", policy: .keepAll)
        for e in 1...3 { try m.save(model: net, optimizer: opt, ema: nil, state: state(epoch: e)) }
        try m.saveBest(model: net, optimizer: opt, ema: nil, state: state(epoch: 2, metric: 90))
        XCTAssertEqual(epochs(m), [1, 2, 3])
        XCTAssertTrue(filesOnDisk().contains("filternet_best.safetensors"))
        // The best file is not a periodic checkpoint: resuming a directory takes the latest epoch.
        XCTAssertEqual(try CheckpointManager.resolve(dir).meta, dir + "/filternet-3.json")
        XCTAssertEqual(try CheckpointManager.resolve(dir + "/filternet_best.safetensors"), m.bestPaths)
    }

    func testFailedSaveLeavesTheLastGoodCheckpoint() throws {
        let (net, opt, ema) = trained()
        let m = try CheckpointManager(directory: dir, modelName: "filternet", policy: .latestK(1))
        try m.save(model: net, optimizer: opt, ema: ema, state: state(epoch: 1))
        let good = filesOnDisk()
        let goodWeights = try Data(contentsOf: URL(fileURLWithPath: dir + "/filternet-1.safetensors"))
        struct Injected: Error {}
        for failing in [".safetensors", ".state.safetensors", ".json"] {
            m.beforeWrite = { path in if path.hasSuffix("filternet-2" + failing) { throw Injected() } }
            XCTAssertThrowsError(try m.save(model: net, optimizer: opt, ema: ema, state: state(epoch: 2))) { e in
                XCTAssertTrue("\(e)".contains("filternet-2"), "\(e)")
            }
            XCTAssertEqual(filesOnDisk(), good, failing)
            XCTAssertEqual(epochs(m), [1])
            XCTAssertEqual(try CheckpointManager.resolve(dir).meta, dir + "/filternet-1.json")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/filternet-1.safetensors")), goodWeights)
        // Re-saving an epoch that fails half-way un-commits it rather than mixing old and new files.
        m.beforeWrite = { path in if path.hasSuffix(".json") { throw Injected() } }
        XCTAssertThrowsError(try m.save(model: net, optimizer: opt, ema: ema, state: state(epoch: 1)))
        XCTAssertThrowsError(try CheckpointManager.resolve(dir)) { e in
            XCTAssertEqual(e as? CheckpointError, .noCheckpoint(directory: dir))
        }
    }

    func testReadOnlyDirectoryFailsCleanly() throws {
        guard getuid() != 0 else { throw XCTSkip("root ignores directory permissions") }
        let (net, opt, _) = trained()
        let m = try CheckpointManager(directory: dir, modelName: "filternet", policy: .latestK(3))
        try m.save(model: net, optimizer: opt, ema: nil, state: state(epoch: 1))
        XCTAssertEqual(chmod(dir, 0o555), 0)
        XCTAssertThrowsError(try m.save(model: net, optimizer: opt, ema: nil, state: state(epoch: 2)))
        XCTAssertEqual(try CheckpointManager.resolve(dir).meta, dir + "/filternet-1.json")
    }

    func testMismatchedModelNamesTensorsAndShapes() throws {
        let (net, opt, _) = trained()
        let m = try CheckpointManager(directory: dir, modelName: "filternet", policy: .latestK(3))
        let p = try m.save(model: net, optimizer: opt, ema: nil, state: state(epoch: 1))
        // A model whose head has 5 classes instead of 3.
        let other = FilterNet()
        var g = RandomGenerator(seed: 0)
        let bigger = Linear(6, 5, generator: &g)
        other.head.weight.value = bigger.weight.value
        other.head.bias!.value = bigger.bias!.value
        XCTAssertThrowsError(try CheckpointManager.load(p, model: other, optimizer: nil, ema: nil)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("head.weight") && text.contains("[5, 6]") && text.contains("[3, 6]"), text)
        }
        // An optimizer over different parameters.
        let (net2, _, _) = trained()
        let wrongOpt = AdamW(parameters: Array(net2.namedParameters().prefix(3)), weightDecay: 0)
        XCTAssertThrowsError(try CheckpointManager.load(p, model: net2, optimizer: wrongOpt, ema: nil)) { e in
            guard case .unexpected = e as? OptimizerStateError else { return XCTFail("\(e)") }
        }
    }

    func testResolveErrors() throws {
        XCTAssertThrowsError(try CheckpointManager.resolve(dir + "/nothing")) { e in
            XCTAssertEqual(e as? CheckpointError, .notFound(path: dir + "/nothing"))
        }
        let (net, opt, _) = trained()
        let m = try CheckpointManager(directory: dir, modelName: "filternet", policy: .latestK(3))
        let p = try m.save(model: net, optimizer: opt, ema: nil, state: state(epoch: 7))
        XCTAssertEqual(try CheckpointManager.resolve(p.state), p)
        XCTAssertEqual(try CheckpointManager.resolve(p.meta), p)
        try FileManager.default.removeItem(atPath: p.state)
        XCTAssertThrowsError(try CheckpointManager.resolve(p.weights)) { e in
            XCTAssertEqual(e as? CheckpointError, .incomplete(path: p.weights, missing: ["filternet-7.state.safetensors"]))
        }
        XCTAssertThrowsError(try CheckpointManager.resolve(dir))  // the only checkpoint is incomplete
        let other = try CheckpointManager(directory: dir, modelName: "other", policy: .latestK(3))
        try other.save(model: net, optimizer: opt, ema: nil, state: state(epoch: 1))
        try m.save(model: net, optimizer: opt, ema: nil, state: state(epoch: 8))
        XCTAssertThrowsError(try CheckpointManager.resolve(dir)) { e in
            XCTAssertEqual(e as? CheckpointError, .ambiguous(directory: dir, models: ["filternet", "other"]))
        }
        XCTAssertEqual(try CheckpointManager.resolve(dir, modelName: "filternet").meta, dir + "/filternet-8.json")
    }

    func testRecipeWrittenBesideCheckpoints() throws {
        var r = try Recipe.parse(yaml: "model: pit_ti\nlr_base: 0.002\nlr_base_size: 1024\n")
        r.ckptSaveDir = dir
        let m = try CheckpointManager(recipe: r)
        try m.writeRecipe(r, worldSize: 8)
        XCTAssertEqual(m.recipePath, dir + "/pit_ti.yaml")
        XCTAssertEqual(try Recipe.load(yamlPath: m.recipePath), r)
        XCTAssertTrue(try String(contentsOfFile: m.recipePath, encoding: .utf8).contains("# effective lr: 0.002 "))
    }
}
