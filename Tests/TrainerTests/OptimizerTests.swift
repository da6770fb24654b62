import Foundation
import Models
import Tensor
import TestSupport
import XCTest
@testable import Trainer
import DataPipeline

/// A small module with every kind of parameter the weight-decay filter distinguishes.
final class FilterNet: Module {
    let state = ModelState(seed: 0)
    let fc: Linear, norm: LayerNorm, bn: BatchNorm2d, head: Linear
    let posEmbed: Parameter, clsToken: Parameter, gating: Parameter, stem: [any Module]
    init() {
        var g = RandomGenerator(seed: 1)
        fc = Linear(4, 6, generator: &g)
        norm = LayerNorm(6, eps: 1e-6)
        bn = BatchNorm2d(6, state: state)
        head = Linear(6, 3, generator: &g)
        posEmbed = Parameter(Tensor.randn([1, 2, 6], std: 0.02, generator: &g))
        clsToken = Parameter(Tensor.zeros([1, 1, 6]))
        gating = Parameter(Tensor.ones([2]))
        stem = [Conv2d(3, 6, kernel: 3, bias: false, generator: &g), BatchNorm2d(6, state: state)]
    }
    func visit(_ v: inout ModuleVisitor) {
        v.param("pos_embed", posEmbed); v.param("cls_token", clsToken)
        v.children("stem", stem)
        v.child("fc", fc); v.child("norm", norm); v.child("bn", bn)
        v.param("attn.gating_param", gating)
        v.child("head", head)
    }
}

final class OptimizerTests: XCTestCase {
    /// Two parameters (a decayed matrix and an exempt vector) with fixed gradients per step.
    func fixture() -> ([NamedParameter], [[[Double]]]) {
        let w = Parameter(Tensor(shape: [2, 3], [0.5, -1.0, 0.25, 2.0, -0.75, 0.1]))
        let b = Parameter(Tensor(shape: [3], [0.1, -0.2, 0.3]))
        let grads: [[[Double]]] = [  // step → parameter → values
            [[0.1, -0.2, 0.3, -0.4, 0.5, -0.6], [1.0, -1.0, 0.5]],
            [[-0.05, 0.2, 0.1, 0.3, -0.5, 0.25], [0.2, 0.3, -0.4]],
            [[0.3, 0.1, -0.2, 0.0, 0.4, -0.1], [-0.7, 0.05, 0.1]],
            [[1e-4, -2e-4, 3e-3, 0.0, 0.02, -0.01], [0.0, 0.0, 0.0]],
        ]
        return ([("w", w), ("b", b)], grads)
    }

    func assertClose(_ params: [NamedParameter], _ expected: [[Double]], file: StaticString = #filePath, line: UInt = #line) {
        for (p, e) in zip(params, expected) {
            for (k, (g, x)) in zip(p.parameter.value.scalars, e).enumerated() {
                XCTAssertEqual(Double(g), x, accuracy: 1e-6, "\(p.name)[\(k)]", file: file, line: line)
            }
        }
    }

    func testAdamWMatchesReference() {
        let (params, grads) = fixture()
        let lrs = [0.01, 0.02, 0.005, 0.03], decays = [0.05, 0.0]
        let opt = AdamW(parameters: params, weightDecays: decays.map { Float($0) })
        // Reference in Double, PyTorch AdamW (= MindCV's, docs/training.md §4.2).
        var p = params.map { $0.parameter.value.scalars.map(Double.init) }
        var m = p.map { $0.map { _ in 0.0 } }, v = m
        let (b1, b2, eps) = (0.9, 0.999, 1e-8)
        for (s, lr) in lrs.enumerated() {
            let t = Double(s + 1)
            for i in 0..<2 {
                for j in p[i].indices {
                    let g = grads[s][i][j]
                    m[i][j] = b1 * m[i][j] + (1 - b1) * g
                    v[i][j] = b2 * v[i][j] + (1 - b2) * g * g
                    let mh = m[i][j] / (1 - pow(b1, t)), vh = v[i][j] / (1 - pow(b2, t))
                    p[i][j] -= lr * (mh / (vh.squareRoot() + eps) + decays[i] * p[i][j])
                }
            }
            setGradients(params, grads[s].enumerated().map { Tensor(shape: params[$0.offset].parameter.shape, doubles: $0.element) })
            opt.step(lr: lr)
            assertClose(params, p)
        }
        XCTAssertEqual(opt.stepCount, 4)
    }

