import Foundation

// One line of meaning for every recipe key, grouped as MindCV's `config.py` groups its options
// (docs/cli.md lists the same table). `zoo train --help` prints it with each key's type and default,
// which come from the key table in RecipeLoader.swift, so they cannot drift from what is accepted.

/// A group of recipe keys as `zoo train --help` shows them.
public struct RecipeKeyGroup: Sendable {
    public var title: String
    /// (key, meaning), in `config.py` order.
    public var keys: [(name: String, meaning: String)]
}

extension Recipe {
    /// Every key's group and meaning. A test checks that this covers `Recipe.keys` exactly.
    public static let keyGroups: [RecipeKeyGroup] = [
        RecipeKeyGroup(title: "System", keys: [
            ("config", "recipe YAML file whose keys become the defaults (-c)"),
            ("mode", "MindSpore graph (0) or pynative (1) mode; no effect here"),
            ("distribute", "data parallelism over the ranks of mpirun"),
            ("val_while_train", "evaluate the val split during training"),
            ("val_interval", "evaluate every this many epochs (and after the last)"),
            ("log_interval", "print a step line every this many batches"),
            ("seed", "seed of every random generator (weights, sampling, augmentation)"),
            ("device_target", "Ascend, GPU or CPU; no effect here (always the CPU)"),
        ]),
        RecipeKeyGroup(title: "Dataset", keys: [
            ("dataset", "imagenet (or '') = image folder; other readers are refused"),
            ("data_dir", "root folder with one sub-folder per split"),
            ("train_split", "training sub-folder of data_dir"),
            ("val_split", "validation sub-folder of data_dir"),
            ("dataset_download", "download MNIST/CIFAR; refused (convert to an image folder)"),
            ("num_parallel_workers", "decoding and augmentation threads"),
            ("shuffle", "reshuffle the training images every epoch"),
            ("num_samples", "use only this many training images per epoch"),
            ("batch_size", "images per step on each rank"),
            ("drop_remainder", "drop the last incomplete training batch"),
        ]),
        RecipeKeyGroup(title: "Augmentation", keys: [
            ("image_resize", "training crop side and evaluation centre-crop side"),
            ("scale", "random-resized-crop area fraction range (low, high)"),
            ("ratio", "random-resized-crop aspect-ratio range (low, high)"),
            ("hflip", "horizontal flip probability"),
            ("vflip", "vertical flip probability"),
            ("color_jitter", "brightness/contrast/saturation[/hue] jitter (without auto_augment)"),
            ("interpolation", "resize interpolation: bilinear, bicubic, nearest, area, ..."),
            ("auto_augment", "policy string: randaug-m9-mstd0.5, autoaug, trivialaugwide, augmix..."),
            ("aug_splits", "AugMix/JSD split views; only 0 is implemented"),
            ("re_prob", "random erasing probability"),
            ("re_scale", "erased area fraction range (low, high)"),
            ("re_ratio", "erased rectangle aspect range (low, high)"),
            ("re_value", "erasing fill: a number, 'random' or one value per channel"),
            ("re_max_attempts", "attempts to place an erasing rectangle"),
            ("mean", "per-channel mean on the 0-255 scale"),
            ("std", "per-channel std on the 0-255 scale"),
            ("crop_pct", "evaluation: resize the short side to image_resize / crop_pct, then centre-crop"),
            ("mixup", "mixup Beta alpha (on when > 0)"),
            ("cutmix", "cutmix Beta alpha (on when > 0)"),
            ("cutmix_prob", "probability that a batch is mixed at all"),
            ("aug_repeats", "repeated augmentation count (0/1 = off)"),
        ]),
        RecipeKeyGroup(title: "Model", keys: [
            ("model", "registered model name (zoo list), MindCV's or timm's"),
            ("num_classes", "classifier outputs; null = number of class folders"),
            ("in_channels", "input channels"),
            ("drop_rate", "dropout before the head; null = the model's default"),
            ("drop_path_rate", "stochastic depth rate; null = the model's default"),
            ("pretrained", "start from the model card's published weights (cached in $VITZOO_HOME, downloaded when missing)"),
            ("ckpt_path", "initialise the weights from this checkpoint (with resume_opt: resume)"),
            ("epoch_size", "number of epochs"),
            ("dataset_sink_mode", "MindSpore device-side data feeding; no effect here"),
        ]),
        RecipeKeyGroup(title: "Checkpoints", keys: [
            ("ckpt_save_dir", "output folder: checkpoints, metrics.csv, resolved recipe, event files"),
            ("ckpt_save_interval", "save every this many epochs (and after the last)"),
            ("ckpt_save_policy", "latest_k, top_k (by val top-1) or null = keep all"),
            ("keep_checkpoint_max", "K of the save policy"),
            ("resume_opt", "with ckpt_path: also restore optimizer state, step and epoch"),
            ("recovery_interval", "write a recovery checkpoint every this many steps inside an epoch; 0 = off"),
        ]),
        RecipeKeyGroup(title: "EMA, clipping, accumulation", keys: [
            ("ema", "keep an exponential moving average of the weights; validate and save with it"),
            ("ema_decay", "EMA decay"),
            ("clip_grad", "clip gradients by global L2 norm"),
            ("clip_value", "maximum global gradient norm"),
            ("gradient_accumulation_steps", "micro-batches averaged per optimizer update"),
            ("layer_decay", "layer-wise LR decay (as MindCV: only changes the weight-decay groups)"),
        ]),
        RecipeKeyGroup(title: "Loss", keys: [
            ("loss", "CE (softmax cross-entropy); other losses are refused"),
            ("label_smoothing", "label smoothing epsilon"),
            ("aux_factor", "weight of auxiliary heads; must be 0 (no zoo model has them)"),
            ("reduction", "mean over the batch; sum/none are refused"),
        ]),
        RecipeKeyGroup(title: "LR schedule", keys: [
            ("scheduler", "constant, cosine_decay, warmup_cosine_decay, exponential_decay, polynomial_decay, step_decay, multi_step_decay"),
            ("lr", "absolute peak learning rate (never rescaled)"),
            ("min_lr", "floor of the cosine schedule"),
            ("warmup_epochs", "linear warm-up epochs"),
            ("warmup_factor", "warm-up starts at lr x warmup_factor"),
            ("decay_epochs", "cosine length / decay period in epochs"),
            ("decay_rate", "decay factor (power for polynomial_decay)"),
            ("multi_step_decay_milestones", "epochs after warm-up at which multi_step_decay decays"),
            ("lr_epoch_stair", "keep the LR constant within an epoch"),
            ("num_cycles", "cosine restarts"),
            ("cycle_decay", "peak LR factor per cosine cycle"),
        ]),
        RecipeKeyGroup(title: "Optimizer", keys: [
            ("opt", "sgd, momentum, nesterov, adam or adamw"),
            ("momentum", "momentum of sgd/momentum/nesterov"),
            ("weight_decay", "weight decay coefficient (decoupled for adamw)"),
            ("use_nesterov", "Nesterov momentum"),
            ("weight_decay_filter", "parameters exempt from decay: disable, auto, norm_and_bias"),
            ("eps", "RMSProp epsilon in MindCV; Adam/AdamW use 1e-8"),
        ]),
        RecipeKeyGroup(title: "Mixed precision (no effect on CPU fp32; accepted so MindCV recipes load)", keys: [
            ("amp_level", "O0-O3; training is fp32 here"),
            ("val_amp_level", "O0-O3; evaluation is fp32 here"),
            ("amp_cast_list", "custom cast list; no effect here"),
            ("loss_scale_type", "fixed, dynamic or auto; no effect in fp32"),
            ("loss_scale", "loss scale; no effect in fp32"),
            ("drop_overflow_update", "skip updates on fp16 overflow; no effect in fp32"),
            ("eval_shuffle", "shuffle the evaluation set; refused when true (order does not change the metrics)"),
        ]),
        RecipeKeyGroup(title: "vitzoo additions", keys: [
            ("lr_base", "peak LR for lr_base_size images per update, scaled to the global batch"),
            ("lr_base_size", "global batch that lr_base is given for"),
            ("lr_base_scale", "linear or sqrt scaling of lr_base"),
            ("strict_data", "stop at an unreadable image instead of replacing it"),
            ("resume", "checkpoint file or folder to continue a run from"),
            ("numerics", "mindcv or timm GELU/LayerNorm/attention numerics; null = the model name's own"),
            ("tensorboard", "write TensorBoard event files (--tensorboard DIR also sets the folder)"),
            ("tensorboard_dir", "event file folder; null = ckpt_save_dir/tensorboard"),
        ]),
    ]

