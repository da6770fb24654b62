#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The token grid of one stage of a model at a given input side (for the memory estimate).
public struct StageShape: Sendable, Equatable {
    /// Query tokens N (patch grid plus any class token).
    public var tokens: Int
    /// Key/value tokens M (N, or fewer after PVT's spatial reduction; 0 for stages without attention).
    public var keyTokens: Int
    /// Token width C.
    public var width: Int
    /// Blocks in the stage.
    public var depth: Int
    public var heads: Int
    /// Hidden width of the MLP.
    public var hidden: Int

    public init(tokens: Int, keyTokens: Int, width: Int, depth: Int, heads: Int, hidden: Int) {
        self.tokens = tokens; self.keyTokens = keyTokens; self.width = width; self.depth = depth
        self.heads = heads; self.hidden = hidden
    }
}

/// Which input sides a family accepts, and the stage grids a side gives (docs/input-validation.md).
///
/// Every rule is plain code that throws: the kernels' own `precondition`s are compiled out by
/// `-Ounchecked`, and a zero-sized grid then divides by zero or writes out of bounds.
public struct InputGeometry: Sendable {
    /// The smallest side that gives every stage a grid of at least one token.
    public let minimumSide: Int
    /// Sides must be a multiple of this (1: any side from the minimum up).
    public let sideMultiple: Int
    /// Why the minimum is what it is, for the error message ("the 16-pixel patch").
    public let reason: String
    /// Stage grids at a side the rule accepts.
    public let stages: @Sendable (_ side: Int) -> [StageShape]

    public init(minimumSide: Int, sideMultiple: Int = 1, reason: String, stages: @escaping @Sendable (_ side: Int) -> [StageShape]) {
        self.minimumSide = minimumSide; self.sideMultiple = sideMultiple; self.reason = reason; self.stages = stages
    }

    /// Largest side checked at all: beyond it every estimate overflows and nothing could fit.
    public static let maximumSide = 1 << 20

    /// Throws unless `side` is a side this family can run.
    public func check(model: String, side: Int) throws(InputGeometryError) {
        guard side >= 1, side <= Self.maximumSide else {
            throw .invalidSide(model: model, side: side, reason: "must be between 1 and \(Self.maximumSide)")
        }
        if side < minimumSide { throw .tooSmall(model: model, side: side, minimum: minimumSide, reason: reason) }
        if side % sideMultiple != 0 {
            let below = side / sideMultiple * sideMultiple, above = below + sideMultiple
            throw .notAMultiple(model: model, side: side, multiple: sideMultiple,
                                nearest: below >= minimumSide ? [below, above] : [above])
        }
    }
}

/// A size or shape a user asked for that the model cannot run.
public enum InputGeometryError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidSide(model: String, side: Int, reason: String)
    case tooSmall(model: String, side: Int, minimum: Int, reason: String)
    case notAMultiple(model: String, side: Int, multiple: Int, nearest: [Int])
    /// The estimated memory of the configuration exceeds what the process may use.
    case outOfMemory(model: String, side: Int, batchSize: Int, training: Bool, neededBytes: Double, availableBytes: Double, limit: String)

    public var description: String {
        switch self {
        case let .invalidSide(m, s, r):
            return "image size \(s) for \(m): \(r)"
        case let .tooSmall(m, s, minimum, r):
            return "image size \(s) is too small for \(m): it needs at least \(minimum) pixels per side (\(r))"
        case let .notAMultiple(m, s, k, nearest):
            return "image size \(s) does not fit \(m): the side must be a multiple of \(k) (try \(nearest.map(String.init).joined(separator: " or ")))"
        case let .outOfMemory(m, s, b, training, need, have, limit):
            return "\(m) at \(s)x\(s) with batch size \(b) needs about \(formatBytes(need)) to \(training ? "train" : "evaluate"), "
                + "more than the \(formatBytes(have)) available (\(limit)); use a smaller image size or batch size"
        }
    }
}

/// `1.5 GB`, `320 MB`.
func formatBytes(_ bytes: Double) -> String {
    if bytes >= 1e12 { return String(format: "%.3g TB", bytes / 1e12) }
    if bytes >= 1e9 { return String(format: "%.3g GB", bytes / 1e9) }
    return String(format: "%.3g MB", bytes / 1e6)
}