    func testSGDAndNesterovMatchReference() {
        for nesterov in [false, true] {
            let (params, grads) = fixture()
            let lrs = [0.1, 0.05, 0.2, 0.1], decays = [1e-2, 0.0], mu = 0.9
            let opt = SGD(parameters: params, weightDecays: decays.map { Float($0) }, momentum: Float(mu), nesterov: nesterov)
            var p = params.map { $0.parameter.value.scalars.map(Double.init) }
            var buf = p.map { $0.map { _ in 0.0 } }
            for (s, lr) in lrs.enumerated() {
                for i in 0..<2 {
                    for j in p[i].indices {
                        let g = grads[s][i][j] + decays[i] * p[i][j]
                        buf[i][j] = mu * buf[i][j] + g
                        p[i][j] -= lr * (nesterov ? g + mu * buf[i][j] : buf[i][j])
                    }
                }
                setGradients(params, grads[s].enumerated().map { Tensor(shape: params[$0.offset].parameter.shape, doubles: $0.element) })
                opt.step(lr: lr)
                assertClose(params, p)
            }
        }
    }

    func testMindSporeAdamMatchesReference() {
        for nesterov in [false, true] {
            let (params, grads) = fixture()
            let lrs = [0.01, 0.02, 0.005, 0.03], decays = [0.05, 0.0]
            let opt = Adam(parameters: params, weightDecays: decays.map { Float($0) }, nesterov: nesterov)
            var p = params.map { $0.parameter.value.scalars.map(Double.init) }
            var m = p.map { $0.map { _ in 0.0 } }, v = m
            let (b1, b2, eps) = (0.9, 0.999, 1e-8)
            for (s, lr) in lrs.enumerated() {
                let t = Double(s + 1)
                let lrt = lr * (1 - pow(b2, t)).squareRoot() / (1 - pow(b1, t))
                for i in 0..<2 {
                    for j in p[i].indices {
                        let g = grads[s][i][j] + decays[i] * p[i][j]
                        m[i][j] = b1 * m[i][j] + (1 - b1) * g
                        v[i][j] = b2 * v[i][j] + (1 - b2) * g * g
                        let num = nesterov ? b1 * m[i][j] + (1 - b1) * g : m[i][j]
                        p[i][j] -= lrt * num / (v[i][j].squareRoot() + eps)
                    }
                }
                setGradients(params, grads[s].enumerated().map { Tensor(shape: params[$0.offset].parameter.shape, doubles: $0.element) })
                opt.step(lr: lr)
                assertClose(params, p)
            }
        }
    }

    func testStepReadsTapeGradientsScalesAndSkipsMissing() {
        let p = Parameter(Tensor(shape: [3], [1, 2, 3]))
        let q = Parameter(Tensor(shape: [2], [5, 6]))  // never gets a gradient
        let opt = SGD(parameters: [("p", p), ("q", q)], weightDecays: [0, 0], momentum: 0)
        let c = Tensor(shape: [3], [0.5, -1, 2])
        (p.value * c).sum().backward()
        XCTAssertEqual(p.grad?.scalars, [0.5, -1, 2])
        opt.step(lr: 0.1, gradScale: 0.5)
        XCTAssertEqual(p.value.scalars[0], 1 - 0.1 * 0.25, accuracy: 1e-7)
        XCTAssertEqual(p.value.scalars[2], 3 - 0.1 * 1, accuracy: 1e-7)
        XCTAssertEqual(q.value.scalars, [5, 6])
        opt.zeroGrad()
        XCTAssertNil(p.grad)
    }

    /// Large tensors take the multi-threaded path; the result must equal the single-chunk one.
    func testLargeParameterUpdateIsElementwiseExact() {
        let n = 200_003
        var g = RandomGenerator(seed: 7)
        let w0 = Tensor.randn([n], generator: &g), gr = Tensor.randn([n], generator: &g)
        let p = Parameter(w0.copy())
        let opt = AdamW(parameters: [("p", p)], weightDecays: [0.1])
        setGradients([("p", p)], [gr])
        opt.step(lr: 0.01)
        let w = p.value.storage.pointer, x = w0.storage.pointer, d = gr.storage.pointer
        for j in stride(from: 0, to: n, by: 997) {
            let gj = Double(d[j]), m = 0.1 * gj, v = 0.001 * gj * gj
            let expect = Double(x[j]) - 0.01 * ((m / 0.1) / ((v / 0.001).squareRoot() + 1e-8) + 0.1 * Double(x[j]))
            XCTAssertEqual(Double(w[j]), expect, accuracy: 1e-5)
        }
    }

