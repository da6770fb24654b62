import Foundation

/// A training recipe: every option of MindCV's `config.py` (docs/training.md §2) under its MindCV
/// key name, with MindCV's defaults, plus vitzoo's additions (`lr_base`, `lr_base_size`,
/// `lr_base_scale`, `strict_data`, `resume`, `numerics`).
///
/// Load one with `Recipe.load(yamlPath:overrides:)`; precedence is defaults < YAML < command line.
/// Keys that have no effect on a CPU fp32 run (`mode`, `amp_level`, `dataset_sink_mode`,
/// `loss_scale`, …) are accepted, validated and ignored so that MindCV recipe files load unchanged.
///
/// Learning rate: either an absolute `lr` (used as given, MindCV's semantics) or `lr_base` for
/// `lr_base_size` images per optimizer update, scaled to the run's global batch by `effectiveLR`.
/// At most one of the two is set: within one YAML file giving both is an error; a later layer
/// (command line over YAML) setting one clears the other. Neither set → MindCV's default 0.001.
public struct Recipe: Codable, Equatable, Sendable {
    // MARK: system (§2.1)
    public var config: String = ""
    public var mode: Int = 0
    public var distribute: Bool = false
    public var valWhileTrain: Bool = false
    public var valInterval: Int = 1
    public var logInterval: Int = 100
    public var seed: Int = 42
    public var deviceTarget: String = "Ascend"

    // MARK: dataset / loader (§2.2)
    public var dataset: String = "imagenet"
    public var dataDir: String = "./"
    public var trainSplit: String = "train"
    public var valSplit: String = "val"
    public var datasetDownload: Bool = false
    public var numParallelWorkers: Int = 8
    public var shuffle: Bool = true
    public var numSamples: Int? = nil
    /// Per-device (per-rank) batch size.
    public var batchSize: Int = 128
    public var dropRemainder: Bool = true

    // MARK: augmentation (§2.3)
    public var imageResize: Int = 224
    public var scale: [Double] = [0.08, 1.0]
    public var ratio: [Double] = [0.75, 1.333]
    public var hflip: Double = 0.5
    public var vflip: Double = 0.0
    /// One value (brightness = contrast = saturation), three, or four (with hue); nil = none.
    public var colorJitter: [Double]? = [0.4]
    public var interpolation: String = "bilinear"
    public var autoAugment: String? = nil
    public var augSplits: Int = 0
    public var reProb: Double = 0.0
    public var reScale: [Double] = [0.02, 0.33]
    public var reRatio: [Double] = [0.3, 3.3]
    public var reValue: RandomErasingValue = .constant(0)
    public var reMaxAttempts: Int = 10
    /// Per-channel mean on the 0–255 scale.
    public var mean: [Double] = [123.675, 116.28, 103.53]
    /// Per-channel std on the 0–255 scale.
    public var std: [Double] = [58.395, 57.12, 57.375]
    public var cropPct: Double = 0.875
    public var mixup: Double = 0.0
    public var cutmix: Double = 0.0
    public var cutmixProb: Double = 1.0
    public var augRepeats: Int = 0

    // MARK: model (§2.4)
    public var model: String = "mobilenet_v2_035_224"
    /// nil → the number of class folders in the train split.
    public var numClasses: Int? = nil
    public var inChannels: Int = 3
    /// nil → the model's default.
    public var dropRate: Double? = nil
    /// nil → the model's default.
    public var dropPathRate: Double? = nil
    public var pretrained: Bool = false
    public var ckptPath: String = ""
    public var epochSize: Int = 90
    public var datasetSinkMode: Bool = true

    // MARK: checkpointing (§2.5)
    public var ckptSaveDir: String = "./ckpt"
    public var ckptSaveInterval: Int = 1
    /// `latest_k`, `top_k`, or nil (YAML `null`) = keep every checkpoint.
    public var ckptSavePolicy: String? = "latest_k"
    public var keepCheckpointMax: Int = 10
    public var resumeOpt: Bool = false
    /// Data steps between recovery checkpoints inside an epoch (timm's `recovery_interval`); 0 = none.
    public var recoveryInterval: Int = 0

