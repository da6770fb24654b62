import XCTest
@testable import Trainer
import DataPipeline

/// The vectors of docs/training.md §3.5 (MindCV's own scheduler code, S = 2 steps/epoch, lr = 1).
final class ScheduleTests: XCTestCase {
    func assertValues(_ s: LRSchedule, _ expected: [Double], file: StaticString = #filePath, line: UInt = #line) {
        let got = s.values()
        XCTAssertEqual(got.count, expected.count, "length", file: file, line: line)
        for (k, (g, e)) in zip(got, expected).enumerated() {
            XCTAssertEqual(g, e, accuracy: 1e-6, "step \(k): \(got)", file: file, line: line)
            XCTAssertEqual(s.lr(at: k), g, "lr(at:) and values() agree", file: file, line: line)
        }
    }

    func testCosinePerStep() {
        let s = LRSchedule(kind: .cosineDecay, lr: 1, stepsPerEpoch: 2, epochs: 6, warmupEpochs: 2, warmupFactor: 0, minLR: 0.1, decayEpochs: 3)
        assertValues(s, [0, 0.25, 0.5, 0.75, 1.0, 0.93971143, 0.775, 0.55, 0.325, 0.16028857, 0.1, 0.1])
        XCTAssertNil(s.warning)
    }

    func testCosineStair() {
        let s = LRSchedule(kind: .cosineDecay, lr: 1, stepsPerEpoch: 2, epochs: 6, warmupEpochs: 2, warmupFactor: 0.01, minLR: 0.1,
                           decayEpochs: 3, stair: true)
        assertValues(s, [0.01, 0.01, 0.505, 0.505, 1.0, 1.0, 0.775, 0.775, 0.325, 0.325, 0.1, 0.1])
    }

    func testCosineRestarts() {
        let s = LRSchedule(kind: .cosineDecay, lr: 1, stepsPerEpoch: 2, epochs: 6, warmupEpochs: 1, minLR: 0, decayEpochs: 2,
                           numCycles: 2, cycleDecay: 0.5)
        assertValues(s, [0, 0.5, 1.0, 0.85355339, 0.5, 0.14644661, 0.5, 0.4267767, 0.25, 0.0732233, 0, 0])
    }

    func testCosineTruncated() {
        let s = LRSchedule(kind: .cosineDecay, lr: 1, stepsPerEpoch: 2, epochs: 4, warmupEpochs: 1, minLR: 0.1, decayEpochs: 10)
        assertValues(s, [0, 0.5, 1.0, 0.99445975, 0.97797543, 0.95095294, 0.91405765, 0.86819805])
        XCTAssertNotNil(s.warning)
    }

    func testStepDecay() {
        let s = LRSchedule(kind: .stepDecay, lr: 1, stepsPerEpoch: 2, epochs: 6, warmupEpochs: 1, decayEpochs: 2, decayRate: 0.5)
        assertValues(s, [0, 0.5, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25])
    }

    func testMultiStepDecay() {
        let s = LRSchedule(kind: .multiStepDecay, lr: 1, stepsPerEpoch: 2, epochs: 6, warmupEpochs: 1, decayRate: 0.1, milestones: [4, 2])
        assertValues(s, [0, 0.5, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01])
    }

    func testConstantExponentialPolynomial() {
        assertValues(LRSchedule(kind: .constant, lr: 0.5, stepsPerEpoch: 2, epochs: 3, warmupEpochs: 1),
                     [0, 0.25, 0.5, 0.5, 0.5, 0.5])
        // exponential: lr·γ^t, t fractional per step.
        assertValues(LRSchedule(kind: .exponentialDecay, lr: 1, stepsPerEpoch: 2, epochs: 2, decayRate: 0.25),
                     [1, 0.5, 0.25, 0.125])
        // polynomial: lr·(1 − t/E_main)^γ.
        assertValues(LRSchedule(kind: .polynomialDecay, lr: 1, stepsPerEpoch: 2, epochs: 2, decayRate: 2),
                     [1, 0.5625, 0.25, 0.0625])
    }

    func testFromRecipe() throws {
        let r = try Recipe.parse(yaml: """
            scheduler: warmup_cosine_decay
            lr_base: 0.004
            lr_base_size: 512
            batch_size: 64
            epoch_size: 6
            warmup_epochs: 2
            min_lr: 0.1
            decay_epochs: 3
            """)
        // effective lr = 0.004 · 64·2/512 = 0.001 on two ranks; the curve is the §3.5 one scaled by 0.001
        // except min_lr, which is absolute.
        let s = LRSchedule(recipe: r, stepsPerEpoch: 2, worldSize: 2)
        XCTAssertEqual(s.lr, 0.001, accuracy: 1e-15)
        XCTAssertEqual(s.totalSteps, 12)
        XCTAssertEqual(s.lr(at: 1), 0.00025, accuracy: 1e-12)
        XCTAssertEqual(s.lr(at: 4), 0.001, accuracy: 1e-12)
        XCTAssertEqual(s.lr(at: 11), 0.1, accuracy: 1e-12)
        XCTAssertEqual(s(100), 0.1, accuracy: 1e-12)  // past the end: min_lr
        // MindCV defaults: 3 warm-up epochs from 0, cosine over 100 epochs to 1e-6.
        let d = LRSchedule(recipe: Recipe(), stepsPerEpoch: 10)
        XCTAssertEqual(d.lr(at: 0), 0)
        XCTAssertEqual(d.lr(at: 30), 0.001, accuracy: 1e-15)
        XCTAssertEqual(d.totalSteps, 900)
    }
}
