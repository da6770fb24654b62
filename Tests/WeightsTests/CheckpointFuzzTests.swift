import Foundation
import XCTest
import Tensor
import TestSupport
import Models

/// The MindSpore `.ckpt` reader under the mutation fuzzer (docs/fuzzing.md): every mutated or
/// truncated file either reads into entries whose float tensors match their dims, or is refused
/// with a `WeightsError` that names the file.
final class CheckpointFuzzTests: XCTestCase {
    func testMutatedCheckpointsReadConsistentlyOrThrowNamedErrors() throws {
        var g = RandomGenerator(seed: 3)
        let small = try MindSporeCheckpointWriter.serialize([
            .init(tag: "a.weight", tensor: Tensor.randn([2, 3], generator: &g)),
            .init(tag: "a.bias", tensor: Tensor.randn([2], generator: &g), dtype: "Float16"),
        ], crcTrailer: true)
        let corpus = [[UInt8](small), [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("ckpt/pit_tiny.ckpt")))).prefix(4096).map { $0 }]
        let r = MutationFuzzer(seed: 16).run(corpus: corpus, refusing: WeightsError.self, { bytes, label in
            let file = try MindSporeCheckpointFile(data: Data(bytes), path: "fuzz", verifyCRC: false)
            for e in file.entries where ["Float32", "Float16", "BFloat16", "Float64"].contains(e.dtype) && !e.isMapTensor {
                let t = try file.floatTensor(e)
                XCTAssertEqual(t.count, e.dims.reduce(1, *), "\(label): entry \(e.tag) count vs dims \(e.dims)")
            }
        }, refused: { error, label in
            XCTAssertTrue(error.description.contains("fuzz"), "\(label): the error names the file: \(error)")
        })
        XCTAssertGreaterThan(r.inputs, corpus.count)
        XCTAssertGreaterThan(r.accepted, 0)
        XCTAssertGreaterThan(r.refused, 0)
    }
}
