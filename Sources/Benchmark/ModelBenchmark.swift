import Foundation
import Models
import Tensor
import Trainer

/// What `zoo benchmark` measures and how long it spends on each phase.
public struct BenchmarkSettings: Sendable {
    public var batchSize: Int = 32
    /// Input side; nil: the model's default (224 or 384).
    public var imageSize: Int? = nil
    /// Timed seconds per phase (inference at the batch size, batch-1 latency, training step): a
    /// phase repeats until the budget is spent, with at least `minIterations` and at most
    /// `maxIterations` timed iterations.
    public var budgetSeconds: Double = 6
    public var minIterations: Int = 3
    public var maxIterations: Int = 20
    /// Warm-up iterations before timing (a second one is added when the first took less than
    /// a quarter of the budget: the first step also fills the buffer pool).
    public var warmupIterations: Int = 1
    public var measureInference = true
    public var measureTraining = true
    /// Accuracy on `dataDir/split` with the weights found in `ckptDir` (see `findWeights`).
    public var dataDir: String? = nil
    public var ckptDir: String? = nil
    public var split = "val"
    public var validationBatchSize = 64
    public var workers = 2
    /// Drop cached buffers and reset the process peak (VmHWM) before the training phase.
    public var resetPeakBeforeTraining = true
    public var seed: UInt64 = 0
    public init() {}
}

/// One model's row: parameters, multiply-adds, speed, memory, accuracy, each beside the published
/// figure where there is one. Times in milliseconds, memory in bytes, counts as plain integers.
public struct ModelBenchmark: Codable, Sendable, Equatable {
    public var model: String
    public var family: String
    public var imageSize: Int
    public var batchSize: Int
    public var threads: Int

    // Parameters (docs/models.md §1).
    public var paramsTrainable: Int
    /// Trainable plus BatchNorm running statistics.
    public var paramsStored: Int
    public var paramsWithoutHead: Int
    public var countingRule: String
    /// The count under the family's rule, comparable with `publishedParamsM`.
    public var paramsCounted: Int
    public var publishedParamsM: Double?

    /// Multiply-accumulates of one image's forward pass (every GEMM and direct conv, counted from
    /// the shapes of a real forward at `imageSize`); FLOPs = 2·MACs.
    public var macsPerImage: Int
    /// Multiply-accumulates per image of one training step's forward + backward as executed.
    public var trainMacsPerImage: Int?

    // Inference (eval mode, no tape).
    public var inferImagesPerS: Double?
    public var inferBatchMs: Double?
    public var inferBatchBestMs: Double?
    public var latencyBatch1Ms: Double?
    public var inferIterations: Int?
    /// Median process CPU time of a batch divided by the thread count. On a shared machine the
    /// wall-clock median also counts time spent descheduled, this does not; but the engine's workers
    /// poll between kernels (Sources/Tensor/Core/WorkerPool.swift) and that counts as CPU time, so it
    /// is close to the wall-clock time on an idle machine: an upper bound of the unloaded time.
    public var inferBatchCPUPerThreadMs: Double?

    // Training step: forward (train mode, tape) + cross-entropy, backward, AdamW step + zero grad.
    public var trainImagesPerS: Double?
    public var trainStepMs: Double?
    public var trainStepBestMs: Double?
    public var trainForwardMs: Double?
    public var trainBackwardMs: Double?
    public var trainOptimizerMs: Double?
    public var trainIterations: Int?
    /// Median process CPU time of a training step divided by the thread count (see `inferBatchCPUPerThreadMs`).
    public var trainStepCPUPerThreadMs: Double?
    /// Peak resident set (VmHWM) of the process over the training phase, reset just before it.
    public var peakRSSTrainBytes: Int?
    /// Whether the peak was reset before the training phase (else it is the process's peak so far).
    public var peakRSSReset: Bool?

    /// Executed FLOP/s of the training step (2·train MACs / median step time), in GFLOP/s.
    public var trainGFLOPsPerS: Double?
    public var inferGFLOPsPerS: Double?
    /// Model FLOP utilisation: `trainGFLOPsPerS` / the measured sgemm peak.
    public var mfu: Double?
    public var inferMFU: Double?
    public var sgemmPeakGFLOPs: Double?

    // Accuracy.
    public var top1: Double?
    public var top5: Double?
    public var validationImages: Int?
    public var weights: String?
    public var publishedTop1: Double?
    public var publishedTop5: Double?

    public var error: String?
    public var seconds: Double?

    public var gmacs: Double { Double(macsPerImage) / 1e9 }
    public var gflops: Double { 2 * Double(macsPerImage) / 1e9 }

    /// A row with the parameter counts only, for a model whose measurement failed.
    public static func failed(entry: ModelEntry, imageSize: Int?, batchSize: Int, error: String) -> ModelBenchmark {
        let s = ModelRegistry.summary(of: entry)
        return ModelBenchmark(model: entry.name, family: entry.family, imageSize: imageSize ?? entry.defaultImageSize, batchSize: batchSize,
                              threads: Parallel.threads, paramsTrainable: s.trainableParams, paramsStored: s.storedParams,
                              paramsWithoutHead: s.paramsWithoutHead, countingRule: s.countingRule, paramsCounted: s.countedParams,
                              publishedParamsM: s.publishedParamsM, macsPerImage: 0, publishedTop1: s.publishedTop1,
                              publishedTop5: s.publishedTop5, error: error)
    }

