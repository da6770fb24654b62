import Foundation
import Trainer

/// PyTorch eager figures measured on this machine by `Benchmarks/pytorch_reference.py --json` (one
/// JSON object per line, or a JSON array), read by `zoo benchmark --pytorch FILE`. Only figures from
/// the same machine mean anything (docs/benchmarks.md), so none are built in.
public struct ReferenceSpeed: Sendable, Equatable {
    public var trainImagesPerS: Double?
    public var inferImagesPerS: Double?
    public var latencyBatch1Ms: Double?
    public var peakRSSBytes: Int?
    public var batchSize: Int?
    public var imageSize: Int?

    public init(trainImagesPerS: Double? = nil, inferImagesPerS: Double? = nil, latencyBatch1Ms: Double? = nil,
                peakRSSBytes: Int? = nil, batchSize: Int? = nil, imageSize: Int? = nil) {
        self.trainImagesPerS = trainImagesPerS; self.inferImagesPerS = inferImagesPerS
        self.latencyBatch1Ms = latencyBatch1Ms; self.peakRSSBytes = peakRSSBytes
        self.batchSize = batchSize; self.imageSize = imageSize
    }

    /// The goal of issue 15 (docs/benchmarks.md): at least this many times PyTorch's speed, …
    public static let goalFactor = 1.5
    /// … or at least this MFU while no slower than PyTorch.
    public static let goalMFU = 0.75

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads `pytorch_reference.py --json` output: model name → figures.
    public static func load(path: String) throws -> [String: ReferenceSpeed] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ParseError(description: "\(path): cannot read the PyTorch reference file")
        }
        return try parse(text, source: path)
    }

    public static func parse(_ text: String, source: String) throws -> [String: ReferenceSpeed] {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var objects: [Any] = []
        if trimmed.hasPrefix("[") {
            guard let array = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [Any] else {
                throw ParseError(description: "\(source): not a JSON array of PyTorch reference rows")
            }
            objects = array
        } else {
            for (i, line) in trimmed.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) else {
                    throw ParseError(description: "\(source): line \(i + 1) is not JSON (expected pytorch_reference.py --json output)")
                }
                objects.append(o)
            }
        }
        var out: [String: ReferenceSpeed] = [:]
        for (i, o) in objects.enumerated() {
            guard let row = o as? [String: Any], let model = row["model"] as? String else {
                throw ParseError(description: "\(source): row \(i + 1) has no \"model\" name")
            }
            func number(_ key: String) -> Double? { (row[key] as? NSNumber)?.doubleValue }
            out[model] = ReferenceSpeed(trainImagesPerS: number("train_img_s"), inferImagesPerS: number("infer_img_s"),
                                        latencyBatch1Ms: number("latency_b1_ms"),
                                        peakRSSBytes: number("peak_rss_train_mb").map { Int($0 * 1_048_576) },
                                        batchSize: number("batch").map { Int($0) }, imageSize: number("image").map { Int($0) })
        }
        return out
    }

    /// Whether a speed meets the goal: ≥ goalFactor× PyTorch, or ≥ goalMFU while no slower.
    public static func meetsGoal(ours: Double?, theirs: Double?, mfu: Double?) -> Bool? {
        guard let ours, let theirs, theirs > 0 else { return nil }
        return ours / theirs >= goalFactor || ((mfu ?? 0) >= goalMFU && ours >= theirs)
    }
}

/// The report of a benchmark run: terminal text, Markdown and JSON.
public struct BenchmarkReport: Sendable {
    public var machine: MachineInfo
    public var rows: [ModelBenchmark]
    /// PyTorch figures from this machine (`--pytorch FILE`), by model name.
    public var pytorch: [String: ReferenceSpeed]

    public init(machine: MachineInfo, rows: [ModelBenchmark], pytorch: [String: ReferenceSpeed] = [:]) {
        self.machine = machine; self.rows = rows; self.pytorch = pytorch
    }

    // MARK: JSON