// MARK: - Memory estimate

/// A rough lower bound of the memory a configuration needs: weights (with gradients and two
/// optimizer moments when training), and the activations a forward pass keeps — every block's when
/// training, one block's at a time otherwise. Attention scores count `heads · N · M` per sample.
/// It only has to be right about what cannot possibly fit, so it leaves out everything smaller.
public struct MemoryEstimate: Sendable, Equatable {
    public var parameterBytes: Double
    public var activationBytes: Double
    public var totalBytes: Double { parameterBytes + activationBytes }

    public init(stages: [StageShape], batchSize: Int, training: Bool) {
        var parameters = 0.0, kept = 0.0, peak = 0.0
        for s in stages {
            let n = Double(s.tokens), m = Double(s.keyTokens), c = Double(s.width), h = Double(s.hidden)
            parameters += Double(s.depth) * (4 * c * c + 2 * c * h) + n * c
            // Saved per block and sample: LayerNorm inputs/outputs, q/k/v, attention output, the MLP
            // hidden before GELU (Tensor.mlp recomputes the GELU output); the scores and their softmax.
            let block = n * (6 * c + h) + 2 * Double(s.heads) * n * m
            kept += Double(s.depth) * block
            peak = max(peak, s.depth > 0 ? n * (2 * c + h) + n * m : 0)
        }
        let b = Double(max(batchSize, 1))
        parameterBytes = 4 * parameters * (training ? 4 : 1)
        activationBytes = 4 * b * (training ? kept : peak)
    }
}

/// The memory this process may use: physical memory, or the address-space limit when lower.
public enum MemoryLimit {
    public static func available() -> (bytes: Double, source: String) {
        let pages = Double(sysconf(Int32(_SC_PHYS_PAGES))), pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        var best = (bytes: pages > 0 && pageSize > 0 ? pages * pageSize : Double.infinity, source: "physical memory")
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max, Double(limit.rlim_cur) < best.bytes {
            best = (Double(limit.rlim_cur), "address-space limit, ulimit -v")
        }
        return best
    }
}

// MARK: - Registry

extension ModelEntry {
    /// Throws unless the model can run at `options.imageSize` (default: its own size).
    public func checkInput(_ options: ModelOptions) throws(InputGeometryError) {
        try geometry?.check(model: name, side: options.imageSize ?? defaultImageSize)
    }

    /// The memory estimate of this model at `options.imageSize` for `batchSize` samples.
    public func memoryEstimate(_ options: ModelOptions, batchSize: Int, training: Bool) throws(InputGeometryError) -> MemoryEstimate? {
        let side = options.imageSize ?? defaultImageSize
        try checkInput(options)
        guard let geometry else { return nil }
        return MemoryEstimate(stages: geometry.stages(side), batchSize: batchSize, training: training)
    }

    /// Throws unless the model runs at `options.imageSize` and the estimated memory of `batchSize`
    /// samples fits in `available` bytes (default: what the process may use).
    public func checkConfiguration(_ options: ModelOptions, batchSize: Int, training: Bool,
                                   available: (bytes: Double, source: String) = MemoryLimit.available()) throws(InputGeometryError) {
        guard let estimate = try memoryEstimate(options, batchSize: batchSize, training: training) else { return }
        if estimate.totalBytes > available.bytes {
            throw .outOfMemory(model: name, side: options.imageSize ?? defaultImageSize, batchSize: batchSize, training: training,
                               neededBytes: estimate.totalBytes, availableBytes: available.bytes, limit: available.source)
        }
    }

    /// Builds the model after checking its input size: the only way tools should build one for a
    /// size that came from a user.
    public func make(_ options: ModelOptions) throws(InputGeometryError) -> any Classifier {
        try checkInput(options)
        return build(options)
    }
}

// MARK: - Families

