import Foundation
import DataPipeline
import Models
import Tensor

/// A checkpoint as the evaluation tools see it: its weights, and what its training run recorded
/// (class names, the resolved recipe beside it).
public struct CheckpointInfo {
    public var weightsPath: String
    public var weights: [String: Tensor]
    public var classNames: [String]?
    public var recipe: Recipe?
    /// Whether `weights` are the run's exponential moving average (from `<stem>.state.safetensors`).
    public var usesEMA = false

    /// Reads a checkpoint given as any of its files (`<stem>.safetensors`, `.state.safetensors`,
    /// `.json`), a run directory (its latest checkpoint), or a plain safetensors file of weights.
    /// With `preferEMA`, a checkpoint of a run that trained with `ema: True` gives its averaged
    /// weights (the ones that run validated and chose its best checkpoint by, as MindCV and timm
    /// evaluate them); buffers the average does not cover keep the model's values.
    /// With `requireEMA`, the averaged weights are loaded whatever the run's recipe said, and a
    /// checkpoint without them is an error (`zoo validate --ema`).
    public init(path: String, modelName: String? = nil, preferEMA: Bool = true, requireEMA: Bool = false) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CheckpointError.notFound(path: path) }
        var metaPath: String? = nil
        if isDir.boolValue || path.hasSuffix(".json") || path.hasSuffix(".state.safetensors") {
            let p = try CheckpointManager.resolve(path, modelName: modelName)
            weightsPath = p.weights; metaPath = p.meta
        } else {
            weightsPath = path
            let stem = String(path.dropLast((path as NSString).pathExtension.count + 1))
            if FileManager.default.fileExists(atPath: stem + ".json") { metaPath = stem + ".json" }
        }
        let loaded = try loadWeights(path: weightsPath, modelName: modelName)  // safetensors or MindSpore .ckpt, by content
        weights = loaded.stateDict; for note in loaded.notes { FileHandle.standardError.write(Data((note + "\n").utf8)) }
        if let metaPath, let data = FileManager.default.contents(atPath: metaPath),
           let state = try? JSONDecoder().decode(TrainingState.self, from: data) {
            classNames = state.classNames.isEmpty ? nil : state.classNames
            let recipePath = ((weightsPath as NSString).deletingLastPathComponent as NSString).appendingPathComponent("\(state.model).yaml")
            if FileManager.default.fileExists(atPath: recipePath) { recipe = try? Recipe.load(yamlPath: recipePath) }
        }
        let paths = CheckpointPaths(directory: (weightsPath as NSString).deletingLastPathComponent,
                                    stem: ((weightsPath as NSString).lastPathComponent as NSString).deletingPathExtension)
        if requireEMA || (preferEMA && recipe?.ema == true), FileManager.default.fileExists(atPath: paths.state) {
            let averaged = try CheckpointManager.weights(paths, ema: true)
            if !averaged.isEmpty {
                weights.merge(averaged) { _, ema in ema }
                usesEMA = true
            }
        }
        if requireEMA && !usesEMA {
            throw CheckpointError.notFound(path: paths.state + " (EMA weights of \(weightsPath); the run did not train with ema: True)")
        }
    }
}

/// Evaluation-transform settings: each nil falls back to the training recipe beside the checkpoint,
/// then to the model's default data config.
public struct EvalSettings: Sendable {
    public var imageResize: Int?
    public var cropPct: Double?
    public var interpolation: String?
    /// On the 0–255 scale, as in MindCV recipes.
    public var mean: [Double]?
    public var std: [Double]?
    public init(imageResize: Int? = nil, cropPct: Double? = nil, interpolation: String? = nil, mean: [Double]? = nil, std: [Double]? = nil) {
        self.imageResize = imageResize; self.cropPct = cropPct; self.interpolation = interpolation; self.mean = mean; self.std = std
    }

    /// The settings with every value filled in.
    public func resolved(entry: ModelEntry, recipe: Recipe?) -> (size: Int, cropPct: Double, interpolation: String, mean: [Double], std: [Double]) {
        let dc = entry.dataConfig
        return (imageResize ?? recipe?.imageResize ?? dc.inputSize[2],
                cropPct ?? recipe?.cropPct ?? dc.cropPct,
                interpolation ?? recipe?.interpolation ?? dc.interpolation,
                mean ?? recipe?.mean ?? dc.mean.map { $0 * 255 },
                std ?? recipe?.std ?? dc.std.map { $0 * 255 })
    }
}

/// One image's prediction.
public struct Prediction: Codable, Sendable {
    public var path: String
    public var topk: [Int]
    public var classNames: [String]?
    public var probs: [Double]
    public var logits: [Double]
}

/// Model loading, validation and prediction for `zoo validate` / `zoo predict`.
public final class InferenceSession {
    public let entry: ModelEntry
    public let model: any Classifier
    public let transform: EvalTransform
    public let classNames: [String]?
    public let numClasses: Int
    /// Whether the checkpoint's EMA weights were loaded (runs trained with `ema: True`).
    public let usesEMA: Bool
    /// The weights file loaded (nil with random weights).
    public let weightsPath: String?

