import Foundation
import Models

// timm's train.py flag names as aliases of MindCV recipe keys (docs/cli.md has the table). An alias
// expands to one or more `(key, value)` settings, translating values where timm's vocabulary differs
// (`--sched cosine` → `scheduler: cosine_decay`, `--aa rand-m9` → `auto_augment: randaug-m9`).
// timm flags vitzoo cannot honour are refused with what to do instead, never silently dropped.

/// How a timm flag maps onto the recipe.
struct RecipeAlias: Sendable {
    enum Rule: Sendable {
        /// Same value, other key.
        case rename(String)
        /// A flag without a value that sets `key` to `value` (`--model-ema` → `ema: True`).
        case set(String, String)
        /// A value translated by `translate` (which throws a message when the value has no equivalent).
        case translate(String, @Sendable (String) throws(AliasRefusal) -> String)
        /// `--clip-grad V` → `clip_grad: True`, `clip_value: V`.
        case clipGrad
        /// Refused: the message says what to do instead.
        case refuse(String)
    }
    let flag: String
    let rule: Rule

    /// The key the alias sets (nil when refused), for `--help` and suggestions.
    var key: String? {
        switch rule {
        case let .rename(k), let .set(k, _), let .translate(k, _): return k
        case .clipGrad: return "clip_grad"
        case .refuse: return nil
        }
    }
}

/// Why a timm value or flag has no equivalent.
struct AliasRefusal: Error { let message: String }

extension Recipe {
    /// timm's train.py flags (normalised to snake_case) → recipe keys. Flags that already are recipe
    /// keys in both dialects (`--lr`, `--opt`, `--model`, `--batch-size`, ...) need no entry.
    static let timmAliases: [RecipeAlias] = [
        .init(flag: "epochs", rule: .rename("epoch_size")),
        .init(flag: "sched", rule: .translate("scheduler", timmScheduler)),
        .init(flag: "smoothing", rule: .rename("label_smoothing")),
        .init(flag: "drop_path", rule: .rename("drop_path_rate")),
        .init(flag: "drop", rule: .rename("drop_rate")),
        .init(flag: "aa", rule: .translate("auto_augment", timmAutoAugment)),
        .init(flag: "reprob", rule: .rename("re_prob")),
        .init(flag: "remode", rule: .translate("re_value", timmEraseMode)),
        .init(flag: "model_ema", rule: .set("ema", "true")),
        .init(flag: "model_ema_decay", rule: .rename("ema_decay")),
        .init(flag: "output", rule: .rename("ckpt_save_dir")),
        .init(flag: "b", rule: .rename("batch_size")),
        .init(flag: "j", rule: .rename("num_parallel_workers")),
        .init(flag: "workers", rule: .rename("num_parallel_workers")),
        .init(flag: "img_size", rule: .rename("image_resize")),
        .init(flag: "initial_checkpoint", rule: .rename("ckpt_path")),
        .init(flag: "checkpoint_hist", rule: .rename("keep_checkpoint_max")),
        .init(flag: "mixup_prob", rule: .rename("cutmix_prob")),
        .init(flag: "grad_accum_steps", rule: .rename("gradient_accumulation_steps")),
        .init(flag: "lr_cycle_decay", rule: .rename("cycle_decay")),
        .init(flag: "lr_cycle_limit", rule: .rename("num_cycles")),
        .init(flag: "data", rule: .rename("data_dir")),
        .init(flag: "clip_grad", rule: .clipGrad),
        .init(flag: "clip_mode", rule: .translate("clip_grad", { v throws(AliasRefusal) in
            guard v == "norm" else { throw AliasRefusal(message: "only clipping by global norm ('norm') is implemented; drop --clip-mode \(v)") }
            return "true"
        })),
        .init(flag: "warmup_lr", rule: .refuse("the warm-up starts at lr x warmup_factor: give --warmup_factor (warmup_lr / lr) instead")),
        .init(flag: "cooldown_epochs", rule: .refuse("there is no cool-down phase; add the epochs to --epochs and lower --min-lr instead")),
        .init(flag: "lr_cycle_mul", rule: .refuse("cosine cycles all have decay_epochs epochs; use --decay_epochs and --num_cycles instead")),
        .init(flag: "lr_noise", rule: .refuse("LR noise is not implemented; drop the flag")),
        .init(flag: "opt_eps", rule: .refuse("AdamW and Adam use eps 1e-8 as in MindCV; drop the flag")),
        .init(flag: "opt_betas", rule: .refuse("AdamW and Adam use betas (0.9, 0.999) as in MindCV; drop the flag")),
        .init(flag: "mixup_switch_prob", rule: .refuse("with both mixup and cutmix on, each mixed batch picks one with probability 0.5; drop the flag")),
        .init(flag: "mixup_mode", rule: .refuse("mixing is per batch; drop the flag")),
        .init(flag: "recount", rule: .refuse("random erasing draws one rectangle; drop the flag")),
        .init(flag: "amp", rule: .refuse("training runs in fp32 on the CPU; drop --amp")),
        .init(flag: "channels_last", rule: .refuse("the engine chooses its own layouts; drop the flag")),
        .init(flag: "sync_bn", rule: .refuse("batch statistics are per rank as in MindCV; drop the flag")),
        .init(flag: "input_size", rule: .refuse("give the side alone with --img-size N (square inputs, 3 channels via --in_channels)")),
        .init(flag: "eval_metric", rule: .refuse("the best checkpoint is chosen by validation top-1; drop the flag")),
        .init(flag: "experiment", rule: .refuse("give the output folder itself with --output DIR")),
    ]