extension PiTConfig {
    /// A stride-`stride` patch conv without padding needs at least one full patch; each pooling
    /// stage (3×3, stride 2, padding 1) halves the grid rounding up, so never reaches zero.
    public var inputGeometry: InputGeometry {
        let config = self
        return InputGeometry(minimumSide: patchSize, reason: "the \(patchSize)-pixel patch") { side in
            var grid = config.gridSize(imageSize: side)
            return config.widths.indices.map { s in
                if s > 0 { grid = (grid - 1) / 2 + 1 }
                let n = grid * grid + 1, w = config.widths[s]
                return StageShape(tokens: n, keyTokens: n, width: w, depth: config.depth[s], heads: config.heads[s],
                                  hidden: Int(Double(w) * config.mlpRatio))
            }
        }
    }
}

extension InputGeometry {
    /// A plain transformer on non-overlapping `patch`-pixel patches (ViT, ConViT): the side must be
    /// a whole number of patches; one stage of `grid² + 1` tokens.
    static func patchGrid(patch: Int, width: Int, depth: Int, heads: Int, mlpRatio: Double) -> InputGeometry {
        InputGeometry(minimumSide: patch, sideMultiple: patch, reason: "the \(patch)-pixel patch") { side in
            let n = (side / patch) * (side / patch) + 1
            return [StageShape(tokens: n, keyTokens: n, width: width, depth: depth, heads: heads, hidden: Int(Double(width) * mlpRatio))]
        }
    }
}

extension ViTConfig {
    public var inputGeometry: InputGeometry {
        .patchGrid(patch: patchSize, width: embedDim, depth: depth, heads: heads, mlpRatio: mlpRatio)
    }
}

extension ConViTConfig {
    public var inputGeometry: InputGeometry {
        .patchGrid(patch: patchSize, width: embedDim, depth: depth, heads: heads, mlpRatio: mlpRatio)
    }
}

extension PVTConfig {
    /// The stored position tables are `side/4`, `side/8/2`, … per side (docs/models.md): the last
    /// one is empty below `2 · 16 = 32` pixels, and resizing an empty table writes out of bounds.
    public var inputGeometry: InputGeometry {
        let config = self
        var minimum = 1
        while (0..<4).contains(where: { s in config.withImageSize(minimum).positionGrid(stage: s) < 1 }) { minimum += 1 }
        return InputGeometry(minimumSide: minimum, reason: "its four stages reduce the side \(minimum)-fold before the last position table") { side in
            var grid = side
            return (0..<4).map { s in
                let p = s == 0 ? config.patchSize : 2
                grid = (grid + p - 1) / p
                let sr = max(config.srRatios[s], 1), reduced = (grid + sr - 1) / sr
                let extra = s == 3 ? 1 : 0
                return StageShape(tokens: grid * grid + extra, keyTokens: reduced * reduced + extra, width: config.embedDims[s],
                                  depth: config.depths[s], heads: config.numHeads[s], hidden: config.embedDims[s] * config.mlpRatios[s])
            }
        }
    }

    fileprivate func withImageSize(_ side: Int) -> PVTConfig {
        var c = self
        c.imageSize = side
        return c
    }
}

extension VisformerConfig {
    /// The 7×7 stride-2 stem halves the side; the patch embeddings then divide it by 16 more
    /// (rounding down), so the last stage needs a stem grid of at least 16.
    public var inputGeometry: InputGeometry {
        let config = self
        var minimum = 1
        while config.withImageSize(minimum).grid(stage: 3) < 1 { minimum += 1 }
        return InputGeometry(minimumSide: minimum, reason: "its stem and patch embeddings reduce the side 32-fold") { side in
            let c = config.withImageSize(side)
            return (0..<4).map { s in
                guard s > 0 || c.hasStage0 else { return StageShape(tokens: 0, keyTokens: 0, width: 0, depth: 0, heads: 0, hidden: 0) }
                let g = c.grid(stage: s), n = g * g
                return StageShape(tokens: n, keyTokens: c.attentionStages[s] ? n : 0, width: c.width(stage: s),
                                  depth: c.depths[s], heads: c.attentionStages[s] ? c.numHeads[s] : 0, hidden: c.mlpHidden(stage: s))
            }
        }
    }

    fileprivate func withImageSize(_ side: Int) -> VisformerConfig {
        var c = self
        c.imageSize = side
        return c
    }
}