    /// Builds `modelName` sized for the checkpoint (class count from its classifier, input size
    /// from the settings) and loads the weights strictly. Without a checkpoint the model keeps its
    /// initial weights, and only when `randomWeights` asks for it (smoke tests). Settings, the input
    /// size and the weights' values are checked first (docs/input-validation.md).
    /// `numerics` (else the recipe's, else the name's own) also picks the data config. `recipe`
    /// (e.g. `zoo validate -c RECIPE`) takes the place of the recipe saved beside the checkpoint;
    /// `ema` true requires the checkpoint's EMA weights, false loads the raw ones, nil follows the
    /// run's recipe.
    public init(modelName: String, checkpoint: String?, settings: EvalSettings = EvalSettings(), classes: Int? = nil,
                numerics: Numerics? = nil, randomWeights: Bool = false, batchSize: Int = 1,
                recipe: Recipe? = nil, ema: Bool? = nil) throws {
        var entry = try ModelRegistry.entry(modelName)
        try settings.check()
        guard checkpoint != nil || randomWeights else { throw EvaluationError.noWeights(model: modelName) }
        var info = try checkpoint.map { try CheckpointInfo(path: $0, modelName: modelName, preferEMA: ema ?? true, requireEMA: ema == true) }
        if let info { try EvaluationError.checkFinite(info.weights, source: info.weightsPath) }
        if let recipe { info?.recipe = recipe }
        if let n = numerics ?? info?.recipe?.numerics.flatMap(Numerics.init(rawValue:)) { entry = entry.with(numerics: n) }
        self.entry = entry
        let s = settings.resolved(entry: entry, recipe: info?.recipe)
        let headBias = info?.weights[entry.dataConfig.classifier + ".bias"]?.shape.first
        let numClasses = classes ?? headBias ?? info?.classNames?.count ?? 1000
        self.numClasses = numClasses
        usesEMA = info?.usesEMA ?? false
        let trainSize = info?.recipe?.imageResize ?? s.size
        let options = ModelOptions(numClasses: numClasses, inChannels: (recipe ?? info?.recipe)?.inChannels ?? 3, imageSize: trainSize)
        try entry.checkConfiguration(options, batchSize: batchSize, training: false)
        if s.size != trainSize {
            // The model's position tables are sized for the training side; a larger or smaller input
            // would run past them (the forward pass's own shape checks are compiled out).
            throw EvaluationError.invalidSetting(key: "image_resize", reason:
                "\(s.size) differs from the \(trainSize) px the checkpoint was trained at; evaluate at \(trainSize)")
        }
        if let info {
            model = Initializer.withoutInitialization { entry.build(options) }
            try model.load(stateDict: info.weights, strict: true, source: info.weightsPath)
        } else {
            model = entry.build(options)
        }
        model.eval()
        classNames = info?.classNames
        weightsPath = info?.weightsPath
        transform = try EvalTransform(imageSize: s.size, cropPct: s.cropPct, interpolation: Interpolation(mindcv: s.interpolation),
                                      mean: s.mean, std: s.std)
    }

    /// Top-1/top-5 over `dataDir/split`.
    /// `observe` sees every batch's logits and labels (per-class reports).
    public func validate(dataDir: String, split: String = "val", batchSize: Int = 64, workers: Int = 4,
                         progress: ((Int, Int) -> Void)? = nil, observe: ((_ logits: Tensor, _ labels: [Int]) -> Void)? = nil) throws -> EvaluationCounts {
        let set = try ImageFolder(root: dataDir, split: split)
        if numClasses > 0, set.classes.count > numClasses {
            throw EvaluationError.headTooSmall(split: (dataDir as NSString).appendingPathComponent(split), folders: set.classes.count, headClasses: numClasses,
                                               weights: weightsPath)
        }
        if let classNames, classNames != set.classes {
            throw TrainingError.invalidRecipe(key: "data_dir", reason: "the class folders of \(dataDir)/\(split) differ from the \(classNames.count) classes the checkpoint was trained on")
        }
        let loader = try DataLoader(dataset: set, transform: transform, options: .evaluation(batchSize: batchSize, numParallelWorkers: workers))
        return try Evaluator.evaluate(model: model, loader: loader, progress: progress, observe: observe)
    }

    /// Predictions for image files (folders are searched for .jpg/.jpeg/.png; names are bytes); the
    /// first unreadable input is an error (`predictBatched` reports them and goes on).
    public func predict(_ inputs: [String], topk: Int = 5) throws -> [Prediction] {
        let results = predictBatched(inputs, topk: topk)
        if let bad = results.unreadable.first { throw DataError.unreadable(path: bad.path, reason: bad.reason) }
        return results.predictions
    }
}