    /// Recomputes the FLOP rates and utilisation against `peak` GFLOP/s.
    public mutating func applyPeak(_ peak: Double) {
        sgemmPeakGFLOPs = peak
        if let ms = trainStepMs, let tm = trainMacsPerImage, ms > 0 {
            trainGFLOPsPerS = 2 * Double(tm) * Double(batchSize) / (ms / 1000) / 1e9
        }
        if let ms = inferBatchMs, ms > 0 {
            inferGFLOPsPerS = 2 * Double(macsPerImage) * Double(batchSize) / (ms / 1000) / 1e9
        }
        if peak > 0 {
            mfu = trainGFLOPsPerS.map { $0 / peak }
            inferMFU = inferGFLOPsPerS.map { $0 / peak }
        }
    }
}

public enum Benchmark {
    /// Weights for `model` under `ckptDir`, first found of: a safetensors file named after the model
    /// (`<dir>/<model>.safetensors`), a run directory `<dir>/<model>/` (its latest checkpoint), or
    /// the latest checkpoint of that model in `<dir>` itself (a training run's directory).
    public static func findWeights(model: String, ckptDir: String) -> String? {
        let fm = FileManager.default
        let file = (ckptDir as NSString).appendingPathComponent(model + ".safetensors")
        if fm.fileExists(atPath: file) { return file }
        let dir = (ckptDir as NSString).appendingPathComponent(model)
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue,
           (try? CheckpointManager.resolve(dir, modelName: model)) != nil { return dir }
        if let p = try? CheckpointManager.resolve(ckptDir, modelName: model) { return p.weights }
        return nil
    }

    /// Runs `body` `warmup` times untimed, then timed until the budget is spent; returns the times.
    static func timed(_ s: BenchmarkSettings, _ body: () -> Void) -> [Double] {
        var t0 = BenchmarkClock.now()
        body()
        let first = BenchmarkClock.now() - t0
        let warm = s.warmupIterations + (first < s.budgetSeconds / 4 ? 1 : 0)
        for _ in 1..<max(warm, 1) { body() }
        var times: [Double] = []
        let start = BenchmarkClock.now()
        while times.count < s.minIterations || (BenchmarkClock.now() - start < s.budgetSeconds && times.count < s.maxIterations) {
            t0 = BenchmarkClock.now()
            body()
            times.append(BenchmarkClock.now() - t0)
        }
        return times
    }