    // MARK: EMA, clipping, accumulation, layer decay (§2.6)
    public var ema: Bool = false
    public var emaDecay: Double = 0.9999
    public var clipGrad: Bool = false
    public var clipValue: Double = 15.0
    public var gradientAccumulationSteps: Int = 1
    public var layerDecay: Double? = nil

    // MARK: loss (§2.7)
    public var loss: String = "CE"
    public var labelSmoothing: Double = 0.0
    public var auxFactor: Double = 0.0
    public var reduction: String = "mean"

    // MARK: LR schedule (§2.8)
    public var scheduler: String = "cosine_decay"
    /// Absolute peak LR (never rescaled). nil when not given; see `effectiveLR`.
    public var lr: Double? = nil
    public var minLR: Double = 1e-6
    public var warmupEpochs: Int = 3
    public var warmupFactor: Double = 0.0
    public var decayEpochs: Int = 100
    public var decayRate: Double = 0.9
    public var multiStepDecayMilestones: [Int] = [30, 60, 90]
    public var lrEpochStair: Bool = false
    public var numCycles: Int = 1
    public var cycleDecay: Double = 1.0

    // MARK: optimizer (§2.9)
    public var opt: String = "adam"
    public var momentum: Double = 0.9
    public var weightDecay: Double = 1e-6
    public var useNesterov: Bool = false
    public var weightDecayFilter: String = "disable"
    /// Only RMSProp's epsilon in MindCV; AdamW/Adam always use 1e-8.
    public var eps: Double = 1e-10

    // MARK: mixed precision / loss scaling (§2.10) — no effect on CPU fp32
    public var ampLevel: String = "O0"
    public var valAmpLevel: String = "O0"
    public var ampCastList: String? = nil
    public var lossScaleType: String = "fixed"
    public var lossScale: Double = 1.0
    public var dropOverflowUpdate: Bool = false
    public var evalShuffle: Bool = false

    // MARK: vitzoo additions
    /// Peak LR for `lr_base_size` images per optimizer update; scaled by `effectiveLR`.
    public var lrBase: Double? = nil
    /// The global batch `lr_base` was tuned for (default 256, timm's convention).
    public var lrBaseSize: Int = 256
    /// `linear` or `sqrt` scaling of `lr_base` by global batch / `lr_base_size`.
    public var lrBaseScale: String = "linear"
    /// Fail on undecodable images / inconsistent class folders instead of skipping with a warning.
    public var strictData: Bool = false
    /// Checkpoint file or directory to resume from (the latest complete checkpoint in a directory).
    public var resume: String? = nil
    /// Whose numerics the model runs with, `mindcv` or `timm` (docs/numerics.md); nil: the model
    /// name's own (timm's for a timm name such as `pit_ti_224`, otherwise MindCV's).
    public var numerics: String? = nil
    /// Write TensorBoard event files: scalars per step (loss, lr, images/s) and per epoch (val top-1,
    /// top-5, loss).
    public var tensorboard: Bool = false
    /// Folder of the event files; nil → `<ckpt_save_dir>/tensorboard`.
    public var tensorboardDir: String? = nil

    public init() {}

    /// Where TensorBoard event files go when `tensorboard` is on.
    public var resolvedTensorboardDir: String {
        tensorboardDir ?? (ckptSaveDir as NSString).appendingPathComponent("tensorboard")
    }

    /// MindCV's default `lr` when neither `lr` nor `lr_base` is given.
    public static let defaultLR = 0.001

    /// Images per optimizer update: `batch_size × world_size × gradient_accumulation_steps`.
    public func globalBatch(worldSize: Int = 1) -> Int { batchSize * max(worldSize, 1) * gradientAccumulationSteps }

