import Foundation
import Models
import Tensor
import XCTest
@testable import ZooBenchmark

/// `zoo benchmark`: multiply-add counts equal the closed formulas, the JSON schema, and a quick run
/// over two tiny configurations.
final class BenchmarkTests: XCTestCase {
    func testLinearMACsEqualFormula() {
        var g = RandomGenerator(seed: 1)
        let (b, n, cin, cout) = (3, 5, 12, 7)
        let x = Tensor.randn([b, n, cin], generator: &g)
        let lin = Linear(cin, cout, generator: &g)
        let (y, macs) = MACCounter.count { withNoGrad { lin(x) } }
        XCTAssertEqual(y.shape, [b, n, cout])
        XCTAssertEqual(macs, b * n * cin * cout)
    }

    func testConvMACsEqualFormula() {
        var g = RandomGenerator(seed: 2)
        // (N, C, H, W, O, k, stride, pad, groups): dense, grouped and depthwise.
        let cases = [(2, 6, 9, 11, 8, 3, 2, 1, 1), (1, 6, 8, 8, 12, 3, 1, 1, 3), (2, 8, 7, 7, 8, 3, 1, 1, 8), (1, 3, 16, 16, 10, 4, 4, 0, 1)]
        for (nb, c, h, w, o, k, s, p, grp) in cases {
            let x = Tensor.randn([nb, c, h, w], generator: &g)
            let conv = Conv2d(c, o, kernel: k, stride: s, padding: p, groups: grp, generator: &g)
            let (y, macs) = MACCounter.count { withNoGrad { conv(x) } }
            let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
            XCTAssertEqual(y.shape, [nb, o, oh, ow])
            XCTAssertEqual(macs, nb * o * oh * ow * (c / grp) * k * k, "conv \(c)→\(o) k\(k) s\(s) g\(grp)")
        }
    }

    func testAttentionBlockMACsEqualFormula() {
        var g = RandomGenerator(seed: 3)
        let (b, n, c, heads) = (2, 10, 32, 4)
        let d = c / heads
        let state = ModelState(seed: 0)
        state.training = false
        let attn = Attention(c, heads: heads, qkvBias: true, state: state, generator: &g)
        let x = Tensor.randn([b, n, c], generator: &g)
        let macs = MACCounter.count { withNoGrad { attn(x) } }.macs
        let qkv = b * n * c * 3 * c, qk = b * heads * n * n * d, av = b * heads * n * n * d, proj = b * n * c * c
        XCTAssertEqual(macs, qkv + qk + av + proj)
    }

    /// Two tiny models (a ViT and a PiT) through the whole measurement, then the report formats.
    static let tinyEntries: [ModelEntry] = [
        ModelEntry(name: "vit_micro", family: "vit",
                   dataConfig: DataConfig(inputSize: [3, 32, 32], firstConv: "patch_embed.proj", classifier: "head"),
                   countingRule: .total, defaultImageSize: 32) { o in
            ViT(config: ViTConfig(imageSize: 32, patchSize: 8, embedDim: 32, depth: 2, heads: 4), options: o)
        },
        ModelEntry(name: "pit_micro", family: "pit",
                   dataConfig: DataConfig(inputSize: [3, 32, 32], firstConv: "patch_embed.conv", classifier: "head"),
                   countingRule: .total, defaultImageSize: 32) { o in
            PiT(config: PiTConfig(imageSize: 32, patchSize: 8, stride: 4, baseDims: [4, 4, 4], depth: [1, 2, 1], heads: [2, 4, 8]), options: o)
        },
    ]

    static func tinyRun() -> BenchmarkReport {
        var s = BenchmarkSettings()
        s.batchSize = 2; s.imageSize = 32; s.budgetSeconds = 0.05; s.minIterations = 2; s.maxIterations = 3
        let machine = MachineInfo.current(sgemmSize: 256)
        let rows = tinyEntries.map { Benchmark.measure(entry: $0, settings: s, sgemmPeak: machine.sgemmPeakGFLOPs) }
        return BenchmarkReport(machine: machine, rows: rows)
    }

    func testTinyRunCompletes() throws {
        let t0 = Date()
        let report = Self.tinyRun()
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
        XCTAssertEqual(report.rows.map { $0.model }, ["vit_micro", "pit_micro"])
        for r in report.rows {
            XCTAssertNil(r.error)
            XCTAssertGreaterThan(r.macsPerImage, 0)
            XCTAssertGreaterThan(r.trainMacsPerImage ?? 0, r.macsPerImage, "backward adds multiply-adds")
            XCTAssertGreaterThan(r.inferImagesPerS ?? 0, 0)
            XCTAssertGreaterThan(r.latencyBatch1Ms ?? 0, 0)
            XCTAssertGreaterThan(r.trainImagesPerS ?? 0, 0)
            let split = (r.trainForwardMs ?? 0) + (r.trainBackwardMs ?? 0) + (r.trainOptimizerMs ?? 0)
            XCTAssertGreaterThan(split, 0)
            XCTAssertGreaterThan(r.peakRSSTrainBytes ?? 0, 0)
            XCTAssertGreaterThan(r.mfu ?? 0, 0)
            XCTAssertEqual(r.paramsTrainable, r.paramsStored)
            XCTAssertLessThan(r.paramsWithoutHead, r.paramsTrainable)
        }
        // The ViT's forward multiply-adds from its shapes: 16 patches + class token, 2 blocks.
        let v = report.rows[0]
        let n = 17, c = 32, tokens = 16
        let block = n * c * 3 * c + 2 * 4 * n * n * (c / 4) + n * c * c + 2 * n * c * 4 * c
        XCTAssertEqual(v.macsPerImage, tokens * c * 3 * 8 * 8 + 2 * block + c * 1000)
        let text = report.text(), md = report.markdown()
        XCTAssertTrue(text.contains("vit_micro") && text.contains("cblas_sgemm peak"))
        XCTAssertTrue(md.contains("| pit_micro |"))
    }

