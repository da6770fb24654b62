import Tensor

/// Batch-level Mixup / CutMix as MindCV runs it (timm `Mixup` in "batch" mode; docs/training.md §6.9).
///
/// Per batch: with probability `cutmixProb` the batch is mixed, otherwise λ = 1. When both alphas are
/// positive, CutMix is chosen with probability `switchProb` (MindCV fixes 0.5), else the one with a
/// positive alpha; λ ~ Beta(α, α). Sample i is paired with sample B−1−i (the reversed batch).
/// Mixup: `x ← λ·x + (1−λ)·x_rev`. CutMix: a box of side ⌊H·√(1−λ)⌋ × ⌊W·√(1−λ)⌋ around a uniform
/// centre, clipped to the image, is copied from the partner, and λ is corrected to the uncovered area.
/// Targets: `λ·onehot(y) + (1−λ)·onehot(y_rev)`, with optional label smoothing (off = s/K,
/// on = 1 − s + off). MindCV smooths in the loss instead, so leave `labelSmoothing` at 0 when the
/// loss does. Unlike MindCV an odd batch is allowed (its middle sample pairs with itself).
public struct MixupCutmix: Sendable, Equatable {
    public let mixupAlpha: Double
    public let cutmixAlpha: Double
    /// Probability that a batch is mixed at all (MindCV `cutmix_prob`).
    public let mixProbability: Double
    /// Probability of CutMix rather than Mixup when both are enabled.
    public let switchProbability: Double
    public let labelSmoothing: Double
    public let numClasses: Int

    public init(mixupAlpha: Double, cutmixAlpha: Double, cutmixProb: Double = 1, switchProb: Double = 0.5,
                labelSmoothing: Double = 0, numClasses: Int) throws(DataError) {
        guard mixupAlpha >= 0, mixupAlpha.isFinite else { throw .invalidConfig(key: "mixup", reason: "must be ≥ 0, got \(mixupAlpha)") }
        guard cutmixAlpha >= 0, cutmixAlpha.isFinite else { throw .invalidConfig(key: "cutmix", reason: "must be ≥ 0, got \(cutmixAlpha)") }
        guard (0...1).contains(cutmixProb) else { throw .invalidConfig(key: "cutmix_prob", reason: "must be in [0, 1], got \(cutmixProb)") }
        guard (0...1).contains(switchProb) else { throw .invalidConfig(key: "switch_prob", reason: "must be in [0, 1], got \(switchProb)") }
        guard (0..<1).contains(labelSmoothing) else { throw .invalidConfig(key: "label_smoothing", reason: "must be in [0, 1), got \(labelSmoothing)") }
        guard numClasses > 0 else { throw .invalidConfig(key: "num_classes", reason: "must be > 0, got \(numClasses)") }
        self.mixupAlpha = mixupAlpha
        self.cutmixAlpha = cutmixAlpha
        mixProbability = cutmixProb
        switchProbability = switchProb
        self.labelSmoothing = labelSmoothing
        self.numClasses = numClasses
    }

    /// Mixup or CutMix is enabled (`mixup + cutmix > 0`).
    public var isActive: Bool { mixupAlpha > 0 || cutmixAlpha > 0 }

    /// What happened to one batch.
    public struct Outcome: Sendable, Equatable {
        public enum Mode: Sendable, Equatable { case none, mixup, cutmix }
        public var mode: Mode
        /// The (corrected) weight of each sample's own label.
        public var lambda: Double
        /// The CutMix box (rows/columns copied from the partner), if any.
        public var box: PixelRect?
    }

