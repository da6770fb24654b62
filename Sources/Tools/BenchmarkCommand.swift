import ArgumentParser
import Foundation
import Models
import Tensor
import Trainer
import DistributedMPI
import ZooBenchmark

/// `zoo benchmark [--models a,b | --all] [--batch_size N] [--image_size S] [--threads T]
/// [--data_dir D --ckpt_dir C] [--json FILE] [--markdown FILE]`.
///
/// Each model is measured in a fresh child process (`zoo benchmark --models X --internal_json F`)
/// so that its peak resident memory is that of a process that only trained it, and so that no
/// model's cached buffers or heap fragmentation affect the next; `--in_process` measures all in
/// this process (the peak is then reset before each training phase via /proc/self/clear_refs).
struct BenchmarkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "benchmark",
        abstract: "Parameters, multiply-adds, inference and training speed, peak memory and accuracy of the zoo's models.")

    @Option(name: .long, help: "Comma-separated model names.") var models: String?
    @Flag(name: .long, help: "Every registered model.") var all = false
    @Option(name: [.customLong("batch_size"), .customLong("batch-size")]) var batchSize = 32
    @Option(name: [.customLong("image_size"), .customLong("image-size")], help: "Input side (default: the model's own).") var imageSize: Int?
    @Option(name: .long, help: "Engine and BLAS threads (default: VITZOO_NUM_THREADS / OPENBLAS_NUM_THREADS / cores).") var threads: Int?
    @Option(name: [.customLong("data_dir"), .customLong("data-dir")], help: "ImageNet-layout folder for top-1/top-5 on its val split.") var dataDir: String?
    @Option(name: [.customLong("ckpt_dir"), .customLong("ckpt-dir")], help: "Folder with <model>.safetensors, <model>/ run folders or checkpoints.") var ckptDir: String?
    @Option(name: [.customLong("val_split"), .customLong("val-split")]) var split = "val"
    @Option(name: [.customLong("num_parallel_workers"), .customLong("num-parallel-workers")]) var workers = 2
    @Option(name: .long, help: "Write the JSON array (one object per model) to FILE.") var json: String?
    @Option(name: .long, help: "Write the Markdown report to FILE.") var markdown: String?
    @Option(name: .long, help: "Timed seconds per phase and model.") var budget: Double = 6
    @Option(name: [.customLong("min_iterations"), .customLong("min-iterations")]) var minIterations = 3
    @Option(name: [.customLong("max_iterations"), .customLong("max-iterations")]) var maxIterations = 20
    @Option(name: [.customLong("sgemm_size"), .customLong("sgemm-size")], help: "Side of the square sgemm whose speed is the peak.") var sgemmSize = 2048
    @Flag(name: [.customLong("no_train"), .customLong("no-train")], help: "Skip the training step.") var noTrain = false
    @Flag(name: [.customLong("no_infer"), .customLong("no-infer")], help: "Skip inference.") var noInfer = false
    @Flag(name: [.customLong("in_process"), .customLong("in-process")], help: "Measure every model in this process.") var inProcess = false
    @Option(name: .long, help: "mindcv or timm (default: the model name's own).") var numerics: String?
    @Option(name: .long, help: "PyTorch figures from this machine (Benchmarks/pytorch_reference.py --json > FILE): adds the side-by-side table with the goals.")
    var pytorch: String?
    @Option(name: [.customLong("internal_json")], help: .hidden) var internalJSON: String?
    @Option(name: [.customLong("sgemm_peak")], help: .hidden) var sgemmPeak: Double?

    func validate() throws {
        if models == nil && !all { throw ValidationError("give --models a,b,... or --all") }
        if (dataDir == nil) != (ckptDir == nil) { throw ValidationError("--data_dir and --ckpt_dir go together") }
        if batchSize < 1 { throw ValidationError("--batch_size must be positive") }
    }

    var settings: BenchmarkSettings {
        var s = BenchmarkSettings()
        s.batchSize = batchSize; s.imageSize = imageSize; s.budgetSeconds = budget
        s.minIterations = max(1, minIterations); s.maxIterations = max(s.minIterations, maxIterations)
        s.measureTraining = !noTrain; s.measureInference = !noInfer
        s.dataDir = dataDir; s.ckptDir = ckptDir; s.split = split; s.workers = workers
        return s
    }

    func run() throws {
        if let threads { BLASRuntime.setThreads(threads) }
        let names = all ? ModelRegistry.names : (models ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let chosen = try numerics.map { try Numerics(parsing: $0) }
        let reference = try pytorch.map { try ReferenceSpeed.load(path: $0) } ?? [:]
        let entries = try names.map { try ModelRegistry.entry($0, numerics: chosen) }

        if let internalJSON {
            // Child: one model, result to the file, progress to stderr.
            guard let entry = entries.first, entries.count == 1 else { throw ValidationError("--internal_json takes one model") }
            let row = Benchmark.measure(entry: entry, settings: settings, sgemmPeak: sgemmPeak) { emit($0) }
            try JSONEncoder().encode(row).write(to: URL(fileURLWithPath: internalJSON))
            return
        }

        emit("measuring the cblas_sgemm peak (\(sgemmSize)³, \(Parallel.threads) threads)…")
        let machine = MachineInfo.current(sgemmSize: sgemmSize, sgemmPeak: sgemmPeak)
        for line in machine.headerLines { emit(line) }
        if machine.blasCoreTypeEnv != nil {
            emit("note: OPENBLAS_CORETYPE is set; unset it (env -u OPENBLAS_CORETYPE) to let OpenBLAS pick its fastest kernels")
        }
        let start = Date()
        var rows: [ModelBenchmark] = []
        for (i, entry) in entries.enumerated() {
            // One line per model with the time left at the pace so far (each model's own measurement
            // lines follow it, from a child process).
            let elapsed = Date().timeIntervalSince(start)
            let eta = i > 0 ? "  ETA " + formatDuration(elapsed / Double(i) * Double(entries.count - i)) : ""
            emit("[\(i + 1)/\(entries.count)] \(entry.name)  \(formatDuration(elapsed)) elapsed\(eta)")
            let row = inProcess
                ? Benchmark.measure(entry: entry, settings: settings, sgemmPeak: machine.sgemmPeakGFLOPs) { emit($0) }
                : measureInChild(entry, peak: machine.sgemmPeakGFLOPs)
            rows.append(row)
        }
        let report = BenchmarkReport(machine: machine, rows: rows, pytorch: reference)
        print("")
        print(report.text())
        print(String(format: "\n%d models in %.0f s", rows.count, Date().timeIntervalSince(start)))
        if let json { try report.json().write(to: URL(fileURLWithPath: json)) }
        if let markdown { try Data(report.markdown().utf8).write(to: URL(fileURLWithPath: markdown)) }
    }

    /// Runs `zoo benchmark --models NAME --internal_json F` and reads its row.
    func measureInChild(_ entry: ModelEntry, peak: Double) -> ModelBenchmark {
        let out = NSTemporaryDirectory() + "zoo-benchmark-\(getpid())-\(entry.name).json"
        defer { try? FileManager.default.removeItem(atPath: out) }
        var args = ["benchmark", "--models", entry.name, "--batch_size", "\(batchSize)", "--budget", "\(budget)",
                    "--min_iterations", "\(minIterations)", "--max_iterations", "\(maxIterations)",
                    "--threads", "\(Parallel.threads)", "--sgemm_peak", "\(peak)", "--internal_json", out,
                    "--val_split", split, "--num_parallel_workers", "\(workers)"]
        if let imageSize { args += ["--image_size", "\(imageSize)"] }
        if let numerics { args += ["--numerics", numerics] }
        if let dataDir, let ckptDir { args += ["--data_dir", dataDir, "--ckpt_dir", ckptDir] }
        if noTrain { args.append("--no_train") }
        if noInfer { args.append("--no_infer") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        p.arguments = args
        var status: Int32 = -1
        do {
            try p.run()
            p.waitUntilExit()
            status = p.terminationStatus
            if status == 0, let data = FileManager.default.contents(atPath: out) {
                return try JSONDecoder().decode(ModelBenchmark.self, from: data)
            }
        } catch {
            emit("  \(entry.name): \(error)")
        }
        // The child failed (e.g. out of memory): a row with the counts only.
        return .failed(entry: entry, imageSize: imageSize, batchSize: batchSize, error: "measurement process exited with status \(status)")
    }
}
