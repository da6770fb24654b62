import Foundation
import Models
import Tensor
import DataPipeline

/// What `zoo train --dry_run` prints: the resolved recipe, the effective learning rate and global
/// batch, the model's parameter count and the images per split, found without training.
public struct DryRunSummary: Sendable {
    public var recipe: Recipe
    public var worldSize: Int
    public var trainImages: Int?
    public var valImages: Int?
    public var classes: Int?
    /// Why a split could not be read (the error's text), by split name.
    public var splitProblems: [String: String] = [:]
    public var numClasses: Int
    public var trainableParameters: Int
    public var stepsPerEpoch: Int?

    /// Scans the split folders and builds the model (without initialising its weights).
    /// Errors in the recipe's model name are thrown; unreadable data folders are reported.
    public init(recipe: Recipe, worldSize: Int = 1) throws {
        self.recipe = recipe
        self.worldSize = max(worldSize, 1)
        let entry = try ModelRegistry.entry(recipe.model)
        var classNames: [String]? = nil
        do {
            let train = try ImageFolder(root: recipe.dataDir, split: recipe.trainSplit)
            trainImages = train.count
            classNames = train.classes
            classes = train.classes.count
        } catch {
            splitProblems[recipe.trainSplit] = "\(error)"
        }
        do {
            valImages = try ImageFolder(root: recipe.dataDir, split: recipe.valSplit, expectedClasses: classNames).count
        } catch {
            if recipe.valWhileTrain { splitProblems[recipe.valSplit] = "\(error)" }
        }
        numClasses = recipe.numClasses ?? classes ?? 1000
        let options = ModelOptions(numClasses: numClasses, inChannels: recipe.inChannels, imageSize: recipe.imageResize)
        let model = Initializer.withoutInitialization { entry.build(options) }
        trainableParameters = model.trainableParameterCount
        if let trainImages, let sampler = try? ShardSampler(datasetCount: trainImages, shuffle: recipe.shuffle, seed: 0,
                                                             worldSize: self.worldSize, numSamples: recipe.numSamples,
                                                             repeats: recipe.augRepeats) {
            let perRank = sampler.samplesPerEpoch
            stepsPerEpoch = recipe.dropRemainder ? perRank / recipe.batchSize : (perRank + recipe.batchSize - 1) / recipe.batchSize
        }
    }

    /// The printed report: a summary block, then the resolved recipe as YAML.
    public var text: String {
        var lines: [String] = []
        let r = recipe
        lines.append("dry run: nothing is trained or written")
        lines.append("model \(r.model): \(trainableParameters) trainable parameters (\(String(format: "%.4f", Double(trainableParameters) / 1e6)) M), \(numClasses) classes, \(r.imageResize)x\(r.imageResize) inputs")
        func split(_ name: String, _ count: Int?) -> String {
            if let count { return "\(count) images" + (name == r.trainSplit && classes != nil ? " in \(classes!) classes" : "") }
            return splitProblems[name].map { "unreadable: \($0)" } ?? "not found (not needed: val_while_train is off)"
        }
        lines.append("data \(r.dataDir): \(r.trainSplit) \(split(r.trainSplit, trainImages)); \(r.valSplit) \(split(r.valSplit, valImages))")
        lines.append("global batch \(r.globalBatch(worldSize: worldSize)) (batch_size \(r.batchSize) x world size \(worldSize) x gradient_accumulation_steps \(r.gradientAccumulationSteps))"
                     + (stepsPerEpoch.map { ", \($0) steps per epoch, \(r.epochSize) epochs" } ?? ""))
        lines.append("effective lr \(String(format: "%.6g", r.effectiveLR(worldSize: worldSize))) (" + lrOrigin + "), scheduler \(r.scheduler), min_lr \(r.minLR), warmup_epochs \(r.warmupEpochs)")
        let notes = r.noEffectSettings
        if !notes.isEmpty { lines.append("no effect on a CPU fp32 run: " + notes.joined(separator: ", ")) }
        lines.append("")
        lines.append(r.resolvedYAML(worldSize: worldSize))
        return lines.joined(separator: "\n")
    }

    var lrOrigin: String {
        let r = recipe
        if r.lr != nil { return "absolute lr" }
        guard let base = r.lrBase else { return "MindCV's default lr" }
        return "lr_base \(base) x (\(r.globalBatch(worldSize: worldSize)) / \(r.lrBaseSize))" + (r.lrBaseScale == "sqrt" ? "^0.5" : "")
    }
}

extension Recipe {
    /// Keys with no effect on a CPU fp32 run that differ from their defaults (`amp_level: O2`), so
    /// that a run can say once that it ignores them.
    public var noEffectSettings: [String] {
        let defaults = Recipe()
        return ["mode", "device_target", "dataset_sink_mode", "amp_level", "val_amp_level", "amp_cast_list",
                "loss_scale_type", "loss_scale", "drop_overflow_update"].compactMap { key in
            guard let f = Self.fieldsByName[key], f.get(self) != f.get(defaults) else { return nil }
            return "\(key) \(f.yaml(f.get(self)))"
        }
    }
}