    /// Fits y = X·w* + b* (a small linear regression built from Tensor ops) with each optimizer.
    func testConvergenceOnLinearRegression() {
        var g = RandomGenerator(seed: 3)
        let x = Tensor.randn([64, 4], generator: &g)
        let wTrue = Tensor(shape: [4, 1], [1.5, -2.0, 0.5, 3.0])
        let y = Tensor.matmul(x, wTrue) + 0.7
        for kind in ["adamw", "adam", "sgd", "nesterov"] {
            let w = Parameter(Tensor.zeros([4, 1])), b = Parameter(Tensor.zeros([1]))
            let params: [NamedParameter] = [("w", w), ("b", b)]
            var r = Recipe()
            r.opt = kind
            r.weightDecay = 0
            let opt = makeOptimizer(recipe: r, parameters: params)
            var loss: Float = .infinity
            for _ in 0..<400 {
                let diff = Tensor.matmul(x, w.value) + b.value - y
                let l = (diff * diff).mean()
                loss = l.item
                l.backward()
                opt.step(lr: 0.05)
                opt.zeroGrad()
            }
            XCTAssertLessThan(loss, 1e-4, kind)
            XCTAssertEqual(b.value.item, 0.7, accuracy: 1e-2, kind)
        }
    }

    // MARK: weight-decay filter

    func testWeightDecayFilters() {
        let net = FilterNet()
        let params = net.namedParameters()
        let names = params.map { $0.name }
        XCTAssertEqual(names, ["pos_embed", "cls_token", "stem.0.weight", "stem.1.weight", "stem.1.bias", "fc.weight", "fc.bias",
                               "norm.weight", "norm.bias", "bn.weight", "bn.bias", "attn.gating_param", "head.weight", "head.bias"])
        func exempt(_ f: WeightDecayFilter, noWD: Set<String> = [], layerDecay: Bool = false) -> [String] {
            zip(names, f.decayMask(params, noWeightDecay: noWD, layerDecay: layerDecay)).filter { !$0.1 }.map { $0.0 }
        }
        XCTAssertEqual(exempt(.disable), [])
        // auto = MindSpore's gamma/beta test: norm scales and shifts only (biases decayed).
        XCTAssertEqual(exempt(.auto), ["stem.1.weight", "stem.1.bias", "norm.weight", "norm.bias", "bn.weight", "bn.bias"])
        XCTAssertEqual(exempt(.normAndBias, noWD: ["pos_embed"]),
                       ["pos_embed", "stem.1.weight", "stem.1.bias", "fc.bias", "norm.weight", "norm.bias", "bn.weight", "bn.bias", "head.bias"])
        // layer_decay: every 1-D parameter is exempt as well (gating_param here).
        XCTAssertEqual(exempt(.disable, layerDecay: true),
                       ["stem.1.weight", "stem.1.bias", "fc.bias", "norm.weight", "norm.bias", "bn.weight", "bn.bias", "attn.gating_param", "head.bias"])
        XCTAssertTrue(WeightDecayFilter.isNormParameter("blocks.0.ls1.gamma", shapes: [:]))

        var r = Recipe()
        r.opt = "adamw"; r.weightDecay = 0.05; r.weightDecayFilter = "norm_and_bias"
        let opt = makeOptimizer(recipe: r, parameters: params)
        XCTAssertTrue(opt is AdamW)
        XCTAssertEqual(opt.weightDecays[names.firstIndex(of: "fc.weight")!], 0.05)
        XCTAssertEqual(opt.weightDecays[names.firstIndex(of: "fc.bias")!], 0)
    }

    /// The structural norm rule on the registered models: under `auto`, exactly the LayerNorm /
    /// BatchNorm scales and shifts are exempt (canonical names `…norm*.weight|bias`, Visformer's
    /// `stem.1.*`), i.e. what MindSpore's gamma/beta test exempts on MindCV's names (docs/naming.md §2).
    func testNormRuleOnRegisteredModels() throws {
        var tested = 0
        for name in ["pit_ti", "pvt_tiny", "convit_tiny", "visformer_tiny", "visformer_tiny_v2"] {
            guard let entry = try? ModelRegistry.entry(name) else { continue }
            let model = entry.build(ModelOptions(numClasses: 10))
            let params = model.namedParameters()
            let mask = WeightDecayFilter.auto.decayMask(params)
            for (p, decayed) in zip(params, mask) {
                let parts = p.name.split(separator: ".")
                let owner = parts.count >= 2 ? String(parts[parts.count - 2]) : ""
                let isNorm = (owner.hasPrefix("norm") || p.name.hasPrefix("stem.1.")) && ["weight", "bias"].contains(parts.last!)
                XCTAssertEqual(decayed, !isNorm, "\(name): \(p.name)")
            }
            // norm_and_bias additionally exempts every bias, and the model's own names when passed.
            let nb = WeightDecayFilter.normAndBias.decayMask(params, noWeightDecay: model.noWeightDecay)
            for (p, decayed) in zip(params, nb) where p.name.hasSuffix(".bias") || model.noWeightDecay.contains(p.name) {
                XCTAssertFalse(decayed, "\(name): \(p.name)")
            }
            tested += 1
        }
        if tested == 0 { throw XCTSkip("no model families registered yet") }
    }

