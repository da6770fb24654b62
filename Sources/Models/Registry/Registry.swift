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
    /// Whose numerics the registry builds the model with (docs/numerics.md).
    public var numerics: Numerics = .mindcv
    public init(numClasses: Int = 1000, inChannels: Int = 3, imageSize: Int? = nil, dropRate: Float = 0,
                dropPathRate: Float = 0, attnDropRate: Float = 0, seed: UInt64 = 0, numerics: Numerics = .mindcv) {
        self.numClasses = numClasses; self.inChannels = inChannels; self.imageSize = imageSize
        self.dropRate = dropRate; self.dropPathRate = dropPathRate; self.attnDropRate = attnDropRate; self.seed = seed
        self.numerics = numerics
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
    /// The MindCV model card's evaluation data config.
    public let mindcvDataConfig: DataConfig
    /// timm's evaluation data config of the same architecture (docs/numerics.md §3).
    public let timmDataConfig: DataConfig
    /// Fixed numerics of this entry (a timm name, or `with(numerics:)`); nil: `ModelOptions.numerics`
    /// decides at build time and the data config is MindCV's.
    public let numerics: Numerics?
    public let countingRule: ParamCountingRule
    /// The default input side (224 or 384).
    public let defaultImageSize: Int
    /// MindCV's own drop-path rate for this variant, used when a recipe leaves `drop_path_rate` unset
    /// (docs/training.md §2.4).
    public let defaultDropPathRate: Float
    /// The family's builder, which follows `ModelOptions.numerics`.
    let builder: @Sendable (ModelOptions) -> any Classifier

    /// The input sides the family accepts and the stage grids they give (InputGeometry.swift).
    public let geometry: InputGeometry?

    public init(name: String, family: String, dataConfig: DataConfig, timmDataConfig: DataConfig? = nil,
                countingRule: ParamCountingRule, defaultImageSize: Int = 224, defaultDropPathRate: Float = 0,
                numerics: Numerics? = nil, geometry: InputGeometry? = nil, build: @escaping @Sendable (ModelOptions) -> any Classifier) {
        self.name = name; self.family = family; self.mindcvDataConfig = dataConfig; self.countingRule = countingRule
        var timm = dataConfig
        timm.cropPct = 0.9; timm.interpolation = "bicubic"
        self.timmDataConfig = timmDataConfig ?? timm
        self.defaultImageSize = defaultImageSize; self.defaultDropPathRate = defaultDropPathRate
        self.numerics = numerics; self.geometry = geometry; self.builder = build
    }

    /// The evaluation data config of the entry's numerics.
    public var dataConfig: DataConfig { numerics == .timm ? timmDataConfig : mindcvDataConfig }

    /// Builds the variant with the given construction options (the entry's fixed numerics, if any,
    /// override `options.numerics`), unchecked: `make` checks the image size first.
    public var build: @Sendable (ModelOptions) -> any Classifier {
        let builder = self.builder, fixed = numerics
        return { options in
            var o = options
            if let fixed { o.numerics = fixed }
            return builder(o)
        }
    }

    /// This variant with fixed numerics (nil: `ModelOptions.numerics` decides), optionally renamed.
    public func with(numerics: Numerics?, name: String? = nil) -> ModelEntry {
        ModelEntry(name: name ?? self.name, family: family, dataConfig: mindcvDataConfig, timmDataConfig: timmDataConfig,
                   countingRule: countingRule, defaultImageSize: defaultImageSize, defaultDropPathRate: defaultDropPathRate,
                   numerics: numerics, geometry: geometry, build: builder)
    }

    public var published: PublishedFigures? { ModelRegistry.published[name] }
}

public enum ModelRegistryError: Error, CustomStringConvertible, Equatable {
    case unknownModel(String, suggestions: [String])
    case unknownNumerics(String)
    public var description: String {
        switch self {
        case let .unknownNumerics(n):
            return "unknown numerics '\(n)'; valid: " + Numerics.allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ")
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

    /// timm's names of the registered architectures that differ from MindCV's (docs/numerics.md §2);
    /// each implies timm numerics. (`convit_tiny`, `convit_small`, `convit_base`, `visformer_tiny` and
    /// `visformer_small` are the same in both and keep MindCV's numerics unless asked.)
    public static let timmNames: [String: String] = [
        "pit_ti_224": "pit_ti", "pit_xs_224": "pit_xs", "pit_s_224": "pit_s", "pit_b_224": "pit_b",
        "vit_base_patch16_224": "vit_b_16_224", "vit_base_patch16_384": "vit_b_16_384",
        "vit_base_patch32_224": "vit_b_32_224", "vit_base_patch32_384": "vit_b_32_384",
        "vit_large_patch16_224": "vit_l_16_224", "vit_large_patch16_384": "vit_l_16_384",
        "vit_large_patch32_224": "vit_l_32_224",
    ]

    /// The entry of a registered or timm name. `numerics` fixes the numerics (and the data config)
    /// of the returned entry; nil keeps the name's own: timm's for a timm name, otherwise
    /// `ModelOptions.numerics` at build time with MindCV's data config.
    public static func entry(_ name: String, numerics: Numerics? = nil) throws -> ModelEntry {
        if let e = entries.first(where: { $0.name == name }) { return numerics.map { e.with(numerics: $0) } ?? e }
        if let base = timmNames[name], let e = entries.first(where: { $0.name == base }) {
            return e.with(numerics: numerics ?? .timm, name: name)
        }
        throw ModelRegistryError.unknownModel(name, suggestions: closest(to: name, among: names + timmNames.keys.sorted()))
    }

    /// Builds a registered (or timm) model by name.
    public static func create(_ name: String, options: ModelOptions = ModelOptions()) throws -> any Classifier {
        try entry(name).make(options)
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
    /// The registered variant's own drop-path rate (`ModelEntry.defaultDropPathRate`, set with its
    /// preset), 0 for an unknown name.
    public static func defaultDropPathRate(_ name: String) -> Float {
        (try? entry(name))?.defaultDropPathRate ?? 0
    }
}
