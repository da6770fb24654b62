import Foundation
import XCTest
import Tensor
import TestSupport
@testable import Models

/// The safetensors reader under the mutation fuzzer (docs/fuzzing.md), and the file that crashed
/// issue 12 row 2: a `pos_embed` of shape [1, 64, 0, 0].
final class SafeTensorsFuzzTests: XCTestCase {
    func testMutatedFilesLoadConsistentlyOrThrowNamedErrors() throws {
        let corpus = try MutationFuzzer.corpus("safetensors").map(\.bytes)
        let r = MutationFuzzer(seed: 12).run(corpus: corpus, refusing: SafeTensorsError.self, { bytes, label in
            let file = try SafeTensorsFile(data: Data(bytes), path: "fuzz")
            for (name, t) in file.tensors {
                XCTAssertEqual(t.count, t.shape.reduce(1, *), "\(label): tensor \(name) count vs shape \(t.shape)")
                XCTAssertLessThanOrEqual(t.count * 4, bytes.count, "\(label): tensor \(name) claims more data than the file holds")
            }
        }, refused: { error, label in
            XCTAssertTrue(error.description.contains("fuzz"), "\(label): the error names the file: \(error)")
        })
        XCTAssertGreaterThan(r.inputs, corpus.count)
        XCTAssertGreaterThan(r.accepted, 0)
        XCTAssertGreaterThan(r.refused, 0)
    }

    /// Row 2: the empty position table loads as a tensor, and is refused by name both by a strict
    /// load and by the fine-tuning adaptation (which used to resample from a 0×0 grid: SIGFPE).
    func testEmptyPositionTableIsRefusedByName() throws {
        let path = Fixtures.path("fuzz/safetensors/row02-pos-embed-zero.safetensors")
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.tensors["pos_embed"]?.shape, [1, 64, 0, 0])
        let model = try ModelRegistry.create("pit_ti", options: ModelOptions(numClasses: 2, imageSize: 32))
        var weights = model.stateDict()
        weights["pos_embed"] = file.tensors["pos_embed"]
        XCTAssertThrowsError(try model.load(stateDict: weights, strict: true, source: path)) { e in
            XCTAssertTrue("\(e)".contains("pos_embed") && "\(e)".contains("[1, 64, 0, 0]"), "\(e)")
        }
        XCTAssertThrowsError(try model.loadAdapting(stateDict: weights, firstConv: "patch_embed.conv", classifier: "head", source: path)) { e in
            XCTAssertTrue("\(e)".contains("pos_embed"), "\(e)")
        }
    }
}