    /// The peak LR the schedule is built from. An absolute `lr` is used as given; `lr_base` is scaled
    /// by `(global batch / lr_base_size)` (linear) or its square root (sqrt); neither → 0.001.
    /// `min_lr` is never scaled.
    public func effectiveLR(worldSize: Int = 1) -> Double {
        if let lr { return lr }
        guard let lrBase else { return Self.defaultLR }
        let ratio = Double(globalBatch(worldSize: worldSize)) / Double(lrBaseSize)
        return lrBase * (lrBaseScale == "sqrt" ? ratio.squareRoot() : ratio)
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case config, mode, distribute, valWhileTrain = "val_while_train", valInterval = "val_interval",
             logInterval = "log_interval", seed, deviceTarget = "device_target"
        case dataset, dataDir = "data_dir", trainSplit = "train_split", valSplit = "val_split",
             datasetDownload = "dataset_download", numParallelWorkers = "num_parallel_workers", shuffle,
             numSamples = "num_samples", batchSize = "batch_size", dropRemainder = "drop_remainder"
        case imageResize = "image_resize", scale, ratio, hflip, vflip, colorJitter = "color_jitter", interpolation,
             autoAugment = "auto_augment", augSplits = "aug_splits", reProb = "re_prob", reScale = "re_scale",
             reRatio = "re_ratio", reValue = "re_value", reMaxAttempts = "re_max_attempts", mean, std,
             cropPct = "crop_pct", mixup, cutmix, cutmixProb = "cutmix_prob", augRepeats = "aug_repeats"
        case model, numClasses = "num_classes", inChannels = "in_channels", dropRate = "drop_rate",
             dropPathRate = "drop_path_rate", pretrained, ckptPath = "ckpt_path", epochSize = "epoch_size",
             datasetSinkMode = "dataset_sink_mode"
        case ckptSaveDir = "ckpt_save_dir", ckptSaveInterval = "ckpt_save_interval",
             ckptSavePolicy = "ckpt_save_policy", keepCheckpointMax = "keep_checkpoint_max", resumeOpt = "resume_opt",
             recoveryInterval = "recovery_interval"
        case ema, emaDecay = "ema_decay", clipGrad = "clip_grad", clipValue = "clip_value",
             gradientAccumulationSteps = "gradient_accumulation_steps", layerDecay = "layer_decay"
        case loss, labelSmoothing = "label_smoothing", auxFactor = "aux_factor", reduction
        case scheduler, lr, minLR = "min_lr", warmupEpochs = "warmup_epochs", warmupFactor = "warmup_factor",
             decayEpochs = "decay_epochs", decayRate = "decay_rate", multiStepDecayMilestones = "multi_step_decay_milestones",
             lrEpochStair = "lr_epoch_stair", numCycles = "num_cycles", cycleDecay = "cycle_decay"
        case opt, momentum, weightDecay = "weight_decay", useNesterov = "use_nesterov",
             weightDecayFilter = "weight_decay_filter", eps
        case ampLevel = "amp_level", valAmpLevel = "val_amp_level", ampCastList = "amp_cast_list",
             lossScaleType = "loss_scale_type", lossScale = "loss_scale", dropOverflowUpdate = "drop_overflow_update",
             evalShuffle = "eval_shuffle"
        case lrBase = "lr_base", lrBaseSize = "lr_base_size", lrBaseScale = "lr_base_scale", strictData = "strict_data", resume, numerics,
             tensorboard, tensorboardDir = "tensorboard_dir"
    }
}

/// `re_value`: a constant fill (in normalised units; 0 = the mean colour), i.i.d. N(0, 1) noise
/// (`random`), or one constant per channel.
public enum RandomErasingValue: Codable, Equatable, Sendable {
    case constant(Double)
    case random
    case perChannel([Double])
}
