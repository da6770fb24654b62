import XCTest
@testable import Tensor
import TestSupport

/// Every differentiable op through the one generic finite-difference check (GradCheck.swift).
final class GradientTests: XCTestCase {
    var data = TestData(seed: 2024)

    // MARK: element-wise binary ops with broadcasting

    /// (a shape, b shape) pairs: same, scalar, row, [B,1,C] vs [B,N,C], [C,1,1] vs [N,C,H,W], both sides broadcast.
    let broadcastCases: [([Int], [Int])] = [
        ([3, 4], [3, 4]),
        ([3, 4], []),
        ([], [3, 4]),
        ([3, 4], [4]),
        ([2, 1, 3], [2, 4, 3]),
        ([2, 3, 2, 2], [3, 1, 1]),
        ([3, 1], [1, 4]),
        ([1], [2, 3]),
    ]

    func testAddSubBroadcast() {
        for (sa, sb) in broadcastCases {
            let a = data.normal(sa), b = data.normal(sb)
            gradCheck("add \(sa) \(sb)", [a, b]) { $0[0] + $0[1] }
            gradCheck("sub \(sa) \(sb)", [a, b]) { $0[0] - $0[1] }
        }
    }

    func testMulDivBroadcast() {
        for (sa, sb) in broadcastCases {
            let a = data.normal(sa), b = data.awayFromZero(sb).affine(scale: 1, shift: 0)
            let bPos = data.uniform(sb, 0.5, 2)
            gradCheck("mul \(sa) \(sb)", [a, b]) { $0[0] * $0[1] }
            gradCheck("div \(sa) \(sb)", [a, bPos]) { $0[0] / $0[1] }
        }
        let x = data.normal([3, 4])
        gradCheck("mul self", [x]) { $0[0] * $0[0] }
        gradCheck("squared", [x]) { $0[0].squared() }
        gradCheck("div negative denominator", [x, data.uniform([4], -2, -0.5)]) { $0[0] / $0[1] }
    }

    func testScalarOpsAndAffine() {
        let x = data.normal([2, 5])
        gradCheck("x + s", [x]) { $0[0] + 2.5 }
        gradCheck("s + x", [x]) { 2.5 + $0[0] }
        gradCheck("x - s", [x]) { $0[0] - 1.5 }
        gradCheck("s - x", [x]) { 1.5 - $0[0] }
        gradCheck("x * s", [x]) { $0[0] * 3 }
        gradCheck("s * x", [x]) { 3 * $0[0] }
        gradCheck("x / s", [x]) { $0[0] / 4 }
        gradCheck("s / x", [data.uniform([2, 5], 0.5, 2)]) { 3 / $0[0] }
        gradCheck("negate", [x]) { -$0[0] }
        gradCheck("affine", [x]) { $0[0].affine(scale: -0.7, shift: 0.3) }
        gradCheck("scaled", [x]) { $0[0].scaled(1.7) }
    }

    // MARK: unary maps

    func testUnaryMaps() {
        let x = data.normal([3, 7])
        let pos = data.uniform([3, 7], 0.5, 2)
        gradCheck("exp", [x]) { $0[0].exp() }
        gradCheck("log", [pos]) { $0[0].log() }
        gradCheck("sqrt", [pos]) { $0[0].sqrt() }
        gradCheck("rsqrt", [pos]) { $0[0].rsqrt() }
        gradCheck("tanh", [x]) { $0[0].tanh() }
        gradCheck("tanh small", [data.normal([10], std: 0.2)]) { $0[0].tanh() }
        gradCheck("sigmoid", [x]) { $0[0].sigmoid() }
        gradCheck("relu", [data.awayFromZero([3, 7])]) { $0[0].relu() }
        let wide = data.normal([4, 9], std: 2)
        gradCheck("gelu tanh", [wide]) { $0[0].gelu(approximate: .tanh) }
        gradCheck("gelu erf", [wide]) { $0[0].gelu(approximate: .none) }
    }

    // MARK: reductions