    /// One object per model, snake_case keys, numbers as JSON numbers, null where not measured.
    /// Machine fields (cpu, blas_core, threads, sgemm_peak_gflops, load_average) repeat in each
    /// object so that every row stands alone.
    public static func jsonObject(_ r: ModelBenchmark, machine: MachineInfo) -> [String: Any] {
        func v(_ x: Any?) -> Any {
            switch x {
            case let d as Double: return d.isFinite ? d : NSNull()
            case let some?: return some
            case nil: return NSNull()
            }
        }
        let mb: Double? = r.peakRSSTrainBytes.map { Double($0) / 1_048_576 }
        return [
            "model": r.model, "family": r.family, "image_size": r.imageSize, "batch_size": r.batchSize, "threads": r.threads,
            "params_trainable": r.paramsTrainable, "params_stored": r.paramsStored, "params_without_head": r.paramsWithoutHead,
            "params_counted": r.paramsCounted, "counting_rule": r.countingRule, "published_params_m": v(r.publishedParamsM),
            "macs_per_image": r.macsPerImage, "flops_per_image": 2 * r.macsPerImage, "gmacs": r.gmacs, "gflops": r.gflops,
            "train_macs_per_image": v(r.trainMacsPerImage),
            "infer_images_per_s": v(r.inferImagesPerS), "infer_batch_ms": v(r.inferBatchMs), "infer_batch_best_ms": v(r.inferBatchBestMs),
            "latency_batch1_ms": v(r.latencyBatch1Ms), "infer_iterations": v(r.inferIterations),
            "train_images_per_s": v(r.trainImagesPerS), "train_step_ms": v(r.trainStepMs), "train_step_best_ms": v(r.trainStepBestMs),
            "train_forward_ms": v(r.trainForwardMs), "train_backward_ms": v(r.trainBackwardMs), "train_optimizer_ms": v(r.trainOptimizerMs),
            "train_iterations": v(r.trainIterations),
            "train_step_cpu_per_thread_ms": v(r.trainStepCPUPerThreadMs), "infer_batch_cpu_per_thread_ms": v(r.inferBatchCPUPerThreadMs),
            "peak_rss_train_bytes": v(r.peakRSSTrainBytes), "peak_rss_train_mb": v(mb),
            "train_gflops_per_s": v(r.trainGFLOPsPerS), "infer_gflops_per_s": v(r.inferGFLOPsPerS),
            "mfu": v(r.mfu), "infer_mfu": v(r.inferMFU), "sgemm_peak_gflops": v(r.sgemmPeakGFLOPs ?? machine.sgemmPeakGFLOPs),
            "top1": v(r.top1), "top5": v(r.top5), "validation_images": v(r.validationImages), "weights": v(r.weights),
            "published_top1": v(r.publishedTop1), "published_top5": v(r.publishedTop5),
            "sgemm_median_gflops": v(machine.sgemmMedianGFLOPs),
            "cpu": machine.cpuModel, "blas_core": machine.blasCore, "load_average": machine.loadAverage,
            "error": v(r.error), "seconds": v(r.seconds),
        ]
    }

    /// The JSON array, one object per model.
    public func json() throws -> Data {
        try JSONSerialization.data(withJSONObject: rows.map { Self.jsonObject($0, machine: machine) },
                                   options: [.prettyPrinted, .sortedKeys])
    }

    // MARK: Tables

    struct Table {
        var title: String
        var headers: [String]
        var rightAligned: [Bool]
        var rows: [[String]]

        func markdown() -> String {
            var lines = ["**\(title)**", "", "| " + headers.joined(separator: " | ") + " |",
                         "|" + rightAligned.map { $0 ? "---:" : "---" }.joined(separator: "|") + "|"]
            for r in rows { lines.append("| " + r.joined(separator: " | ") + " |") }
            return lines.joined(separator: "\n")
        }

        func text() -> String {
            var widths = headers.map { $0.count }
            for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
            func line(_ cells: [String]) -> String {
                cells.enumerated().map { i, c in
                    let pad = String(repeating: " ", count: widths[i] - c.count)
                    return rightAligned[i] ? pad + c : c + pad
                }.joined(separator: "  ")
            }
            var out = [title, line(headers), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
            out += rows.map(line)
            return out.joined(separator: "\n")
        }
    }

    static func f(_ x: Double?, _ digits: Int = 1) -> String { x.map { String(format: "%.\(digits)f", $0) } ?? "-" }
    static func m(_ n: Int) -> String { String(format: "%.2f", Double(n) / 1e6) }

