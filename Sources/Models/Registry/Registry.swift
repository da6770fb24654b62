import Tensor

/// Construction options every zoo model accepts.
public struct ModelOptions: Sendable, Equatable {
    public var numClasses: Int = 1000
    public var inChannels: Int = 3
    /// Input side length; nil means the variant's default (224, or 384 for the *_384 ViTs).
    public var imageSize: Int? = nil
    public var dropRate: Float = 0
    public var dropPathRate: Float = 0
    public var attnDropRate: Float = 0
    /// Seed of the weight initialisation and of the model's dropout generator.
    public var seed: UInt64 = 0
    public init(numClasses: Int = 1000, inChannels: Int = 3, imageSize: Int? = nil, dropRate: Float = 0,
                dropPathRate: Float = 0, attnDropRate: Float = 0, seed: UInt64 = 0) {
        self.numClasses = numClasses; self.inChannels = inChannels; self.imageSize = imageSize
        self.dropRate = dropRate; self.dropPathRate = dropPathRate; self.attnDropRate = attnDropRate; self.seed = seed
    }
}

/// How the model card counted parameters (docs/models.md §1).
public enum ParamCountingRule: String, Sendable, Codable {
    /// All trainable parameters, head included (PiT, PVT, ConViT).
    case total
    /// Trainable parameters without the classifier head (ViT).
    case headExcluded = "head excluded"
    /// Trainable parameters plus BatchNorm running statistics (Visformer).
    case withBufferStatistics = "with BatchNorm running statistics"
}

/// The published model-card figures (docs/published.md).
public struct PublishedFigures: Sendable, Equatable {
    public var top1: Double, top5: Double, paramsM: Double
}

/// One registered variant: its name, family, default data config and builder.
public struct ModelEntry: Sendable {
    public let name: String
    public let family: String
    public let dataConfig: DataConfig
    public let countingRule: ParamCountingRule
    /// The default input side (224 or 384).
    public let defaultImageSize: Int
    /// Image sides the family accepts other than the default (nil: any multiple the family allows).
    public let build: @Sendable (ModelOptions) -> any Classifier

    public init(name: String, family: String, dataConfig: DataConfig, countingRule: ParamCountingRule,
                defaultImageSize: Int = 224, build: @escaping @Sendable (ModelOptions) -> any Classifier) {
        self.name = name; self.family = family; self.dataConfig = dataConfig; self.countingRule = countingRule
        self.defaultImageSize = defaultImageSize; self.build = build
    }

    public var published: PublishedFigures? { ModelRegistry.published[name] }
}

public enum ModelRegistryError: Error, CustomStringConvertible, Equatable {
    case unknownModel(String, suggestions: [String])
    public var description: String {
        switch self {
        case let .unknownModel(n, s):
            return "unknown model '\(n)'" + (s.isEmpty ? "" : "; did you mean \(s.map { "'\($0)'" }.joined(separator: ", "))?") +
                " (`zoo list` prints every registered name)"
        }
    }
}

/// The zoo: one explicit list of every registered variant.
public enum ModelRegistry {
    public static let entries: [ModelEntry] = pitEntries + vitEntries + pvtEntries + convitEntries + visformerEntries

    public static var names: [String] { entries.map { $0.name } }

    public static func entry(_ name: String) throws -> ModelEntry {
        if let e = entries.first(where: { $0.name == name }) { return e }
        throw ModelRegistryError.unknownModel(name, suggestions: closest(to: name, among: names))
    }

    /// Builds a registered model by name.
    public static func create(_ name: String, options: ModelOptions = ModelOptions()) throws -> any Classifier {
        try entry(name).build(options)
    }