    func testSumMean() {
        let x = data.normal([2, 3, 4])
        gradCheck("sum all", [x]) { $0[0].sum() }
        gradCheck("sum axis 1", [x]) { $0[0].sum(axis: 1) }
        gradCheck("sum axes 0,2", [x]) { $0[0].sum(axes: [0, 2]) }
        gradCheck("sum axes -1 keepDims", [x]) { $0[0].sum(axes: [-1], keepDims: true) }
        gradCheck("sum axes 1,2 keepDims", [x]) { $0[0].sum(axes: [1, 2], keepDims: true) }
        gradCheck("mean all", [x]) { $0[0].mean() }
        gradCheck("mean axis 0", [x]) { $0[0].mean(axis: 0) }
        gradCheck("mean axes 0,1 keepDims", [x]) { $0[0].mean(axes: [0, 1], keepDims: true) }
        gradCheck("sum of rank 0", [Tensor(1.5)]) { $0[0].sum() * 2 }
    }

    func testMax() {
        let x = data.distinct([3, 4, 5])
        gradCheck("max axis 0", [x]) { $0[0].max(axis: 0) }
        gradCheck("max axis 1", [x]) { $0[0].max(axis: 1) }
        gradCheck("max axis -1 keepDims", [x]) { $0[0].max(axis: -1, keepDims: true) }
        gradCheck("max all", [x]) { $0[0].max() }
    }

    // MARK: movement

    func testMovement() {
        let x = data.normal([2, 3, 4])
        gradCheck("reshape", [x]) { $0[0].reshaped([6, -1]) * $0[0].reshaped([6, 4]) }
        gradCheck("flatten", [x]) { $0[0].flattened(from: 1) }
        gradCheck("flatten all", [x]) { $0[0].flattened() }
        gradCheck("permute", [x]) { $0[0].permuted([2, 0, 1]) }
        gradCheck("permute 4d", [data.normal([2, 3, 2, 2])]) { $0[0].permuted([0, 2, 1, 3]) }
        gradCheck("transpose", [x]) { $0[0].transposed() }
        gradCheck("transpose 0,2", [x]) { $0[0].transposed(0, 2) }
        gradCheck("slice axis 1", [x]) { $0[0].slice(axis: 1, 1..<3) }
        gradCheck("slice axis -1", [x]) { $0[0].slice(axis: -1, 0..<1) }
        gradCheck("select axis 0", [x]) { $0[0].select(axis: 0, index: 1) }
        gradCheck("select axis 2", [x]) { $0[0].select(axis: 2, index: 3) }
        let y = data.normal([2, 2, 4]), z = data.normal([2, 1, 4])
        gradCheck("concat axis 1", [x, y, z]) { Tensor.concat($0, axis: 1) }
        gradCheck("concat axis 0", [x, x]) { Tensor.concat([$0[0], $0[1]], axis: 0) }
        gradCheck("concat same tensor twice", [x]) { Tensor.concat([$0[0], $0[0]], axis: -1) }
        gradCheck("gather repeated axis 0", [x]) { $0[0].gather([1, 0, 1, 1], axis: 0) }
        gradCheck("gather repeated axis 1", [x]) { $0[0].gather([2, 2, 0], axis: 1) }
        gradCheck("expanded", [data.normal([3, 1])]) { $0[0].expanded(to: [2, 3, 4]) }
        gradCheck("expanded rank 0", [Tensor(0.7)]) { $0[0].expanded(to: [2, 2]) }
        gradCheck("expanded middle", [data.normal([2, 1, 3])]) { $0[0].expanded(to: [2, 4, 3]) }
    }

    // MARK: matmul and linear

    func testMatmulAllTransposeCombinations() {
        for ta in [false, true] {
            for tb in [false, true] {
                // logical shapes: op(a) [M, K] = [3, 4], op(b) [K, N] = [4, 5]
                func shapeA(_ batch: [Int]) -> [Int] { batch + (ta ? [4, 3] : [3, 4]) }
                func shapeB(_ batch: [Int]) -> [Int] { batch + (tb ? [5, 4] : [4, 5]) }
                let tag = "tA=\(ta) tB=\(tb)"
                gradCheck("matmul \(tag)", [data.normal(shapeA([])), data.normal(shapeB([]))]) {
                    Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
                }
                gradCheck("batched matmul \(tag)", [data.normal(shapeA([2, 2])), data.normal(shapeB([2, 2]))]) {
                    Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
                }
                gradCheck("batched x matrix \(tag)", [data.normal(shapeA([3])), data.normal(shapeB([]))]) {
                    Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
                }
                gradCheck("matrix x batched \(tag)", [data.normal(shapeA([])), data.normal(shapeB([2]))]) {
                    Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
                }
            }
        }
        let a = data.normal([2, 3, 4])
        gradCheck("matmul a·aᵀ (shared operand)", [a]) { Tensor.matmul($0[0], $0[0], transposeB: true) }
        gradCheck("matmul only b on tape", [a, data.normal([4, 2])], wrt: [1]) { Tensor.matmul($0[0], $0[1]) }
    }