    static let meaningsByKey: [String: String] = {
        var out: [String: String] = [:]
        for g in keyGroups { for k in g.keys { out[k.name] = k.meaning } }
        return out
    }()

    /// One key's meaning, or nil for an unknown key.
    public static func meaning(of key: String) -> String? { meaningsByKey[key] }

    /// The short type name shown in help (`int`, `float`, `bool`, `str`, `list`, ...).
    public static func typeName(of key: String) -> String? {
        guard let f = fieldsByName[key] else { return nil }
        let base: String
        switch f.kind {
        case .int: base = "int"
        case .double: base = "float"
        case .bool: base = "bool"
        case .string: base = "str"
        case let .doubles(n): base = n.map { "\($0) floats" } ?? "floats"
        case .ints: base = "ints"
        case .colorJitter: base = "float|3-4 floats"
        case .reValue: base = "float|random|3 floats"
        }
        return f.optional ? base + "?" : base
    }

    /// The default value of a key as YAML.
    public static func defaultText(of key: String) -> String? {
        guard let f = fieldsByName[key] else { return nil }
        return f.yaml(f.get(Recipe()))
    }

    /// The recipe-key section of `zoo train --help`: every key, grouped, with type, default and
    /// meaning, wrapped to `width` columns (the help printer wraps longer lines without indenting).
    public static func keyHelp(width: Int = 80) -> String {
        var lines: [String] = []
        let indent = "      "
        for g in keyGroups {
            lines.append("")
            lines.append("\(g.title):")
            for k in g.keys {
                lines.append("  --\(k.name) (\(typeName(of: k.name) ?? "?"), default \(defaultText(of: k.name) ?? "?"))")
                var line = indent
                for word in k.meaning.split(separator: " ") {
                    if line.count + word.count + 1 > width, line != indent { lines.append(line); line = indent }
                    line += (line == indent ? "" : " ") + word
                }
                lines.append(line)
            }
        }
        return lines.joined(separator: "\n")
    }
}
