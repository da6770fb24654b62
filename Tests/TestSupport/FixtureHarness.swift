import Foundation
import Models
import Tensor
import XCTest

/// The reference fixtures (Tests/Fixtures, format in Tests/Fixtures/README.md).
public enum Fixtures {
    public static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    public static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The manifest entry of one case.
    public static func manifest(_ caseName: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory.appendingPathComponent("manifest.json"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
        return try XCTUnwrap(cases.first { $0["case"] as? String == caseName }, "no case \(caseName) in manifest.json")
    }
}

public func maxAbs(_ t: Tensor) -> Float { t.scalars.reduce(0) { max($0, abs($1)) } }

/// Checks a model against one fixture case with the tolerances of the fixtures' README: eval logits,
/// train loss (cross-entropy, label smoothing 0.1), every parameter gradient, and BatchNorm running
/// statistics after the train forward. `model` must have the case's configuration and 7 classes.
public func checkFixture(_ caseName: String, model: any Classifier, file: StaticString = #filePath, line: UInt = #line) throws {
    let st = try SafeTensorsFile(path: Fixtures.path("\(caseName).safetensors"))
    let manifest = try Fixtures.manifest(caseName)
    var weights: [String: Tensor] = [:]
    for (k, v) in st.tensors {
        if k.hasPrefix("param.") { weights[String(k.dropFirst(6))] = v }
        if k.hasPrefix("buffer.") && !k.hasPrefix("buffer_after.") { weights[String(k.dropFirst(7))] = v.copy() }
    }
    try model.load(stateDict: weights, source: "\(caseName).safetensors")
    let input = try XCTUnwrap(st.tensors["input"])
    let labels = try XCTUnwrap(st.integers["labels"]).values

    // Eval-mode logits.
    model.eval()
    let logits = withNoGrad { model(input) }
    let refLogits = try XCTUnwrap(st.tensors["logits_eval"])
    XCTAssertEqual(logits.shape, refLogits.shape, "\(caseName): logits shape", file: file, line: line)
    let logitErr = maxAbsDiff(logits, refLogits), logitTol = 1e-4 * maxAbs(refLogits)
    XCTAssertLessThanOrEqual(logitErr, logitTol, "\(caseName): eval logits differ by \(logitErr) (tolerance \(logitTol))", file: file, line: line)

    // One train-mode forward and backward.
    model.train()
    model.zeroGrad()
    let loss = Tensor.crossEntropy(logits: model(input), labels: labels, labelSmoothing: 0.1)
    let refLoss = try XCTUnwrap(st.tensors["loss_train"]).scalars[0]
    XCTAssertLessThanOrEqual(abs(loss.item - refLoss), 1e-5 * abs(refLoss),
                             "\(caseName): train loss \(loss.item) vs \(refLoss)", file: file, line: line)
    loss.backward()
    let g = Float(try XCTUnwrap(manifest["grad_global_max_abs"] as? Double))
    let zeroGrads = Set((manifest["structurally_zero_grads"] as? [String]) ?? [])
    var checked = 0
    for (name, p) in model.namedParameters() {
        guard let ref = st.tensors["grad.\(name)"] else {
            XCTFail("\(caseName): fixture has no gradient for parameter \(name)", file: file, line: line); continue
        }
        guard let grad = p.grad else {
            XCTFail("\(caseName): parameter \(name) received no gradient", file: file, line: line); continue
        }
        XCTAssertEqual(grad.shape, ref.shape, "\(caseName): gradient shape of \(name)", file: file, line: line)
        if zeroGrads.contains("grad.\(name)") || zeroGrads.contains(name) {
            XCTAssertLessThanOrEqual(maxAbs(grad), 1e-5 * g, "\(caseName): structurally zero gradient \(name) is \(maxAbs(grad))", file: file, line: line)
        } else {
            let err = maxAbsDiff(grad, ref), tol = 1e-3 * maxAbs(ref) + 1e-6 * g
            XCTAssertLessThanOrEqual(err, tol, "\(caseName): gradient of \(name) differs by \(err) (tolerance \(tol))", file: file, line: line)
        }
        checked += 1
    }
    XCTAssertEqual(checked, st.tensors.keys.filter { $0.hasPrefix("grad.") }.count, "\(caseName): every fixture gradient is checked", file: file, line: line)

    // BatchNorm running statistics after the train forward.
    for (name, b) in model.namedBuffers() {
        guard let ref = st.tensors["buffer_after.\(name)"] else {
            XCTFail("\(caseName): fixture has no buffer_after.\(name)", file: file, line: line); continue
        }
        let err = maxAbsDiff(b.value, ref), tol = 1e-5 * maxAbs(ref)
        XCTAssertLessThanOrEqual(err, tol, "\(caseName): running statistic \(name) differs by \(err)", file: file, line: line)
    }
}