    static let timmAliasesByFlag: [String: RecipeAlias] = Dictionary(uniqueKeysWithValues: timmAliases.map { ($0.flag, $0) })

    /// Every accepted spelling for suggestions: recipe keys and timm aliases.
    static var spellings: [String] { keys + timmAliases.filter { $0.key != nil }.map(\.flag) }

    /// The closest accepted spelling of an unknown key: in a YAML file a recipe key (a timm name
    /// given there suggests the key it stands for), on the command line a key or a timm alias.
    static func suggestion(for key: String, commandLine: Bool) -> String? {
        if !commandLine, let k = timmAliasesByFlag[key]?.key { return k }
        guard let best = closest(to: key, among: commandLine ? spellings : keys, limit: 1).first else { return nil }
        return best
    }

    /// How an error names a suggested spelling: `'epoch_size'`, or `'--epochs' (timm's name for 'epoch_size')`.
    static func describeSuggestion(_ s: String) -> String {
        if let alias = timmAliasesByFlag[s], let k = alias.key {
            return "'--\(s.replacingOccurrences(of: "_", with: "-"))' (timm's name for '\(k)')"
        }
        return "'\(s)'"
    }

    static func timmScheduler(_ v: String) throws(AliasRefusal) -> String {
        switch v.lowercased() {
        case "cosine": return "cosine_decay"
        case "step": return "step_decay"
        case "multistep": return "multi_step_decay"
        case "poly": return "polynomial_decay"
        case "constant", "none": return "constant"
        default:
            if schedulers.contains(v) { return v }
            throw AliasRefusal(message: "timm's '\(v)' schedule has no MindCV equivalent; use one of cosine, step, multistep, poly or a --scheduler value (\(schedulers.joined(separator: ", ")))")
        }
    }

    static func timmAutoAugment(_ v: String) throws(AliasRefusal) -> String {
        var parts = v.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard let head = parts.first else { return v }
        switch head {
        case "rand": parts[0] = "randaug"
        case "original": parts[0] = "autoaug"
        case "originalr": parts[0] = "autoaugr"
        case "v0", "v0r": throw AliasRefusal(message: "timm's '\(head)' AutoAugment policy is not MindCV's; use --aa original (MindCV's autoaug) or originalr")
        default: break
        }
        return parts.joined(separator: "-")
    }

    static func timmEraseMode(_ v: String) throws(AliasRefusal) -> String {
        switch v {
        case "pixel": return "random"
        case "const": return "0"
        default: throw AliasRefusal(message: "erasing mode '\(v)' is not implemented; use pixel (per-pixel noise) or const (the mean colour)")
        }
    }
}
