import Tensor

/// An auto-augment policy parsed from MindCV's `auto_augment` string.
///
/// Supported strings (`<name>-<section>-…`, each section letters + a number):
/// * `randaug-m<M>-n<N>-w0-mstd<S>-mmax<X>-inc<I>` — RandAugment: N ops (default 2) drawn uniformly
///   with replacement (`w0`: weighted, without replacement), each applied with p = 0.5 at magnitude
///   M (default 10) plus N(0, S) noise, clipped to [0, X] (default 10); `inc1` uses the *Increasing* ops.
/// * `autoaug-mstd<S>` / `autoaugr-…` / `3a-…` — AutoAugment's 25 ImageNet sub-policies (with
///   PosterizeOriginal / PosterizeIncreasing), or the 3-op "3a" policy; one sub-policy per image.
/// * `trivialaugwide-m<M>` — TrivialAugment-Wide: one of the 14 ops, magnitude ~ U(0, M) (M = 31).
/// * `augmix-m<S>-w<W>-d<D>-a<A>` — AugMix (severity 3, width 3, depth random 1–3, α = 1).
///
/// Deliberate differences from MindCV (intended, timm behaviour; see docs/training.md §6.6):
/// * `mstd` is honoured. MindCV pre-sets σ = 0.5 and ignores the string's value, so it always adds
///   N(0, 0.5) noise, even to plain `autoaug`; here σ is the given `mstd` (0 when absent, so plain
///   `autoaug` has no noise) and `mstd` > 100 means uniform sampling in [0, M].
/// * `inc<I>` enables the increasing ops only when I ≠ 0 (MindCV and timm test the string, so `inc0`
///   enables them too).
/// * Shear, posterize and TrivialAugment's translation sign: see `AugmentOp`.
public struct AutoAugmentPolicy: Sendable {
    /// The string the policy was parsed from.
    public let name: String
    let kind: Kind
    let rule: MagnitudeRule
    let context: AugmentContext

    struct Step: Sendable {
        var op: AugmentOp
        var probability: Double
        var magnitude: Double
    }

    enum Kind: Sendable {
        case randAugment(ops: [AugmentOp], count: Int, magnitude: Double, weights: [Double]?)
        case subPolicies([[Step]])
        case trivialWide(magnitude: Double)
        case augMix(severity: Double, width: Int, depth: Int, alpha: Double)
    }

