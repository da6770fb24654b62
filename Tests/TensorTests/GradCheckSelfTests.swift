import XCTest
@testable import Tensor
import TestSupport

/// The gradient checker must reject wrong gradients, or its passes mean nothing.
final class GradCheckSelfTests: XCTestCase {
    /// x² with a backward that is off by a factor, and one that forgets a term.
    func testCheckerRejectsWrongBackward() {
        var d = TestData(seed: 1)
        let x = d.normal([3, 4])
        let wrongScale: ([Tensor]) -> Tensor = { t in
            let out = t[0] * t[0].detached()
            return Tensor.record("bad_square", out.detached(), inputs: [t[0]]) { g in [g * t[0].detached() * 1.05] }
        }
        let (_, f1) = gradientErrors("bad", [x], wrongScale)
        XCTAssertFalse(f1.isEmpty, "a 5% scale error must be caught")
        let transposed: ([Tensor]) -> Tensor = { t in
            let y = Tensor.matmul(t[0], t[1].detached())
            return Tensor.record("bad_matmul", y.detached(), inputs: [t[0]]) { g in
                // dA = G·Bᵀ, here wrongly G·B reversed along the rows
                [Tensor.matmul(g, t[1].detached().gather([3, 2, 1, 0], axis: 0), transposeB: true)]
            }
        }
        let (_, f2) = gradientErrors("bad matmul", [x, d.normal([4, 4])], wrt: [0], transposed)
        XCTAssertFalse(f2.isEmpty, "a permuted gradient must be caught")
        let (r, f3) = gradientErrors("good", [x]) { $0[0] * $0[0] }
        XCTAssertTrue(f3.isEmpty, "\(f3)")
        XCTAssertLessThan(r[0].maxError, 1e-3 * r[0].maxGradient, "a correct gradient sits far below the tolerance")
    }
}
