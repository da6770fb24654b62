import Foundation
import Models
import Tensor

/// Everything besides tensors that a resumed run needs (stored as JSON beside the checkpoint).
public struct TrainingState: Codable, Equatable, Sendable {
    /// The 0-based epoch this checkpoint belongs to: completed (an epoch checkpoint; the run goes on
    /// with the next one), or in progress with `partialEpoch.steps` steps done (a recovery checkpoint).
    public var epoch: Int
    /// Data steps (micro-batches) done = the LR-schedule index of the next step.
    public var globalStep: Int
    /// Optimizer updates applied (Adam's bias-correction t).
    public var optimizerSteps: Int
    /// EMA updates applied (the EMA warm-up counter), when EMA is on.
    public var emaUpdates: Int?
    /// Named generator states (data sampler, augmentation, model dropout, …).
    public var rng: [String: RandomGenerator]
    /// This epoch's validation metric (Top-1, percent), ranks checkpoints under `top_k`.
    public var metric: Double?
    public var bestMetric: Double?
    public var bestEpoch: Int?
    public var classNames: [String]
    public var model: String
    /// Free-form extras (e.g. the resolved recipe, the optimizer name).
    public var extra: [String: String]
    /// Top-5 of the best epoch.
    public var bestTop5: Double?
    /// Data steps per epoch of the run that wrote it (a recovery checkpoint needs the same).
    public var stepsPerEpoch: Int?
    /// Set in a recovery checkpoint: how far into `epoch` the run got.
    public var partialEpoch: PartialEpoch?

    /// A recovery checkpoint's position inside its epoch and the epoch's running sums on rank 0.
    public struct PartialEpoch: Codable, Equatable, Sendable {
        /// Data steps of the epoch done (batches consumed), 1 ≤ steps < steps per epoch.
        public var steps: Int
        /// Sum of per-sample training losses and the number of samples so far.
        public var lossSum: Double
        public var samples: Int
        /// Images replaced so far.
        public var skipped: Int

        public init(steps: Int, lossSum: Double, samples: Int, skipped: Int) {
            self.steps = steps; self.lossSum = lossSum; self.samples = samples; self.skipped = skipped
        }
    }

    /// Epochs fully done at this checkpoint.
    public var epochsDone: Int { partialEpoch == nil ? epoch + 1 : epoch }

    public init(epoch: Int, globalStep: Int, optimizerSteps: Int, emaUpdates: Int? = nil, rng: [String: RandomGenerator] = [:],
                metric: Double? = nil, bestMetric: Double? = nil, bestEpoch: Int? = nil, classNames: [String] = [],
                model: String, extra: [String: String] = [:]) {
        self.epoch = epoch; self.globalStep = globalStep; self.optimizerSteps = optimizerSteps; self.emaUpdates = emaUpdates
        self.rng = rng; self.metric = metric; self.bestMetric = bestMetric; self.bestEpoch = bestEpoch
        self.classNames = classNames; self.model = model; self.extra = extra
    }
}

/// The three files of one checkpoint. The JSON is written last and is the commit marker: a
/// checkpoint without it (or with a missing tensor file) is incomplete and ignored.
public struct CheckpointPaths: Equatable, Sendable {
    /// `<dir>/<stem>.safetensors`: model parameters and buffers under canonical names.
    public var weights: String
    /// `<dir>/<stem>.state.safetensors`: `optimizer.<slot>.<name>` moments and `ema.<name>` weights.
    public var state: String
    /// `<dir>/<stem>.json`: `TrainingState`.
    public var meta: String

    public init(directory: String, stem: String) {
        let base = (directory as NSString).appendingPathComponent(stem)
        weights = base + ".safetensors"; state = base + ".state.safetensors"; meta = base + ".json"
    }

    public var files: [String] { [weights, state, meta] }
    public var isComplete: Bool { files.allSatisfy { FileManager.default.fileExists(atPath: $0) } }
}