    /// Parses `string`. Geometric ops use `interpolation` and fill uncovered pixels with `fill`
    /// (MindCV: round(mean) = (124, 116, 104)).
    public init(_ string: String, interpolation: Interpolation = .bilinear,
                fill: (UInt8, UInt8, UInt8) = (124, 116, 104)) throws(DataError) {
        name = string
        context = AugmentContext(interpolation: interpolation, fill: fill)
        var parts = string.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard !parts.isEmpty else { throw .invalidConfig(key: "auto_augment", reason: "empty policy") }
        let policy = parts.removeFirst()
        var sections: [String: Double] = [:]
        for part in parts {
            let letters = part.prefix { $0.isLetter }
            let valueText = part.dropFirst(letters.count)
            guard !letters.isEmpty, let value = Double(valueText), value.isFinite else {
                throw .invalidConfig(key: "auto_augment", reason: "cannot parse section '\(part)' of '\(string)'")
            }
            sections[String(letters)] = value
        }
        func take(_ allowed: Set<String>) throws(DataError) {
            if let bad = sections.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw .invalidConfig(key: "auto_augment", reason: "unknown section '\(bad)' for policy '\(policy)' in '\(string)'")
            }
        }
        func noise(_ mstd: Double?) -> Double {
            guard let mstd else { return 0 }
            return mstd > 100 ? .infinity : max(mstd, 0)
        }
        switch policy {
        case "randaug":
            try take(["m", "n", "w", "mstd", "mmax", "inc"])
            let magnitude = sections["m"] ?? 10
            let count = Int(sections["n"] ?? 2)
            guard count >= 0, magnitude >= 0 else {
                throw .invalidConfig(key: "auto_augment", reason: "negative magnitude or op count in '\(string)'")
            }
            let ops = (sections["inc"] ?? 0) != 0 ? AugmentOp.increasing : AugmentOp.standard
            var weights: [Double]?
            if let w = sections["w"] {
                guard w == 0 else { throw .invalidConfig(key: "auto_augment", reason: "only weight set w0 exists, got w\(w)") }
                weights = AugmentOp.randAugmentWeights
            }
            // w0 draws without replacement among the ops of non-zero weight (Invert has weight 0).
            if weights != nil && count > ops.count - 1 {
                throw .invalidConfig(key: "auto_augment", reason: "w0 draws without replacement: at most \(ops.count - 1) ops")
            }
            kind = .randAugment(ops: ops, count: count, magnitude: magnitude, weights: weights)
            rule = MagnitudeRule(std: noise(sections["mstd"]), maximum: sections["mmax"] ?? 10, denominator: 10, wide: false)
        case "autoaug", "autoaugr", "3a":
            try take(["mstd"])
            kind = .subPolicies(policy == "3a" ? Self.threeAugment : Self.imagenetPolicy(increasingPosterize: policy == "autoaugr"))
            rule = MagnitudeRule(std: noise(sections["mstd"]), maximum: 10, denominator: 10, wide: false)
        case "trivialaugwide":
            try take(["m"])
            let magnitude = sections["m"] ?? 31
            guard magnitude > 0 else { throw .invalidConfig(key: "auto_augment", reason: "magnitude must be > 0 in '\(string)'") }
            kind = .trivialWide(magnitude: magnitude)
            rule = MagnitudeRule(std: .infinity, maximum: magnitude, denominator: magnitude, wide: true)
        case "augmix":
            try take(["m", "w", "d", "a"])
            let width = Int(sections["w"] ?? 3)
            let alpha = sections["a"] ?? 1
            guard width > 0, alpha > 0 else { throw .invalidConfig(key: "auto_augment", reason: "width and alpha must be > 0 in '\(string)'") }
            kind = .augMix(severity: sections["m"] ?? 3, width: width, depth: Int(sections["d"] ?? -1), alpha: alpha)
            rule = MagnitudeRule(std: .infinity, maximum: 10, denominator: 10, wide: false)
        default:
            throw .invalidConfig(key: "auto_augment",
                                 reason: "unknown policy '\(policy)' (expected randaug, autoaug, autoaugr, 3a, trivialaugwide or augmix)")
        }
    }

    /// Applies the policy to `image`, drawing every decision from `rng`.
    public func apply(to image: inout RGBImage, rng: inout RandomGenerator) {
        switch kind {
        case .randAugment(let ops, let count, let magnitude, let weights):
            var chosen: [AugmentOp] = []
            if let weights {
                var w = weights
                for _ in 0..<count {
                    let total = w.reduce(0, +)
                    var u = rng.nextDouble() * total
                    var pick = w.count - 1
                    for (i, wi) in w.enumerated() where wi > 0 {
                        if u < wi { pick = i; break }
                        u -= wi
                    }
                    chosen.append(ops[pick])
                    w[pick] = 0
                }
            } else {
                for _ in 0..<count { chosen.append(ops[rng.nextInt(below: ops.count)]) }
            }
            for op in chosen { run(Step(op: op, probability: 0.5, magnitude: magnitude), on: &image, rng: &rng) }
        case .subPolicies(let policies):
            for step in policies[rng.nextInt(below: policies.count)] { run(step, on: &image, rng: &rng) }
        case .trivialWide(let magnitude):
            let op = AugmentOp.standard[rng.nextInt(below: AugmentOp.standard.count)]
            run(Step(op: op, probability: 1, magnitude: magnitude), on: &image, rng: &rng)
        case .augMix(let severity, let width, let depth, let alpha):
            augMix(&image, severity: severity, width: width, depth: depth, alpha: alpha, rng: &rng)
        }
    }

    private func run(_ step: Step, on image: inout RGBImage, rng: inout RandomGenerator) {
        if step.probability < 1 && rng.nextDouble() > step.probability { return }
        let x = rule.fraction(base: step.magnitude, rng: &rng)
        step.op.apply(to: &image, x: x, wide: rule.wide, context: context, rng: &rng)
    }

    /// timm's `AugMixAugment` (not blended): Σ wᵢ·chainᵢ clipped to bytes, blended with the original by m.
    private func augMix(_ image: inout RGBImage, severity: Double, width: Int, depth: Int, alpha: Double,
                        rng: inout RandomGenerator) {
        let weights = rng.dirichlet(alpha: alpha, count: width)
        let m = Float(rng.beta(alpha, alpha))
        let n = image.pixels.count
        var mixed = [Float](repeating: 0, count: n)
        for w in weights {
            var chain = image
            let d = depth > 0 ? depth : rng.integer(1, through: 3)
            for _ in 0..<d {
                let op = AugmentOp.augMix[rng.nextInt(below: AugmentOp.augMix.count)]
                run(Step(op: op, probability: 1, magnitude: severity), on: &chain, rng: &rng)
            }
            let wf = Float(w)
            chain.pixels.withUnsafeBufferPointer { c in
                mixed.withUnsafeMutableBufferPointer { acc in
                    for i in 0..<n { acc[i] += wf * Float(c[i]) }
                }
            }
        }
        mixed.withUnsafeBufferPointer { acc in
            image.pixels.withUnsafeMutableBufferPointer { p in
                for i in 0..<n {
                    let mix = Float(truncByte(acc[i]))
                    let v = Float(p[i])
                    p[i] = truncByte(v + m * (mix - v))
                }
            }
        }
    }

    /// AutoAugment's ImageNet policy (docs/training.md §6.6.2; timm `auto_augment_policy_original`).
    static func imagenetPolicy(increasingPosterize: Bool) -> [[Step]] {
        let post: AugmentOp = increasingPosterize ? .posterizeIncreasing : .posterizeOriginal
        let table: [[(AugmentOp, Double, Double)]] = [
            [(post, 0.4, 8), (.rotate, 0.6, 9)],
            [(.solarize, 0.6, 5), (.autoContrast, 0.6, 5)],
            [(.equalize, 0.8, 8), (.equalize, 0.6, 3)],
            [(post, 0.6, 7), (post, 0.6, 6)],
            [(.equalize, 0.4, 7), (.solarize, 0.2, 4)],
            [(.equalize, 0.4, 4), (.rotate, 0.8, 8)],
            [(.solarize, 0.6, 3), (.equalize, 0.6, 7)],
            [(post, 0.8, 5), (.equalize, 1.0, 2)],
            [(.rotate, 0.2, 3), (.solarize, 0.6, 8)],
            [(.equalize, 0.6, 8), (post, 0.4, 6)],
            [(.rotate, 0.8, 8), (.color, 0.4, 0)],
            [(.rotate, 0.4, 9), (.equalize, 0.6, 2)],
            [(.equalize, 0.0, 7), (.equalize, 0.8, 8)],
            [(.invert, 0.6, 4), (.equalize, 1.0, 8)],
            [(.color, 0.6, 4), (.contrast, 1.0, 8)],
            [(.rotate, 0.8, 8), (.color, 1.0, 2)],
            [(.color, 0.8, 8), (.solarize, 0.8, 7)],
            [(.sharpness, 0.4, 7), (.invert, 0.6, 8)],
            [(.shearX, 0.6, 5), (.equalize, 1.0, 9)],
            [(.color, 0.4, 0), (.equalize, 0.6, 3)],
            [(.equalize, 0.4, 7), (.solarize, 0.2, 4)],
            [(.solarize, 0.6, 5), (.autoContrast, 0.6, 5)],
            [(.invert, 0.6, 4), (.equalize, 1.0, 8)],
            [(.color, 0.6, 4), (.contrast, 1.0, 8)],
            [(.equalize, 0.8, 8), (.equalize, 0.6, 3)],
        ]
        return table.map { $0.map { Step(op: $0.0, probability: $0.1, magnitude: $0.2) } }
    }

    static let threeAugment: [[Step]] = [
        [Step(op: .solarize, probability: 1, magnitude: 5)],
        [Step(op: .desaturate, probability: 1, magnitude: 10)],
        [Step(op: .gaussianBlurRand, probability: 1, magnitude: 10)],
    ]
}
