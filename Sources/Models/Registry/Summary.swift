import Foundation
import Tensor

/// One row of `zoo list`: a registered model's parameter counts beside the published figure.
public struct ModelSummary: Sendable, Codable, Equatable {
    public var name: String
    public var family: String
    public var trainableParams: Int
    /// Trainable plus BatchNorm running statistics.
    public var storedParams: Int
    public var paramsWithoutHead: Int
    public var countingRule: String
    /// The count under the model card's rule.
    public var countedParams: Int
    public var publishedParamsM: Double?
    public var publishedTop1: Double?
    public var publishedTop5: Double?
    public var inputSize: [Int]
    public var cropPct: Double
    public var interpolation: String
    public var firstConv: String
    public var classifier: String

    /// Whether the count reproduces the published figure: equal when rounded to the printed two
    /// decimals, or (`lastDigit`) equal when truncated instead, or off by one in the last digit.
    public var agreement: Agreement {
        guard let p = publishedParamsM else { return .unpublished }
        // In units of 0.01 M, with integer arithmetic so that 40.245 M rounds up as printed.
        let printed = Int((p * 100).rounded())
        let rounded = (countedParams + 5_000) / 10_000, truncated = countedParams / 10_000
        if rounded == printed { return .exact }
        if truncated == printed || abs(rounded - printed) == 1 { return .lastDigit }
        return .differs
    }

    public enum Agreement: String, Sendable, Codable {
        case exact = "yes"
        case lastDigit = "last digit"
        case differs = "NO"
        case unpublished = "-"
    }
}

extension ModelRegistry {
    /// Builds `entry` without initialising its weights and counts its parameters.
    public static func summary(of entry: ModelEntry) -> ModelSummary {
        let model = Initializer.withoutInitialization { entry.build(ModelOptions()) }
        let counts = ParameterCounts(model: model, classifierName: entry.dataConfig.classifier)
        let pub = entry.published
        return ModelSummary(name: entry.name, family: entry.family, trainableParams: counts.trainable,
                            storedParams: counts.stored, paramsWithoutHead: counts.withoutHead,
                            countingRule: entry.countingRule.rawValue, countedParams: counts.count(for: entry.countingRule),
                            publishedParamsM: pub?.paramsM, publishedTop1: pub?.top1, publishedTop5: pub?.top5,
                            inputSize: entry.dataConfig.inputSize, cropPct: entry.dataConfig.cropPct,
                            interpolation: entry.dataConfig.interpolation, firstConv: entry.dataConfig.firstConv,
                            classifier: entry.dataConfig.classifier)
    }
}