public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case notFound(path: String)
    case noCheckpoint(directory: String)
    case incomplete(path: String, missing: [String])
    case ambiguous(directory: String, models: [String])
    case badMetadata(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    /// A training-state file whose field is out of range or contradicts another (hand-edited or corrupt).
    case badField(path: String, field: String, reason: String)

    public var description: String {
        switch self {
        case let .notFound(p): return "\(p): no such checkpoint file or directory"
        case let .noCheckpoint(d): return "\(d): no complete checkpoint to resume from"
        case let .incomplete(p, m): return "\(p): incomplete checkpoint, missing \(m.joined(separator: ", "))"
        case let .ambiguous(d, ms): return "\(d): checkpoints of several models (\(ms.joined(separator: ", "))); name the file to resume from"
        case let .badMetadata(p, r): return "\(p): unreadable training state: \(r)"
        case let .writeFailed(p, r): return "\(p): cannot write checkpoint: \(r)"
        case let .badField(p, f, r):
            return "\(p): field '\(f)' \(r); refusing to resume from this checkpoint (move its files away to resume from an older one)"
        }
    }
}

/// Saves, prunes and finds training checkpoints in `ckpt_save_dir` (docs/training.md §9):
/// `<model>-<epoch>.{safetensors,state.safetensors,json}` every save, `<model>_best.*` on a new best,
/// `<model>.yaml` (the resolved recipe), and recovery checkpoints inside epochs
/// (RecoveryCheckpoints.swift, docs/training.md §9.1). Every file is written to a temporary sibling and renamed;
/// the JSON goes last, so a failed or interrupted save leaves the previous checkpoints intact and
/// resolvable. Retention (`ckpt_save_policy`) applies to the periodic checkpoints only.
public final class CheckpointManager {
    public enum Policy: Equatable, Sendable {
        /// Keep the K most recent (by epoch).
        case latestK(Int)
        /// Keep the K with the highest metric; ties and lower values do not displace kept ones.
        case topK(Int)
        case keepAll

        /// From `ckpt_save_policy` (nil = keep all) and `keep_checkpoint_max`.
        public init(name: String?, keep: Int) {
            switch name {
            case "top_k": self = .topK(keep)
            case nil: self = .keepAll
            default: self = .latestK(keep)
            }
        }
    }

    public struct Entry: Equatable, Sendable {
        public var epoch: Int
        public var metric: Double?
        public var paths: CheckpointPaths
    }

    public let directory: String
    public let modelName: String
    public let policy: Policy
    /// The periodic checkpoints kept, oldest epoch first.
    public private(set) var entries: [Entry] = []

    /// Test hook: called with each path just before it is written.
    var beforeWrite: ((String) throws -> Void)? = nil

