import Foundation
import Tensor
import TestSupport
import XCTest
@testable import DataPipeline
import Trainer

/// `validate`/`predict` contract: an image that already has the evaluation size (crop_pct 1) reaches
/// the model unchanged — resizing to the same size is the identity, for every interpolation.
final class EvalTransformIdentityTests: XCTestCase {
    func testResizingToTheSameSizeIsTheIdentity() throws {
        let image = syntheticImage(width: 37, height: 37, seed: 9)
        for interpolation in ["bicubic", "bilinear"] {
            let t = try EvalTransform(imageSize: 37, cropPct: 1, interpolation: Interpolation(mindcv: interpolation),
                                      mean: [0, 0, 0], std: [1, 1, 1])
            var rng = RandomGenerator(seed: 0)
            let out = t(image, rng: &rng)
            XCTAssertEqual(out.shape, [3, 37, 37])
            let v = out.scalars
            var mismatches = 0
            for y in 0..<37 {
                for x in 0..<37 {
                    for c in 0..<3 where v[c * 37 * 37 + y * 37 + x] != Float(image.pixels[(y * 37 + x) * 3 + c]) { mismatches += 1 }
                }
            }
            XCTAssertEqual(mismatches, 0, "\(interpolation): pre-cropped pixels changed")
        }
    }
}