    func testJSONSchema() throws {
        let report = Self.tinyRun()
        let data = try report.json()
        let array = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(array.count, 2)
        let numbers = ["image_size", "batch_size", "threads", "params_trainable", "params_stored", "params_without_head", "params_counted",
                       "macs_per_image", "flops_per_image", "gmacs", "gflops", "train_macs_per_image",
                       "infer_images_per_s", "infer_batch_ms", "latency_batch1_ms", "train_images_per_s", "train_step_ms",
                       "train_forward_ms", "train_backward_ms", "train_optimizer_ms", "peak_rss_train_bytes", "peak_rss_train_mb",
                       "train_gflops_per_s", "infer_gflops_per_s", "mfu", "infer_mfu", "sgemm_peak_gflops"]
        let nullable = ["published_params_m", "top1", "top5", "published_top1", "published_top5", "error", "weights"]
        for obj in array {
            XCTAssertTrue(obj["model"] is String)
            XCTAssertTrue(obj["counting_rule"] is String)
            for k in numbers {
                let value = try XCTUnwrap(obj[k], "missing key \(k)")
                XCTAssertTrue(value is NSNumber && !(value is String), "\(k) is not a number: \(value)")
            }
            for k in nullable { XCTAssertNotNil(obj[k], "missing key \(k)") }
            XCTAssertTrue(obj["top1"] is NSNull)
            XCTAssertEqual((obj["flops_per_image"] as! NSNumber).intValue, 2 * (obj["macs_per_image"] as! NSNumber).intValue)
            XCTAssertEqual((obj["load_average"] as? [Any])?.count, 3)
        }
        // The text form carries the numbers as JSON numbers, not strings.
        let raw = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(raw.contains("\"train_images_per_s\" : "))
        XCTAssertFalse(raw.contains("\"train_images_per_s\" : \""))
    }

    /// `--pytorch FILE`: pytorch_reference.py's JSON lines are read, and each goal is judged from them.
    func testPyTorchReferenceGoals() throws {
        let jsonLines = """
            {"model": "vit_micro", "train_img_s": 10.0, "infer_img_s": 100.0, "latency_b1_ms": 5.0, "peak_rss_train_mb": 100.0, "batch": 2, "image": 32}
            {"model": "pit_micro", "train_img_s": 10.0, "infer_img_s": 100.0, "latency_b1_ms": 5.0, "peak_rss_train_mb": 100.0, "batch": 8, "image": 32}

            """
        let ref = try ReferenceSpeed.parse(jsonLines, source: "torch.jsonl")
        XCTAssertEqual(ref["vit_micro"], ReferenceSpeed(trainImagesPerS: 10, inferImagesPerS: 100, latencyBatch1Ms: 5,
                                                        peakRSSBytes: 100 * 1_048_576, batchSize: 2, imageSize: 32))
        XCTAssertThrowsError(try ReferenceSpeed.parse("{\"model\": \"a\"}\nnot json", source: "t.jsonl")) { error in
            XCTAssertTrue("\(error)".contains("t.jsonl: line 2"), "\(error)")
        }
        XCTAssertThrowsError(try ReferenceSpeed.parse("[{\"train_img_s\": 1}]", source: "t.json")) { error in
            XCTAssertTrue("\(error)".contains("t.json: row 1 has no \"model\""), "\(error)")
        }
        // 1.5x, or 75% MFU and no slower
        XCTAssertEqual(ReferenceSpeed.meetsGoal(ours: 15, theirs: 10, mfu: 0.1), true)
        XCTAssertEqual(ReferenceSpeed.meetsGoal(ours: 14.9, theirs: 10, mfu: 0.74), false)
        XCTAssertEqual(ReferenceSpeed.meetsGoal(ours: 10, theirs: 10, mfu: 0.75), true)
        XCTAssertEqual(ReferenceSpeed.meetsGoal(ours: 9.9, theirs: 10, mfu: 0.9), false)
        XCTAssertNil(ReferenceSpeed.meetsGoal(ours: nil, theirs: 10, mfu: 0.9))

        var report = Self.tinyRun()
        report.rows[0].trainImagesPerS = 16; report.rows[0].inferImagesPerS = 150; report.rows[0].latencyBatch1Ms = 4
        report.rows[0].peakRSSTrainBytes = 90 * 1_048_576
        report.rows[1].trainImagesPerS = 12; report.rows[1].mfu = 0.5; report.rows[1].inferImagesPerS = 200
        report.rows[1].latencyBatch1Ms = 6; report.rows[1].peakRSSTrainBytes = 110 * 1_048_576
        report.pytorch = ref
        let text = report.text()
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let vit: String = try XCTUnwrap(lines.last { $0.hasPrefix("vit_micro") })
        XCTAssertTrue(vit.contains("1.60×") && vit.hasSuffix("  met"), vit)
        let pit: String = try XCTUnwrap(lines.last { $0.hasPrefix("pit_micro") })
        XCTAssertTrue(pit.contains("missed: train, batch-1, memory, (PyTorch measured another batch or image size)"), pit)
    }

    func testWeightsLookup() throws {
        let dir = NSTemporaryDirectory() + "bench-weights-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertNil(Benchmark.findWeights(model: "pit_ti", ckptDir: dir))
        FileManager.default.createFile(atPath: dir + "/pit_ti.safetensors", contents: Data())
        XCTAssertEqual(Benchmark.findWeights(model: "pit_ti", ckptDir: dir), dir + "/pit_ti.safetensors")
    }
}