    /// Measures one registered model in this process. `sgemmPeak` (GFLOP/s) gives the MFU columns.
    public static func measure(entry: ModelEntry, settings s: BenchmarkSettings, sgemmPeak: Double?,
                               log: (@Sendable (String) -> Void)? = nil) -> ModelBenchmark {
        let started = BenchmarkClock.now()
        let summary = ModelRegistry.summary(of: entry)
        let size = s.imageSize ?? entry.defaultImageSize
        let b = s.batchSize
        var g = RandomGenerator(seed: s.seed &+ 1)
        let model = entry.build(ModelOptions(numClasses: 1000, imageSize: size, seed: s.seed))
        let numClasses = model.numClasses

        // Multiply-accumulates of one image's forward pass.
        model.eval()
        let x1 = Tensor.randn([1, 3, size, size], generator: &g)
        let macs = MACCounter.count { withNoGrad { model(x1) } }.macs
        var r = ModelBenchmark(model: entry.name, family: entry.family, imageSize: size, batchSize: b, threads: Parallel.threads,
                               paramsTrainable: summary.trainableParams, paramsStored: summary.storedParams,
                               paramsWithoutHead: summary.paramsWithoutHead, countingRule: summary.countingRule,
                               paramsCounted: summary.countedParams, publishedParamsM: summary.publishedParamsM,
                               macsPerImage: macs, publishedTop1: summary.publishedTop1, publishedTop5: summary.publishedTop5)

        if s.measureInference {
            let x = Tensor.randn([b, 3, size, size], generator: &g)
            var cpu: [Double] = []
            let times = withNoGrad { timed(s) { let c0 = BenchmarkClock.cpuNow(); _ = model(x); cpu.append(BenchmarkClock.cpuNow() - c0) } }
            r.inferBatchCPUPerThreadMs = BenchmarkClock.median(Array(cpu.suffix(times.count))) / Double(Parallel.threads) * 1000
            r.inferBatchMs = BenchmarkClock.median(times) * 1000
            r.inferBatchBestMs = (times.min() ?? 0) * 1000
            r.inferImagesPerS = Double(b) / BenchmarkClock.median(times)
            r.inferIterations = times.count
            var lat = s
            lat.budgetSeconds = min(s.budgetSeconds, 3)
            lat.minIterations = max(s.minIterations, 5)
            let t1 = withNoGrad { timed(lat) { _ = model(x1) } }
            r.latencyBatch1Ms = BenchmarkClock.median(t1) * 1000
            log?(String(format: "  %@ inference: %.1f images/s at batch %d, batch-1 latency %.1f ms", entry.name, r.inferImagesPerS!, b, r.latencyBatch1Ms!))
        }

        if s.measureTraining {
            model.train()
            let x = Tensor.randn([b, 3, size, size], generator: &g)
            let labels = (0..<b).map { i in (i * 7919 + 13) % numClasses }
            if s.resetPeakBeforeTraining { r.peakRSSReset = ResidentMemory.releaseAndResetPeak() } else { r.peakRSSReset = false }
            let optimizer = AdamW(parameters: model.namedParameters(), weightDecay: 0.05)
            var fwd: [Double] = [], bwd: [Double] = [], opt: [Double] = [], cpu: [Double] = []
            var record = false
            let step = {
                let c0 = BenchmarkClock.cpuNow()
                let t0 = BenchmarkClock.now()
                let loss = Tensor.crossEntropy(logits: model(x), labels: labels)
                _ = loss.item
                let t1 = BenchmarkClock.now()
                loss.backward()
                let t2 = BenchmarkClock.now()
                optimizer.step(lr: 1e-4)
                optimizer.zeroGrad()
                let t3 = BenchmarkClock.now()
                if record { fwd.append(t1 - t0); bwd.append(t2 - t1); opt.append(t3 - t2); cpu.append(BenchmarkClock.cpuNow() - c0) }
            }
            // The first step also counts the executed multiply-accumulates of forward + backward.
            let t0 = BenchmarkClock.now()
            let trainMacs = MACCounter.count { () -> Int in
                let loss = Tensor.crossEntropy(logits: model(x), labels: labels)
                loss.backward()
                return 0
            }.macs
            optimizer.step(lr: 1e-4)
            optimizer.zeroGrad()
            let first = BenchmarkClock.now() - t0
            r.trainMacsPerImage = trainMacs / b
            // Warm-up: one more step when the first was short (it also filled the buffer pool).
            let warm = max(s.warmupIterations - 1, 0) + (first < s.budgetSeconds / 4 ? 1 : 0)
            for _ in 0..<warm { step() }
            record = true
            var totals: [Double] = [], calls = 0
            let start = BenchmarkClock.now()
            while calls < s.minIterations || (BenchmarkClock.now() - start < s.budgetSeconds && calls < s.maxIterations) {
                step()
                calls += 1
                totals.append(fwd.last! + bwd.last! + opt.last!)
            }
            let stepS = BenchmarkClock.median(totals)
            r.trainStepMs = stepS * 1000
            r.trainStepBestMs = (totals.min() ?? 0) * 1000
            r.trainForwardMs = BenchmarkClock.median(fwd) * 1000
            r.trainBackwardMs = BenchmarkClock.median(bwd) * 1000
            r.trainOptimizerMs = BenchmarkClock.median(opt) * 1000
            r.trainImagesPerS = Double(b) / stepS
            r.trainStepCPUPerThreadMs = BenchmarkClock.median(cpu) / Double(Parallel.threads) * 1000
            r.trainIterations = calls
            r.peakRSSTrainBytes = ResidentMemory.peak
            let pool = BufferPool.shared.peakStatistics
            log?(String(format: "  %@ engine buffers at their peak: %.0f MB in use + %.0f MB cached (most in use at once: %.0f MB)", entry.name,
                        Double(pool.liveBytes) / 1_048_576, Double(pool.cachedBytes) / 1_048_576,
                        Double(BufferPool.shared.highestLiveBytes) / 1_048_576))
            log?(String(format: "  %@ training step: %.1f images/s (forward %.0f ms, backward %.0f ms, optimizer %.0f ms), peak RSS %.0f MB",
                        entry.name, r.trainImagesPerS!, r.trainForwardMs!, r.trainBackwardMs!, r.trainOptimizerMs!,
                        Double(r.peakRSSTrainBytes ?? 0) / 1_048_576))
        }

        if let dataDir = s.dataDir, let ckptDir = s.ckptDir {
            if let weights = findWeights(model: entry.name, ckptDir: ckptDir) {
                do {
                    let session = try InferenceSession(modelName: entry.name, checkpoint: weights)
                    let counts = try session.validate(dataDir: dataDir, split: s.split, batchSize: s.validationBatchSize, workers: s.workers)
                    r.top1 = counts.top1; r.top5 = counts.top5; r.validationImages = counts.images; r.weights = weights
                    log?(String(format: "  %@ on %@/%@: top-1 %.2f%%, top-5 %.2f%%", entry.name, dataDir, s.split, counts.top1, counts.top5))
                } catch {
                    r.error = "validation: \(error)"
                    log?("  \(entry.name): validation failed: \(error)")
                }
            } else {
                log?("  \(entry.name): no weights in \(ckptDir); accuracy skipped")
            }
        }
        if let sgemmPeak { r.applyPeak(sgemmPeak) }
        r.seconds = BenchmarkClock.now() - started
        return r
    }
}