    // MARK: state

    func testStateRoundTripAndMismatch() throws {
        let (params, grads) = fixture()
        let opt = AdamW(parameters: params, weightDecay: 0.01)
        setGradients(params, grads[0].enumerated().map { Tensor(shape: params[$0.offset].parameter.shape, doubles: $0.element) })
        opt.step(lr: 0.1)
        let state = opt.stateTensors()
        XCTAssertEqual(Set(state.keys), ["exp_avg.w", "exp_avg.b", "exp_avg_sq.w", "exp_avg_sq.b"])
        let (params2, _) = fixture()
        let opt2 = AdamW(parameters: params2, weightDecay: 0.01)
        try opt2.loadState(tensors: state.mapValues { $0.copy() }, stepCount: opt.stepCount)
        XCTAssertEqual(opt2.stepCount, 1)
        XCTAssertEqual(opt2.stateTensors()["exp_avg.w"]?.scalars, state["exp_avg.w"]?.scalars)
        var bad = state
        bad["exp_avg.b"] = Tensor.zeros([4])
        XCTAssertThrowsError(try opt2.loadState(tensors: bad, stepCount: 1)) { e in
            XCTAssertEqual(e as? OptimizerStateError, .shapeMismatch(name: "exp_avg.b", expected: [3], found: [4]))
            XCTAssertTrue("\(e)".contains("[4]") && "\(e)".contains("[3]"))
        }
        bad = state
        bad["exp_avg_sq.w"] = nil
        XCTAssertThrowsError(try opt2.loadState(tensors: bad, stepCount: 1)) { e in
            XCTAssertEqual(e as? OptimizerStateError, .missing(name: "exp_avg_sq.w"))
        }
    }

    // MARK: clipping, EMA

    func testClipByGlobalNorm() {
        let a = Tensor(shape: [2], [3, 0]), b = Tensor(shape: [1], [4])
        XCTAssertEqual(globalGradNorm([a, nil, b]), 5, accuracy: 1e-12)
        XCTAssertEqual(clipGradients([a, b], maxNorm: 10), 5, accuracy: 1e-12)
        XCTAssertEqual(a.scalars, [3, 0])  // below the bound: untouched
        XCTAssertEqual(clipGradients([a, b], maxNorm: 2.5), 5, accuracy: 1e-12)
        XCTAssertEqual(a.scalars, [1.5, 0])
        XCTAssertEqual(b.scalars, [2])
        // Large tensors: parallel sum of squares.
        let big = Tensor.full([300_001], 0.5)
        XCTAssertEqual(globalGradNorm([big]), (300_001 * 0.25).squareRoot(), accuracy: 1e-6)
    }

    func testEMAWarmupApplyRestore() throws {
        let net = FilterNet()
        let ema = ExponentialMovingAverage(model: net, decay: 0.9999)
        XCTAssertEqual(ema.names.count, net.namedParameters().count + net.namedBuffers().count)
        let w = net.fc.weight.value
        let w0 = Double(w.scalars[0])
        withNoGrad { w.assign(Tensor.full(w.shape, 1)) }
        ema.update()
        let d1 = 0.9999 * (1 - exp(-1.0 / 2000))
        XCTAssertEqual(ExponentialMovingAverage.warmedUpDecay(0.9999, update: 1), d1)
        let e1 = d1 * w0 + (1 - d1) * 1
        XCTAssertEqual(Double(ema.averagedStateDict()["fc.weight"]!.scalars[0]), e1, accuracy: 1e-6)
        ema.update()
        let d2 = 0.9999 * (1 - exp(-2.0 / 2000))
        XCTAssertEqual(Double(ema.averagedStateDict()["fc.weight"]!.scalars[0]), d2 * e1 + (1 - d2), accuracy: 1e-6)
        ema.apply()
        XCTAssertEqual(Double(net.fc.weight.value.scalars[0]), d2 * e1 + (1 - d2), accuracy: 1e-6)
        ema.restore()
        XCTAssertEqual(net.fc.weight.value.scalars[0], 1)
        XCTAssertEqual(ema.updates, 2)
        XCTAssertTrue(ema.stateTensors().keys.contains("ema.bn.running_mean"))
    }
}

/// Gives each parameter exactly the gradient `g` through the tape (d(Σ p·g)/dp = g, bit for bit).
func setGradients(_ params: [NamedParameter], _ grads: [Tensor]) {
    for (p, g) in zip(params, grads) {
        p.parameter.zeroGrad()
        (p.parameter.value * g).sum().backward()
    }
}
