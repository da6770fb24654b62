import Foundation
import Models
import Tensor
import DataPipeline

/// The pieces `TrainingRun.init` assembles from a recipe, each checked before any training work.
enum RunSetup {
    /// The registered model with the recipe's options, its dropout generator seeded per rank.
    /// The image size and the estimated memory are checked first (docs/input-validation.md).
    static func model(_ recipe: Recipe, entry: ModelEntry, numClasses: Int, rank: Int) throws -> any Classifier {
        let options = ModelOptions(numClasses: numClasses, inChannels: recipe.inChannels, imageSize: recipe.imageResize,
                                   dropRate: Float(recipe.dropRate ?? 0),
                                   dropPathRate: Float(recipe.dropPathRate ?? Double(ModelRegistry.defaultDropPathRate(recipe.model))),
                                   seed: UInt64(truncatingIfNeeded: recipe.seed))
        try entry.checkConfiguration(options, batchSize: recipe.batchSize, training: true)
        let model = entry.build(options)
        model.state.generator = RandomGenerator(seed: UInt64(truncatingIfNeeded: recipe.seed) &+ 0x5eed_d40b &+ UInt64(rank))
        return model
    }

    /// The number of classes the head gets: `num_classes`, else the class folders.
    static func numClasses(_ recipe: Recipe, trainSet: ImageFolder) throws -> Int {
        let n = recipe.numClasses ?? trainSet.classes.count
        guard n >= trainSet.classes.count else {
            throw TrainingError.invalidRecipe(key: "num_classes", reason: "\(n) is fewer than the \(trainSet.classes.count) class folders in \(recipe.dataDir)/\(recipe.trainSplit)")
        }
        return n
    }

    /// The augmenting, shuffling, sharded training loader (with Mixup/CutMix when configured).
    static func trainLoader(_ recipe: Recipe, dataset: ImageFolder, numClasses: Int, communicator: Communicator,
                            log: @escaping @Sendable (String) -> Void) throws -> DataLoader {
        let transform = try TrainTransform(
            imageSize: recipe.imageResize, scale: try MindCVDefaults.range(recipe.scale, key: "scale"),
            ratio: try MindCVDefaults.range(recipe.ratio, key: "ratio"), interpolation: Interpolation(mindcv: recipe.interpolation),
            hflip: recipe.hflip, vflip: recipe.vflip, colorJitter: recipe.colorJitter, autoAugment: recipe.autoAugment,
            reProb: recipe.reProb, reValue: recipe.reValue.erasingValue, reScale: try MindCVDefaults.range(recipe.reScale, key: "re_scale"),
            reRatio: try MindCVDefaults.range(recipe.reRatio, key: "re_ratio"), reMaxAttempts: recipe.reMaxAttempts,
            mean: recipe.mean, std: recipe.std)
        var options = LoaderOptions(batchSize: recipe.batchSize, shuffle: recipe.shuffle, dropRemainder: recipe.dropRemainder,
                                    numParallelWorkers: recipe.numParallelWorkers, seed: UInt64(truncatingIfNeeded: recipe.seed),
                                    rank: communicator.rank, worldSize: communicator.worldSize, numSamples: recipe.numSamples,
                                    augRepeats: recipe.augRepeats, strictData: recipe.strictData)
        options.prefetchBatches = 2
        let mixup = (recipe.mixup > 0 || recipe.cutmix > 0)
            ? try MixupCutmix(mixupAlpha: recipe.mixup, cutmixAlpha: recipe.cutmix, cutmixProb: recipe.cutmixProb, numClasses: numClasses)
            : nil
        let loader = try DataLoader(dataset: dataset, transform: transform, options: options, mixup: mixup,
                                    onSkippedSample: { s in log("warning: skipped unreadable image \(s.path): \(s.reason)") })
        guard loader.batchesPerEpoch > 0 else {
            throw TrainingError.invalidRecipe(key: "batch_size", reason: "\(recipe.batchSize) per rank is larger than the \(loader.samplesPerEpoch) training images this rank reads, with drop_remainder")
        }
        return loader
    }

    /// The evaluation loader (resize, centre crop, normalise), sharded over ranks.
    static func valLoader(_ recipe: Recipe, dataset: ImageFolder, communicator: Communicator) throws -> DataLoader {
        let transform = try EvalTransform(imageSize: recipe.imageResize, cropPct: recipe.cropPct,
                                          interpolation: Interpolation(mindcv: recipe.interpolation), mean: recipe.mean, std: recipe.std)
        return try DataLoader(dataset: dataset, transform: transform,
                              options: .evaluation(batchSize: recipe.batchSize, numParallelWorkers: recipe.numParallelWorkers,
                                                   rank: communicator.rank, worldSize: communicator.worldSize))
    }
}

extension RandomErasingValue {
    /// The data pipeline's form of `re_value`.
    public var erasingValue: ErasingValue {
        switch self {
        case .constant(let v): return .constant(Float(v))
        case .random: return .random
        case .perChannel(let vs): return .perChannel(vs.map { Float($0) })
        }
    }
}