    /// Draws this batch's decision (mode, λ, box) for images of `height x width`.
    public func draw(height: Int, width: Int, rng: inout RandomGenerator) -> Outcome {
        guard isActive, rng.nextDouble() < mixProbability else { return Outcome(mode: .none, lambda: 1, box: nil) }
        let useCutmix: Bool
        if mixupAlpha > 0 && cutmixAlpha > 0 {
            useCutmix = rng.nextDouble() < switchProbability
        } else {
            useCutmix = cutmixAlpha > 0
        }
        if !useCutmix {
            return Outcome(mode: .mixup, lambda: rng.beta(mixupAlpha, mixupAlpha), box: nil)
        }
        let lam = rng.beta(cutmixAlpha, cutmixAlpha)
        let rho = (1 - lam).squareRoot()
        let ch = Int(Double(height) * rho), cw = Int(Double(width) * rho)
        let cy = rng.nextInt(below: height), cx = rng.nextInt(below: width)
        let y0 = min(max(cy - ch / 2, 0), height), y1 = min(max(cy + ch / 2, 0), height)
        let x0 = min(max(cx - cw / 2, 0), width), x1 = min(max(cx + cw / 2, 0), width)
        let box = PixelRect(x: x0, y: y0, width: x1 - x0, height: y1 - y0)
        let corrected = 1 - Double(box.width * box.height) / Double(height * width)
        return Outcome(mode: .cutmix, lambda: corrected, box: box)
    }

    /// Mixes `images` `[B, C, H, W]` in place (batch-level, partner = reversed batch) and returns the
    /// soft targets `[B, numClasses]` and what was done. Batches of one sample are never mixed.
    public func apply(images: inout Tensor, labels: [Int], rng: inout RandomGenerator) -> (targets: Tensor, outcome: Outcome) {
        precondition(images.rank == 4 && images.shape[0] == labels.count, "mixup: images [B, C, H, W] and B labels")
        let b = labels.count, c = images.shape[1], h = images.shape[2], w = images.shape[3]
        var outcome = Outcome(mode: .none, lambda: 1, box: nil)
        if b > 1 { outcome = draw(height: h, width: w, rng: &rng) }
        let plane = h * w, sample = c * plane
        switch outcome.mode {
        case .none:
            break
        case .mixup:
            let lam = Float(outcome.lambda), rest = 1 - lam
            images.withUnsafeMutableBuffer { buffer in
                let p = buffer.baseAddress!
                for i in 0..<(b / 2) {
                    let x = p + i * sample, y = p + (b - 1 - i) * sample
                    for k in 0..<sample {
                        let xv = x[k], yv = y[k]
                        x[k] = lam * xv + rest * yv
                        y[k] = lam * yv + rest * xv
                    }
                }
            }
        case .cutmix:
            if let box = outcome.box, box.width > 0, box.height > 0 {
                images.withUnsafeMutableBuffer { buffer in
                    let p = buffer.baseAddress!
                    for i in 0..<(b / 2) {
                        for ch in 0..<c {
                            for y in box.y..<(box.y + box.height) {
                                let a = p + i * sample + ch * plane + y * w + box.x
                                let z = p + (b - 1 - i) * sample + ch * plane + y * w + box.x
                                for k in 0..<box.width { let t = a[k]; a[k] = z[k]; z[k] = t }
                            }
                        }
                    }
                }
            }
        }
        return (targets(labels: labels, lambda: outcome.lambda), outcome)
    }

    /// `λ·onehot(y) + (1−λ)·onehot(y_reversed)` with label smoothing, `[B, numClasses]`.
    public func targets(labels: [Int], lambda: Double) -> Tensor {
        let b = labels.count, k = numClasses
        let off = Float(labelSmoothing / Double(k)), on = Float(1 - labelSmoothing) + off
        let t = Tensor.full([b, k], 0)
        let p = t.storage.pointer
        let lam = Float(lambda)
        for i in 0..<b {
            let row = p + i * k
            for j in 0..<k { row[j] = off }
            let own = labels[i], partner = labels[b - 1 - i]
            precondition(own >= 0 && own < k && partner >= 0 && partner < k, "label out of range 0..<\(k)")
            row[own] += lam * (on - off)
            row[partner] += (1 - lam) * (on - off)
        }
        return t
    }
}
