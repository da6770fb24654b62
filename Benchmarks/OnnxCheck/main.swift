// onnxcheck: exports a registered model to ONNX and writes, beside it, an input batch and the
// engine's logits for it, with the engine's forward speed, for scripts/onnx_check.py to compare
// against ONNX Runtime.
//
//   env -u OPENBLAS_CORETYPE swift run -c release onnxcheck --model pit_ti --batch 8 [--dynamic] [--numerics timm] --out DIR [--runs 5]
//
// The model has its seeded initial weights plus N(0, 0.02²) noise on every parameter (initial heads
// and biases are often all zero, which would make equal logits meaningless).
import Export
import Foundation
import Models
import Tensor

BLASRuntime.preferFastestCore()

func argument(_ name: String) -> String? {
    guard let i = CommandLine.arguments.firstIndex(of: "--\(name)"), i + 1 < CommandLine.arguments.count else { return nil }
    return CommandLine.arguments[i + 1]
}
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
func writeFloats(_ t: Tensor, to path: String) throws {
    try t.withUnsafeBuffer { try Data(buffer: $0).write(to: URL(fileURLWithPath: path), options: .atomic) }
}

guard let name = argument("model"), let out = argument("out") else {
    FileHandle.standardError.write(Data("usage: onnxcheck --model NAME --batch N [--dynamic] --out DIR [--runs R]\n".utf8))
    exit(2)
}
let batch = Int(argument("batch") ?? "1") ?? 1
let runs = Int(argument("runs") ?? "5") ?? 5
let dynamic = CommandLine.arguments.contains("--dynamic")
do {
    let numerics = try argument("numerics").map { try Numerics(parsing: $0) }
    let entry = try ModelRegistry.entry(name, numerics: numerics)
    let model = entry.build(ModelOptions())
    var generator = RandomGenerator(seed: 11)
    withNoGrad {
        for (_, p) in model.namedParameters() { p.value.assign(p.value + Tensor.randn(p.shape, std: 0.02, generator: &generator)) }
    }
    model.eval()
    let side = entry.dataConfig.inputSize[2]
    let x = Tensor.randn([batch, 3, side, side], generator: &generator)
    let logits = withNoGrad { model(x) }
    var times: [Double] = []
    for _ in 0..<runs {
        let t0 = now()
        _ = withNoGrad { model(x) }
        times.append(now() - t0)
    }
    let median = times.sorted()[times.count / 2]
    let t0 = now()
    let proto = try OnnxExporter.export(model, channels: 3, height: side, width: side,
                                        options: OnnxExportOptions(batch: dynamic ? .dynamic : .fixed(batch)))
    let exportSeconds = now() - t0
    let stem = (out as NSString).appendingPathComponent("\(name)_b\(batch)\(dynamic ? "_dyn" : "")\(numerics.map { "_\($0.rawValue)" } ?? "")")
    try OnnxExporter.write(proto, to: stem + ".onnx")
    try writeFloats(x, to: stem + ".input.bin")
    try writeFloats(logits, to: stem + ".logits.bin")
    let info: [String: Any] = ["model": name, "batch": batch, "input_shape": x.shape, "logits_shape": logits.shape,
                               "zoo_images_per_s": Double(batch) / median, "zoo_median_s": median, "export_s": exportSeconds,
                               "nodes": proto.graph.node.count]
    try JSONSerialization.data(withJSONObject: info, options: [.sortedKeys]).write(to: URL(fileURLWithPath: stem + ".json"), options: .atomic)
    print("\(stem).onnx: \(proto.graph.node.count) nodes, zoo \(String(format: "%.1f", Double(batch) / median)) images/s, export \(String(format: "%.1f", exportSeconds)) s")
} catch {
    FileHandle.standardError.write(Data("onnxcheck: \(error)\n".utf8))
    exit(1)
}