    func testLinear() {
        let x = data.normal([2, 3, 4]), w = data.normal([5, 4]), b = data.normal([5])
        gradCheck("linear with bias", [x, w, b]) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
        gradCheck("linear without bias", [x, w]) { Tensor.linear($0[0], weight: $0[1], bias: nil) }
        gradCheck("linear vector input", [data.normal([4]), w, b]) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
        gradCheck("linear weight only", [x, w, b], wrt: [1, 2]) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
    }

    // MARK: softmax family

    func testSoftmaxAndLogSoftmax() {
        let x = data.normal([2, 3, 5], std: 2)
        for axis in [-1, 0, 1] {
            gradCheck("softmax axis \(axis)", [x]) { $0[0].softmax(axis: axis) }
            gradCheck("logSoftmax axis \(axis)", [x]) { $0[0].logSoftmax(axis: axis) }
        }
        gradCheck("softmax long row", [data.normal([1, 70])]) { $0[0].softmax() }
    }

    func testCrossEntropy() {
        let logits = data.normal([4, 5], std: 2)
        let labels = [0, 3, 4, 3]
        gradCheck("cross-entropy labels", [logits]) { Tensor.crossEntropy(logits: $0[0], labels: labels) }
        gradCheck("cross-entropy labels smoothing 0.1", [logits]) {
            Tensor.crossEntropy(logits: $0[0], labels: labels, labelSmoothing: 0.1)
        }
        let soft = data.uniform([4, 5], 0, 1).softmax()  // rows sum to 1 (mixup-style targets)
        gradCheck("cross-entropy soft targets", [logits]) { Tensor.crossEntropy(logits: $0[0], targets: soft) }
        gradCheck("cross-entropy soft targets smoothing", [logits]) {
            Tensor.crossEntropy(logits: $0[0], targets: soft, labelSmoothing: 0.2)
        }
        let unnormalised = data.uniform([4, 5], 0, 1)
        gradCheck("cross-entropy targets not summing to 1", [logits]) {
            Tensor.crossEntropy(logits: $0[0], targets: unnormalised)
        }
        gradCheck("cross-entropy after linear", [data.normal([4, 3]), data.normal([5, 3])]) {
            Tensor.crossEntropy(logits: Tensor.linear($0[0], weight: $0[1], bias: nil), labels: labels)
        }
    }

    // MARK: normalisation

