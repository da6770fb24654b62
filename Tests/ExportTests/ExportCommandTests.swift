import Export
import Foundation
import Protos
import TestSupport
import XCTest

/// `zoo export --format onnx` end to end through the built executable.
final class ExportCommandTests: XCTestCase {
    func testZooExportWritesAnONNXModelWithTheEvalTransform() throws {
        guard BuiltExecutables.zoo != nil else { throw XCTSkip("the zoo executable is not beside the test bundle; build it first") }
        let folder = try DataTempFolder("export")
        defer { folder.cleanup() }
        let output = folder.path + "/pit.onnx"
        let run = try BuiltExecutables.runZoo(["export", "--model", "pit_ti", "--random_weights", "--num_classes", "4", "--format", "onnx",
                                                "--output", output, "--image_size", "32", "--crop_pct", "1", "--dynamic_batch"], timeout: 120)
        XCTAssertEqual(run.status, 0, run.output)
        let proto = try Onnx_ModelProto(serializedBytes: try Data(contentsOf: URL(fileURLWithPath: output)))
        let props = Dictionary(proto.metadataProps.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(props["model"], "pit_ti")
        XCTAssertEqual(props["input_size"], "3,32,32")
        XCTAssertEqual(props["crop_pct"], "1")
        XCTAssertEqual(props["mean"], "0.485,0.456,0.406")
        XCTAssertEqual(props["std"], "0.229,0.224,0.225")
        XCTAssertEqual(props["numerics"], "mindcv")
        let input = proto.graph.input[0].type.tensorType.shape.dim
        XCTAssertEqual(input.map(\.dimParam), ["batch", "", "", ""])
        XCTAssertEqual(input.dropFirst().map(\.dimValue), [3, 32, 32])
        XCTAssertEqual(proto.graph.output[0].type.tensorType.shape.dim.last?.dimValue, 4)

        // no weights named: refused before anything is written
        let refused = try BuiltExecutables.runZoo(["export", "--model", "pit_ti", "--format", "onnx", "--output", folder.path + "/x.onnx"], timeout: 60)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.output.contains("--random_weights"), refused.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path + "/x.onnx"))
    }
}