    /// The published figures of record (docs/published.md).
    public static let published: [String: PublishedFigures] = [
        "pit_ti": .init(top1: 72.96, top5: 91.33, paramsM: 4.85),
        "pit_xs": .init(top1: 78.41, top5: 94.06, paramsM: 10.61),
        "pit_s": .init(top1: 80.56, top5: 94.80, paramsM: 23.46),
        "pit_b": .init(top1: 81.87, top5: 95.04, paramsM: 73.76),
        "vit_b_32_224": .init(top1: 75.86, top5: 92.08, paramsM: 87.46),
        "vit_l_16_224": .init(top1: 76.34, top5: 92.79, paramsM: 303.31),
        "vit_l_32_224": .init(top1: 73.71, top5: 90.92, paramsM: 305.52),
        "pvt_tiny": .init(top1: 74.81, top5: 92.18, paramsM: 13.23),
        "pvt_small": .init(top1: 79.66, top5: 94.71, paramsM: 24.49),
        "pvt_medium": .init(top1: 81.82, top5: 95.81, paramsM: 44.21),
        "pvt_large": .init(top1: 81.75, top5: 95.70, paramsM: 61.36),
        "convit_tiny": .init(top1: 73.66, top5: 91.72, paramsM: 5.71),
        "convit_tiny_plus": .init(top1: 77.00, top5: 93.60, paramsM: 9.97),
        "convit_small": .init(top1: 81.63, top5: 95.59, paramsM: 27.78),
        "convit_small_plus": .init(top1: 81.80, top5: 95.42, paramsM: 48.98),
        "convit_base": .init(top1: 82.10, top5: 95.52, paramsM: 86.54),
        "convit_base_plus": .init(top1: 81.96, top5: 95.04, paramsM: 153.13),
        "visformer_tiny": .init(top1: 78.28, top5: 94.15, paramsM: 10.33),
        "visformer_tiny_v2": .init(top1: 78.82, top5: 94.41, paramsM: 9.38),
        "visformer_small": .init(top1: 81.73, top5: 95.88, paramsM: 40.25),
        "visformer_small_v2": .init(top1: 82.17, top5: 95.90, paramsM: 23.52),
    ]
}

/// Parameter counts of a built model under the three counting rules.
public struct ParameterCounts: Sendable, Equatable, Codable {
    public var trainable: Int
    /// Trainable plus buffers (BatchNorm running statistics).
    public var stored: Int
    /// Trainable without the classifier head.
    public var withoutHead: Int

    public init(model: any Classifier, classifierName: String) {
        trainable = model.trainableParameterCount
        stored = model.storedParameterCount
        let head = model.namedParameters().filter { $0.name.hasPrefix(classifierName + ".") }.reduce(0) { $0 + $1.parameter.value.count }
        withoutHead = trainable - head
    }

    public func count(for rule: ParamCountingRule) -> Int {
        switch rule {
        case .total: return trainable
        case .headExcluded: return withoutHead
        case .withBufferStatistics: return stored
        }
    }
}

/// Registered names closest to `name` by edit distance (and shared prefix), best first.
public func closest(to name: String, among candidates: [String], limit: Int = 3) -> [String] {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var prev = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var cur = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return a.isEmpty ? b.count : prev[b.count]
    }
    let n = Array(name.lowercased())
    // Edit distance, with a point off for the same family (the text before the first `_`) and half a
    // point off when one name is a prefix of the other, so `pit_tiny` suggests `pit_ti` first.
    let ln = name.lowercased()
    let family = ln.split(separator: "_").first.map(String.init) ?? ln
    let scored = candidates.map { c -> (String, Double) in
        let lc = c.lowercased()
        var d = Double(distance(n, Array(lc)))
        if lc.split(separator: "_").first.map(String.init) == family { d -= 1 }
        if !ln.isEmpty && (lc.hasPrefix(ln) || ln.hasPrefix(lc)) { d -= 0.5 }
        return (c, d)
    }
    let limitDistance = max(3, n.count / 2)
    return scored.filter { $0.1 <= Double(limitDistance) }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.prefix(limit).map { $0.0 }
}

extension ModelRegistry {
    /// MindCV's own drop-path rate of each model, used when a recipe leaves `drop_path_rate` unset
    /// (docs/training.md §2.4): ConViT 0.1, Visformer tiny 0.03 and small 0.1, the others 0.
    public static func defaultDropPathRate(_ name: String) -> Float {
        if name.hasPrefix("convit_") { return 0.1 }
        if name.hasPrefix("visformer_tiny") { return 0.03 }
        if name.hasPrefix("visformer_small") { return 0.1 }
        return 0
    }
}