    var tables: [Table] {
        let b = rows.first?.batchSize ?? 0
        let params = Table(
            title: "Parameters, multiply-adds and accuracy (published figures beside ours)",
            headers: ["model", "image", "trainable (M)", "stored (M)", "w/o head (M)", "rule", "counted (M)", "published (M)",
                      "GMACs", "GFLOPs", "top-1", "top-5", "published top-1/top-5"],
            rightAligned: [false, true, true, true, true, false, true, true, true, true, true, true, true],
            rows: rows.map { r in
                [r.model, "\(r.imageSize)", Self.m(r.paramsTrainable), Self.m(r.paramsStored), Self.m(r.paramsWithoutHead),
                 r.countingRule, Self.m(r.paramsCounted), Self.f(r.publishedParamsM, 2),
                 Self.f(r.gmacs, 3), Self.f(r.gflops, 3), Self.f(r.top1, 2), Self.f(r.top5, 2),
                 r.publishedTop1.map { String(format: "%.2f / %.2f", $0, r.publishedTop5 ?? .nan) } ?? "-"]
            })
        let speed = Table(
            title: "Speed and memory (batch \(b), \(machine.threads) threads; medians after warm-up; (CPU-time): batch size ÷ (median process CPU time ÷ threads), which counts the workers' polling between kernels: on a shared machine a lower bound of the unshared speed)",
            headers: ["model", "infer img/s", "(CPU-time)", "b1 latency ms", "train img/s", "(CPU-time)", "step ms", "fwd ms", "bwd ms", "opt ms",
                      "peak RSS MB", "train GFLOP/s", "MFU", "infer MFU", "note"],
            rightAligned: [false, true, true, true, true, true, true, true, true, true, true, true, true, true, false],
            rows: rows.map { r in
                [r.model, Self.f(r.inferImagesPerS), Self.f(r.inferBatchCPUPerThreadMs.map { Double(r.batchSize) * 1000 / $0 }),
                 Self.f(r.latencyBatch1Ms), Self.f(r.trainImagesPerS),
                 Self.f(r.trainStepCPUPerThreadMs.map { Double(r.batchSize) * 1000 / $0 }), Self.f(r.trainStepMs, 0),
                 Self.f(r.trainForwardMs, 0), Self.f(r.trainBackwardMs, 0), Self.f(r.trainOptimizerMs, 0),
                 r.peakRSSTrainBytes.map { String(format: "%.0f", Double($0) / 1_048_576) } ?? "-",
                 Self.f(r.trainGFLOPsPerS), r.mfu.map { String(format: "%.0f%%", $0 * 100) } ?? "-",
                 r.inferMFU.map { String(format: "%.0f%%", $0 * 100) } ?? "-", r.error ?? ""]
            })
        var out = [params, speed]
        let refRows = rows.filter { pytorch[$0.model] != nil }
        if !refRows.isEmpty { out.append(comparison(refRows)) }
        return out
    }

    /// Ours against PyTorch's figures from the same machine, with the goals of issue 15 per model.
    func comparison(_ refRows: [ModelBenchmark]) -> Table {
        func ratio(_ a: Double?, _ b: Double?) -> String {
            guard let a, let b, b > 0 else { return "-" }
            return String(format: "%.2f×", a / b)
        }
        func mb(_ bytes: Int?) -> String { bytes.map { String(format: "%.0f", Double($0) / 1_048_576) } ?? "-" }
        return Table(
            title: "Against PyTorch eager on this machine (--pytorch; goals: train and infer ≥ \(ReferenceSpeed.goalFactor)× or ≥ \(Int(ReferenceSpeed.goalMFU * 100))% MFU and no slower, batch-1 latency and training peak memory below PyTorch's)",
            headers: ["model", "train img/s", "PyTorch", "ratio", "infer img/s", "PyTorch", "ratio", "b1 ms", "PyTorch", "peak RSS MB",
                      "PyTorch MB", "goals"],
            rightAligned: [false, true, true, true, true, true, true, true, true, true, true, false],
            rows: refRows.map { r in
                let ref = pytorch[r.model] ?? ReferenceSpeed()
                var missed: [String] = []
                var unknown = false
                func goal(_ name: String, _ met: Bool?) {
                    if let met { if !met { missed.append(name) } } else { unknown = true }
                }
                goal("train", ReferenceSpeed.meetsGoal(ours: r.trainImagesPerS, theirs: ref.trainImagesPerS, mfu: r.mfu))
                goal("infer", ReferenceSpeed.meetsGoal(ours: r.inferImagesPerS, theirs: ref.inferImagesPerS, mfu: r.inferMFU))
                goal("batch-1", r.latencyBatch1Ms.flatMap { a in ref.latencyBatch1Ms.map { a < $0 } })
                goal("memory", r.peakRSSTrainBytes.flatMap { a in ref.peakRSSBytes.map { a <= $0 } })
                if ref.batchSize.map({ $0 != r.batchSize }) ?? false || ref.imageSize.map({ $0 != r.imageSize }) ?? false {
                    missed.append("(PyTorch measured another batch or image size)")
                }
                let verdict = missed.isEmpty ? (unknown ? "met where measured" : "met") : "missed: " + missed.joined(separator: ", ")
                return [r.model, Self.f(r.trainImagesPerS), Self.f(ref.trainImagesPerS), ratio(r.trainImagesPerS, ref.trainImagesPerS),
                        Self.f(r.inferImagesPerS), Self.f(ref.inferImagesPerS), ratio(r.inferImagesPerS, ref.inferImagesPerS),
                        Self.f(r.latencyBatch1Ms), Self.f(ref.latencyBatch1Ms), mb(r.peakRSSTrainBytes), mb(ref.peakRSSBytes), verdict]
            })
    }

    /// The readable terminal report.
    public func text() -> String {
        (machine.headerLines + [""] + tables.map { $0.text() }.joined(separator: "\n\n").split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
            .joined(separator: "\n")
    }

    /// The Markdown report.
    public func markdown() -> String {
        (machine.headerLines.map { "- " + $0 } + [""] + [tables.map { $0.markdown() }.joined(separator: "\n\n")]).joined(separator: "\n") + "\n"
    }
}