    func testLayerNorm() {
        let x = data.normal([2, 3, 6]).affine(scale: 1.5, shift: 0.7)
        let w = data.normal([6]), b = data.normal([6])
        gradCheck("layerNorm affine", [x, w, b]) { Tensor.layerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-5) }
        gradCheck("layerNorm no affine", [x]) { Tensor.layerNorm($0[0], weight: nil, bias: nil, eps: 1e-6) }
        gradCheck("layerNorm weight only", [x, w]) { Tensor.layerNorm($0[0], weight: $0[1], bias: nil, eps: 1e-5) }
        gradCheck("layerNorm bias only", [x, b]) { Tensor.layerNorm($0[0], weight: nil, bias: $0[1], eps: 1e-5) }
        gradCheck("layerNorm params only", [x, w, b], wrt: [1, 2]) { Tensor.layerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-5) }
        // a C that is not a multiple of the SIMD width and more rows than one chunk
        let wide = data.normal([40, 37])
        gradCheck("layerNorm C=37", [wide, data.normal([37]), data.normal([37])], wrt: [1, 2]) {
            Tensor.layerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-5)
        }
    }

    func testBatchNorm() {
        for shape in [[3, 2, 2, 3], [5, 3]] {
            let c = shape[1]
            let x = data.normal(shape).affine(scale: 2, shift: 0.5)
            let w = data.normal([c]), b = data.normal([c])
            // train: running stats change at every evaluation, but train-mode outputs do not depend on
            // them, so only the gradients are compared (running-stat updates are tested separately)
            let rm = Tensor.zeros([c]), rv = Tensor.ones([c])
            gradCheck("batchNorm train \(shape)", [x, w, b]) {
                Tensor.batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: rm, runningVar: rv, training: true)
            }
            let erm = data.normal([c], std: 0.3), erv = data.uniform([c], 0.5, 2)
            let before = erm.scalars + erv.scalars
            gradCheck("batchNorm eval \(shape)", [x, w, b]) {
                Tensor.batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: erm, runningVar: erv, training: false)
            }
            XCTAssertEqual(erm.scalars + erv.scalars, before, "eval mode must not touch running stats")
        }
    }

    // MARK: convolution and pooling

    struct ConvCase {
        var name: String
        var input: [Int], out: Int, kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int), groups: Int, bias: Bool
    }

    func testConv2d() {
        let cases = [
            ConvCase(name: "3x3 pad 1 bias", input: [2, 3, 5, 5], out: 4, kernel: (3, 3), stride: (1, 1), padding: (1, 1), groups: 1, bias: true),
            ConvCase(name: "stride 2 no bias", input: [1, 2, 6, 6], out: 3, kernel: (3, 3), stride: (2, 2), padding: (0, 0), groups: 1, bias: false),
            ConvCase(name: "non-square", input: [2, 2, 5, 7], out: 3, kernel: (2, 3), stride: (2, 1), padding: (1, 0), groups: 1, bias: true),
            ConvCase(name: "groups 2", input: [2, 4, 4, 4], out: 6, kernel: (3, 3), stride: (1, 1), padding: (1, 1), groups: 2, bias: true),
            // stride-1 grouped: the direct kernel (og 9 = a register tile of 8 or 4 plus a remainder)
            ConvCase(name: "grouped 3x3 direct", input: [2, 6, 5, 6], out: 18, kernel: (3, 3), stride: (1, 1), padding: (1, 1), groups: 2, bias: false),
            ConvCase(name: "grouped 5x3 direct, pad (2, 0)", input: [1, 4, 6, 5], out: 4, kernel: (5, 3), stride: (1, 1), padding: (2, 0), groups: 2, bias: true),
            ConvCase(name: "depthwise x2 (PiT pooling)", input: [2, 3, 5, 5], out: 6, kernel: (3, 3), stride: (2, 2), padding: (1, 1), groups: 3, bias: true),
            ConvCase(name: "depthwise x1", input: [1, 4, 4, 5], out: 4, kernel: (3, 3), stride: (1, 1), padding: (1, 1), groups: 4, bias: false),
            ConvCase(name: "pointwise 1x1", input: [2, 3, 3, 4], out: 5, kernel: (1, 1), stride: (1, 1), padding: (0, 0), groups: 1, bias: true),
            ConvCase(name: "pointwise groups 2", input: [2, 4, 3, 3], out: 2, kernel: (1, 1), stride: (1, 1), padding: (0, 0), groups: 2, bias: false),
            ConvCase(name: "patch embed 2x2/2", input: [2, 3, 4, 4], out: 4, kernel: (2, 2), stride: (2, 2), padding: (0, 0), groups: 1, bias: true),
        ]
        for cc in cases {
            let x = data.normal(cc.input)
            let w = data.normal([cc.out, cc.input[1] / cc.groups, cc.kernel.0, cc.kernel.1], std: 0.5)
            var inputs = [x, w]
            if cc.bias { inputs.append(data.normal([cc.out])) }
            gradCheck("conv2d \(cc.name)", inputs) {
                Tensor.conv2d($0[0], weight: $0[1], bias: cc.bias ? $0[2] : nil, stride: cc.stride, padding: cc.padding, groups: cc.groups)
            }
        }
    }

    func testPooling() {
        let x = data.normal([2, 3, 5, 7])
        gradCheck("avgPool2d 2x2", [x]) { Tensor.avgPool2d($0[0], kernel: (2, 2)) }
        gradCheck("avgPool2d 3x3 s2 p1", [x]) { Tensor.avgPool2d($0[0], kernel: (3, 3), stride: (2, 2), padding: (1, 1)) }
        gradCheck("avgPool2d exclude pad", [x]) {
            Tensor.avgPool2d($0[0], kernel: (3, 3), stride: (2, 2), padding: (1, 1), countIncludePad: false)
        }
        gradCheck("adaptiveAvgPool2d uneven", [x]) { Tensor.adaptiveAvgPool2d($0[0], output: (3, 2)) }
        gradCheck("adaptiveAvgPool2d global", [x]) { Tensor.adaptiveAvgPool2d($0[0], output: (1, 1)) }
        gradCheck("adaptiveAvgPool2d upsample", [data.normal([1, 2, 2, 3])]) { Tensor.adaptiveAvgPool2d($0[0], output: (3, 4)) }
    }

    // MARK: stochastic ops: the generator is re-seeded at each evaluation, so the mask is fixed

    func testDropoutAndDropPath() {
        let x = data.normal([4, 3, 5])
        gradCheck("dropout", [x]) {
            var g = RandomGenerator(seed: 99)
            return $0[0].dropout(0.3, training: true, generator: &g)
        }
        gradCheck("dropPath", [x]) {
            var g = RandomGenerator(seed: 7)
            return $0[0].dropPath(0.4, training: true, generator: &g)
        }
    }

    // MARK: attention

    func testScaledDotProductAttention() {
        // Nq ≠ Nk, dv ≠ d
        let q = data.normal([2, 2, 3, 4]), k = data.normal([2, 2, 5, 4]), v = data.normal([2, 2, 5, 6])
        gradCheck("attention", [q, k, v]) { Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], scale: 0.5) }
        gradCheck("attention rank 3", [data.normal([3, 4, 2]), data.normal([3, 2, 2]), data.normal([3, 2, 3])]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], scale: 0.7)
        }
        gradCheck("self-attention (q = k = v)", [data.normal([1, 2, 4, 4])]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[0], value: $0[0], scale: 0.5)
        }
        // channel-major: q, k [.., d, N], v [.., dv, N]
        gradCheck("attention channel-major", [data.normal([2, 2, 4, 3]), data.normal([2, 2, 4, 5]), data.normal([2, 2, 6, 5])]) {
            Tensor.scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], scale: 0.5, layout: .channelMajor)
        }
    }

    /// ConViT GPSA's mix, A = (1 − g)·softmax(scale·L) + g·P: gradients for the logits, the positional
    /// map and the gate (through the sigmoid, as the model uses it); n = 17 runs the rows' 16-lane body
    /// and tail. The forward equals the same formula written with separate engine ops.
    func testGatedAttentionMix() {
        for (b, h, n) in [(2, 3, 4), (1, 2, 17)] {
            let logits = data.normal([b, h, n, n], std: 2), positional = data.uniform([h, n, n], 0, 1), gate = data.normal([h])
            gradCheck("gpsa mix b\(b) h\(h) n\(n)", [logits, positional, gate]) {
                Tensor.gatedAttentionMix(logits: $0[0], scale: 0.6, positional: $0[1], gate: $0[2].sigmoid())
            }
            let mixed = Tensor.gatedAttentionMix(logits: logits, scale: 0.6, positional: positional, gate: gate.sigmoid())
            let g = gate.sigmoid().reshaped([1, h, 1, 1])
            let reference = (logits * 0.6).softmax() * (1 - g) + positional.reshaped([1, h, n, n]) * g
            XCTAssertLessThan(maxAbsDiff(mixed, reference), 1e-6, "gpsa mix forward b\(b) h\(h) n\(n)")
        }
    }

    // MARK: a composite: a transformer-style block

    func testCompositeBlock() {
        let x = data.normal([2, 3, 4]), w1 = data.normal([8, 4], std: 0.5), w2 = data.normal([4, 8], std: 0.5)
        let lw = data.normal([4]), lb = data.normal([4])
        gradCheck("LN → linear → GELU → linear → residual → mean", [x, w1, w2, lw, lb]) { t in
            let h = Tensor.layerNorm(t[0], weight: t[3], bias: t[4], eps: 1e-6)
            let y = Tensor.linear(Tensor.linear(h, weight: t[1], bias: nil).gelu(), weight: t[2], bias: nil)
            return (t[0] + y).mean(axis: 1)
        }
    }
}
