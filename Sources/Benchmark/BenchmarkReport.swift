import Foundation
import Trainer

/// PyTorch eager images/s on this machine (2 threads, 224×224, batch 32) from issue 7: the
/// figures the engine is compared with, and the 1.5× goal.
public struct ReferenceSpeed: Sendable, Equatable {
    public var trainImagesPerS: Double
    public var inferImagesPerS: Double
    public var peakRSSBytes: Int?

    public static let pytorch: [String: ReferenceSpeed] = [
        "pit_ti": ReferenceSpeed(trainImagesPerS: 29, inferImagesPerS: 92, peakRSSBytes: 1_500_000_000),
        "convit_tiny": ReferenceSpeed(trainImagesPerS: 15.5, inferImagesPerS: 42, peakRSSBytes: nil),
        "visformer_tiny": ReferenceSpeed(trainImagesPerS: 28, inferImagesPerS: 81, peakRSSBytes: nil),
        "vit_b_32_224": ReferenceSpeed(trainImagesPerS: 6.8, inferImagesPerS: 21.6, peakRSSBytes: nil),
        "pvt_tiny": ReferenceSpeed(trainImagesPerS: 12.6, inferImagesPerS: 38, peakRSSBytes: nil),
    ]
    public static let goalFactor = 1.5
}

/// The report of a benchmark run: terminal text, Markdown and JSON.
public struct BenchmarkReport: Sendable {
    public var machine: MachineInfo
    public var rows: [ModelBenchmark]

    public init(machine: MachineInfo, rows: [ModelBenchmark]) { self.machine = machine; self.rows = rows }

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
            title: "Speed and memory (batch \(b), \(machine.threads) threads; medians after warm-up; (CPU-time): batch size ÷ (median process CPU time ÷ threads), an optimistic estimate of the speed on an unshared machine)",
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
        let refRows = rows.filter { ReferenceSpeed.pytorch[$0.model] != nil }
        if !refRows.isEmpty {
            out.append(Table(
                title: "Against PyTorch eager, issue 7 figures (2 threads, 224×224, batch 32; 1.5 GB = 1.5e9 bytes; goal \(ReferenceSpeed.goalFactor)×)",
                headers: ["model", "train img/s", "PyTorch", "ratio", "infer img/s", "PyTorch", "ratio", "peak RSS MB", "PyTorch MB"],
                rightAligned: [false, true, true, true, true, true, true, true, true],
                rows: refRows.map { r in
                    let ref = ReferenceSpeed.pytorch[r.model]!
                    return [r.model, Self.f(r.trainImagesPerS), Self.f(ref.trainImagesPerS),
                            r.trainImagesPerS.map { String(format: "%.2f×", $0 / ref.trainImagesPerS) } ?? "-",
                            Self.f(r.inferImagesPerS), Self.f(ref.inferImagesPerS),
                            r.inferImagesPerS.map { String(format: "%.2f×", $0 / ref.inferImagesPerS) } ?? "-",
                            r.peakRSSTrainBytes.map { String(format: "%.0f", Double($0) / 1_048_576) } ?? "-",
                            ref.peakRSSBytes.map { String(format: "%.0f", Double($0) / 1_048_576) } ?? "-"]
                }))
        }
        return out
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