    public init(directory: String, modelName: String, policy: Policy) throws {
        self.directory = directory; self.modelName = modelName; self.policy = policy
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw CheckpointError.writeFailed(path: directory, reason: error.localizedDescription)
        }
        entries = Self.scan(directory: directory).filter { $0.model == modelName }.map { $0.entry }
    }

    public convenience init(recipe: Recipe) throws {
        try self.init(directory: recipe.ckptSaveDir, modelName: recipe.model,
                      policy: Policy(name: recipe.ckptSavePolicy, keep: recipe.keepCheckpointMax))
    }

    public func paths(epoch: Int) -> CheckpointPaths { CheckpointPaths(directory: directory, stem: "\(modelName)-\(epoch)") }
    public var bestPaths: CheckpointPaths { CheckpointPaths(directory: directory, stem: "\(modelName)_best") }
    public var recipePath: String { (directory as NSString).appendingPathComponent("\(modelName).yaml") }

    /// Writes the resolved recipe to `<dir>/<model>.yaml`.
    public func writeRecipe(_ recipe: Recipe, worldSize: Int = 1) throws {
        try beforeWrite?(recipePath)
        try recipe.writeResolved(to: recipePath, worldSize: worldSize)
    }

    /// Saves the periodic checkpoint of `state.epoch`, then prunes per policy. Returns its paths.
    @discardableResult
    public func save(model: any Module, optimizer: (any Optimizer)?, ema: ExponentialMovingAverage?,
                     state: TrainingState) throws -> CheckpointPaths {
        let p = paths(epoch: state.epoch)
        try write(p, model: model, optimizer: optimizer, ema: ema, state: state)
        entries.removeAll { $0.epoch == state.epoch }
        entries.append(Entry(epoch: state.epoch, metric: state.metric, paths: p))
        entries.sort { $0.epoch < $1.epoch }
        prune()
        return p
    }

    /// Saves `<model>_best.*` (not subject to retention).
    @discardableResult
    public func saveBest(model: any Module, optimizer: (any Optimizer)?, ema: ExponentialMovingAverage?,
                         state: TrainingState) throws -> CheckpointPaths {
        try write(bestPaths, model: model, optimizer: optimizer, ema: ema, state: state)
        return bestPaths
    }

    func write(_ p: CheckpointPaths, model: any Module, optimizer: (any Optimizer)?, ema: ExponentialMovingAverage?,
               state: TrainingState) throws {
        // Un-commit a previous checkpoint of the same name first: a failure below must not leave
        // its JSON pointing at a mix of old and new tensor files.
        try? FileManager.default.removeItem(atPath: p.meta)
        var stateTensors: [String: Tensor] = [:]
        if let optimizer { for (k, t) in optimizer.stateTensors() { stateTensors["optimizer." + k] = t } }
        if let ema { stateTensors.merge(ema.stateTensors()) { a, _ in a } }
        var st = state
        st.optimizerSteps = optimizer?.stepCount ?? state.optimizerSteps
        if let ema { st.emaUpdates = ema.updates }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let json = try encoder.encode(st)
            try beforeWrite?(p.weights)
            try SafeTensorsFile.write(model.stateDict(), metadata: ["format": "pt", "model": modelName, "epoch": "\(state.epoch)"], to: p.weights)
            try beforeWrite?(p.state)
            try SafeTensorsFile.write(stateTensors, metadata: ["model": modelName, "epoch": "\(state.epoch)"], to: p.state)
            try beforeWrite?(p.meta)
            try writeAtomically(json, to: p.meta)
        } catch {
            for f in p.files { try? FileManager.default.removeItem(atPath: f) }
            throw CheckpointError.writeFailed(path: p.meta, reason: "\(error)")
        }
    }

    func prune() {
        var drop: [Entry] = []
        switch policy {
        case .keepAll: return
        case let .latestK(k):
            if entries.count > k { drop = Array(entries.prefix(entries.count - k)) }
        case let .topK(k):
            guard entries.count > k else { return }
            // Rank by metric (missing = worst), earlier epoch first on ties: the newcomer loses ties.
            let ranked = entries.sorted { a, b in
                let ma = a.metric ?? -.infinity, mb = b.metric ?? -.infinity
                return ma != mb ? ma > mb : a.epoch < b.epoch
            }
            drop = Array(ranked.suffix(from: k))
        }
        for e in drop {
            try? FileManager.default.removeItem(atPath: e.paths.meta)  // un-commit first
            try? FileManager.default.removeItem(atPath: e.paths.weights)
            try? FileManager.default.removeItem(atPath: e.paths.state)
        }
        let dropped = Set(drop.map { $0.epoch })
        entries.removeAll { dropped.contains($0.epoch) }
    }

    // MARK: finding and loading

    /// Complete periodic checkpoints in `directory`: `<model>-<epoch>.json` with both tensor files.
    static func scan(directory: String) -> [(model: String, entry: Entry)] {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var out: [(String, Entry)] = []
        for f in files where f.hasSuffix(".json") && !f.hasPrefix(".") {
            let stem = String(f.dropLast(5))
            guard let dash = stem.lastIndex(of: "-"), let epoch = Int(stem[stem.index(after: dash)...]) else { continue }
            let p = CheckpointPaths(directory: directory, stem: stem)
            guard p.isComplete, let st = try? readState(p.meta) else { continue }
            out.append((String(stem[..<dash]), Entry(epoch: epoch, metric: st.metric, paths: p)))
        }
        return out.sorted { ($0.0, $0.1.epoch) < ($1.0, $1.1.epoch) }
    }

    static func readState(_ path: String) throws -> TrainingState {
        guard let data = FileManager.default.contents(atPath: path) else { throw CheckpointError.notFound(path: path) }
        do { return try JSONDecoder().decode(TrainingState.self, from: data) } catch {
            throw CheckpointError.badMetadata(path: path, reason: "\(error)")
        }
    }

    /// Finds the checkpoint `--resume DIR_OR_FILE` means: a directory gives its latest complete
    /// checkpoint (of `modelName` when given); a file may be any of a checkpoint's three files.
    public static func resolve(_ path: String, modelName: String? = nil) throws -> CheckpointPaths {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CheckpointError.notFound(path: path) }
        if isDir.boolValue {
            var found = scan(directory: path)
            if let modelName { found = found.filter { $0.model == modelName } }
            let models = Set(found.map { $0.model })
            if models.count > 1 { throw CheckpointError.ambiguous(directory: path, models: models.sorted()) }
            guard let last = found.max(by: { $0.entry.epoch < $1.entry.epoch }) else {
                throw CheckpointError.noCheckpoint(directory: path)
            }
            return last.entry.paths
        }
        let name = (path as NSString).lastPathComponent
        var stem = name
        for suffix in [".state.safetensors", ".safetensors", ".json"] where stem.hasSuffix(suffix) {
            stem = String(stem.dropLast(suffix.count))
            break
        }
        let p = CheckpointPaths(directory: (path as NSString).deletingLastPathComponent, stem: stem)
        let missing = p.files.filter { !FileManager.default.fileExists(atPath: $0) }
        if !missing.isEmpty { throw CheckpointError.incomplete(path: path, missing: missing.map { ($0 as NSString).lastPathComponent }) }
        return p
    }

    /// Restores a checkpoint: model weights (strict: any missing, unexpected or mis-shaped tensor
    /// throws `StateDictMismatch` naming it with both shapes), optimizer moments and update count
    /// (when `optimizer` is given), EMA weights and counter (when `ema` is given). Returns the
    /// training state (epoch, global step, RNG states, best metric, class names).
    @discardableResult
    public static func load(_ p: CheckpointPaths, model: any Module, optimizer: (any Optimizer)?,
                            ema: ExponentialMovingAverage?) throws -> TrainingState {
        let state = try readState(p.meta)
        let weights = try SafeTensorsFile(path: p.weights)
        try model.load(stateDict: weights.tensors, strict: true, source: p.weights)
        guard optimizer != nil || ema != nil else { return state }
        let stateFile = try SafeTensorsFile(path: p.state)
        if let optimizer {
            var t: [String: Tensor] = [:]
            for (k, v) in stateFile.tensors where k.hasPrefix("optimizer.") { t[String(k.dropFirst("optimizer.".count))] = v }
            try optimizer.loadState(tensors: t, stepCount: state.optimizerSteps)
        }
        if let ema {
            try ema.loadState(tensors: stateFile.tensors.filter { $0.key.hasPrefix("ema.") }, updates: state.emaUpdates ?? 0)
        }
        return state
    }

    /// The weights of a checkpoint for evaluation: the model's, or with `ema` the averaged ones.
    public static func weights(_ p: CheckpointPaths, ema: Bool = false) throws -> [String: Tensor] {
        guard ema else { return try SafeTensorsFile(path: p.weights).tensors }
        var out: [String: Tensor] = [:]
        for (k, v) in try SafeTensorsFile(path: p.state).tensors where k.hasPrefix("ema.") { out[String(k.dropFirst(4))] = v }
        return out
    }
}
