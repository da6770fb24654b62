import Foundation
import Models
import Yams

// Strict recipe loading: YAML (through Yams' node API, so every key has its line) and command-line
// overrides are converted field by field through one table of MindCV keys, then the whole resolved
// recipe is range-checked. Conversion follows MindCV's `config.py` (docs/training.md §1):
//   * numbers given as YAML strings are converted (`min_lr: 1e-5`, `lr: "0.1"`), ints are accepted
//     for floats, and floats with an integral value for ints;
//   * booleans are yes/true/1 and no/false/0, case-insensitive; a bare `--flag` means true;
//   * YAML `null` (`~`, empty) is accepted only for keys whose MindCV default is None (and for
//     `ckpt_save_policy`, where it means "keep everything") — on the command line `null`/`none`;
//   * lists come from YAML sequences, or on the command line from `0.08,1.0` or `[0.08, 1.0]`.
// Deviation from MindCV: `choices` are enforced for YAML values too (with the extended value sets
// the factories accept), so a misspelt scheduler or filter fails at load instead of silently
// falling back (MindCV maps unknown `weight_decay_filter` to norm_and_bias, unknown interpolation
// to bilinear).

/// A value as written, before conversion.
enum RawValue {
    case scalar(String, quoted: Bool)
    case list([RawValue])
    case mapping

    var isNull: Bool {
        if case let .scalar(s, false) = self { return ["", "~", "null", "Null", "NULL"].contains(s) }
        return false
    }

    var shown: String {
        switch self {
        case let .scalar(s, q): return q ? "'\(s)'" : (s.isEmpty ? "nothing" : "'\(s)'")
        case let .list(xs): return "a list of \(xs.count)"
        case .mapping: return "a mapping"
        }
    }

    init(_ node: Node) {
        switch node {
        case let .scalar(s): self = .scalar(s.string, quoted: s.style == .singleQuoted || s.style == .doubleQuoted)
        case let .sequence(seq): self = .list(seq.map { RawValue($0) })
        default: self = .mapping
        }
    }
}

/// A converted value of one field.
enum FieldValue: Equatable {
    case int(Int), double(Double), bool(Bool), string(String), doubles([Double]), ints([Int])
    case reValue(RandomErasingValue)
    case null
}

/// One recipe key: its MindCV name, how to convert a raw value, and how to read/write the struct.
struct RecipeField: @unchecked Sendable {
    enum Kind: Equatable {
        case int, double, bool, string
        /// A list of numbers (`count` nil = any non-empty length).
        case doubles(count: Int?)
        case ints
        /// A number or a list of 3 or 4 numbers.
        case colorJitter
        /// A number, `random`, or a list of 3 numbers.
        case reValue
    }
    let name: String
    let kind: Kind
    let optional: Bool
    let get: (Recipe) -> FieldValue
    let set: (inout Recipe, FieldValue) -> Void

    var expected: String {
        let base: String
        switch kind {
        case .int: base = "an integer"
        case .double: base = "a number"
        case .bool: base = "a boolean (true/false, yes/no, 1/0)"
        case .string: base = "a string"
        case let .doubles(n): base = n.map { "a list of \($0) numbers" } ?? "a list of numbers"
        case .ints: base = "a list of integers"
        case .colorJitter: base = "a number or a list of 3 or 4 numbers"
        case .reValue: base = "a number, 'random' or a list of 3 numbers"
        }
        return optional ? base + " or null" : base
    }

    init(_ name: String, _ kp: WritableKeyPath<Recipe, Int>) {
        self.name = name; kind = .int; optional = false
        get = { .int($0[keyPath: kp]) }
        set = { r, v in if case let .int(x) = v { r[keyPath: kp] = x } }
    }
    init(_ name: String, _ kp: WritableKeyPath<Recipe, Int?>) {
        self.name = name; kind = .int; optional = true
        get = { $0[keyPath: kp].map { .int($0) } ?? .null }
        set = { r, v in if case let .int(x) = v { r[keyPath: kp] = x } else { r[keyPath: kp] = nil } }
    }
    init(_ name: String, _ kp: WritableKeyPath<Recipe, Double>) {
        self.name = name; kind = .double; optional = false
        get = { .double($0[keyPath: kp]) }
        set = { r, v in if case let .double(x) = v { r[keyPath: kp] = x } }
    }
    init(_ name: String, _ kp: WritableKeyPath<Recipe, Double?>) {
        self.name = name; kind = .double; optional = true
        get = { $0[keyPath: kp].map { .double($0) } ?? .null }
        set = { r, v in if case let .double(x) = v { r[keyPath: kp] = x } else { r[keyPath: kp] = nil } }
    }
    init(_ name: String, _ kp: WritableKeyPath<Recipe, Bool>) {
        self.name = name; kind = .bool; optional = false
        get = { .bool($0[keyPath: kp]) }
        set = { r, v in if case let .bool(x) = v { r[keyPath: kp] = x } }
    }
    init(_ name: String, _ kp: WritableKeyPath<Recipe, String>) {
        self.name = name; kind = .string; optional = false
        get = { .string($0[keyPath: kp]) }
        set = { r, v in if case let .string(x) = v { r[keyPath: kp] = x } }
    }
    init(_ name: String, _ kp: WritableKeyPath<Recipe, String?>) {
        self.name = name; kind = .string; optional = true
        get = { $0[keyPath: kp].map { .string($0) } ?? .null }
        set = { r, v in if case let .string(x) = v { r[keyPath: kp] = x } else { r[keyPath: kp] = nil } }
    }
    init(_ name: String, _ kp: WritableKeyPath<Recipe, [Double]>, count: Int?) {
        self.name = name; kind = .doubles(count: count); optional = false
        get = { .doubles($0[keyPath: kp]) }
        set = { r, v in if case let .doubles(x) = v { r[keyPath: kp] = x } }
    }
    init(_ name: String, _ kp: WritableKeyPath<Recipe, [Double]?>) {
        self.name = name; kind = .colorJitter; optional = true
        get = { $0[keyPath: kp].map { .doubles($0) } ?? .null }
        set = { r, v in if case let .doubles(x) = v { r[keyPath: kp] = x } else { r[keyPath: kp] = nil } }
    }
    init(_ name: String, _ kp: WritableKeyPath<Recipe, [Int]>) {
        self.name = name; kind = .ints; optional = false
        get = { .ints($0[keyPath: kp]) }
        set = { r, v in if case let .ints(x) = v { r[keyPath: kp] = x } }
    }
    init(_ name: String, _ kp: WritableKeyPath<Recipe, RandomErasingValue>) {
        self.name = name; kind = .reValue; optional = false
        get = { .reValue($0[keyPath: kp]) }
        set = { r, v in if case let .reValue(x) = v { r[keyPath: kp] = x } }
    }

    /// The converted value, or nil when `raw` has the wrong type.
    func convert(_ raw: RawValue) -> FieldValue? {
        if raw.isNull { return optional ? .null : nil }
        switch (kind, raw) {
        case let (.int, .scalar(s, _)): return Self.int(s).map { .int($0) }
        case let (.double, .scalar(s, _)): return Self.double(s).map { .double($0) }
        case let (.bool, .scalar(s, _)):
            switch s.lowercased() {
            case "yes", "true", "1": return .bool(true)
            case "no", "false", "0": return .bool(false)
            default: return nil
            }
        case let (.string, .scalar(s, _)): return .string(s)
        case let (.doubles(n), _):
            guard let xs = Self.doubles(raw), !xs.isEmpty, n == nil || xs.count == n else { return nil }
            return .doubles(xs)
        case (.ints, _):
            guard let items = Self.items(raw) else { return nil }
            var out: [Int] = []
            for i in items { guard let x = Self.int(i) else { return nil }; out.append(x) }
            return .ints(out)
        case let (.colorJitter, .scalar(s, _)) where !s.contains(","):
            return Self.double(s).map { .doubles([$0]) }
        case (.colorJitter, _):
            guard let xs = Self.doubles(raw), xs.count == 3 || xs.count == 4 else { return nil }
            return .doubles(xs)
        case let (.reValue, .scalar(s, _)) where !s.contains(","):
            if s.lowercased() == "random" { return .reValue(.random) }
            return Self.double(s).map { .reValue(.constant($0)) }
        case (.reValue, _):
            guard let xs = Self.doubles(raw), xs.count == 3 else { return nil }
            return .reValue(.perChannel(xs))
        default: return nil
        }
    }

    /// The items of a list, or of a comma-separated scalar (command line).
    static func items(_ raw: RawValue) -> [String]? {
        switch raw {
        case let .scalar(s, _):
            return s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        case let .list(xs):
            var out: [String] = []
            for x in xs { guard case let .scalar(s, _) = x else { return nil }; out.append(s) }
            return out
        case .mapping: return nil
        }
    }

    static func doubles(_ raw: RawValue) -> [Double]? {
        guard let items = items(raw) else { return nil }
        var out: [Double] = []
        for i in items { guard let x = double(i) else { return nil }; out.append(x) }
        return out
    }

    static func double(_ s: String) -> Double? {
        let t = s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
        guard let x = Double(t), x.isFinite else { return nil }
        return x
    }

    static func int(_ s: String) -> Int? {
        let t = s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
        if let x = Int(t) { return x }
        if let x = Double(t), x.isFinite, x == x.rounded(), abs(x) < 9e15 { return Int(x) }
        return nil
    }

    func yaml(_ value: FieldValue) -> String {
        func num(_ x: Double) -> String { "\(x)" }
        switch value {
        case let .int(x): return "\(x)"
        case let .double(x): return num(x)
        case let .bool(b): return b ? "True" : "False"
        case let .string(s): return RecipeField.quoted(s)
        case let .doubles(xs):
            if kind == .colorJitter, xs.count == 1 { return num(xs[0]) }
            return "[" + xs.map(num).joined(separator: ", ") + "]"
        case let .ints(xs): return "[" + xs.map { "\($0)" }.joined(separator: ", ") + "]"
        case let .reValue(v):
            switch v {
            case let .constant(x): return num(x)
            case .random: return "random"
            case let .perChannel(xs): return "[" + xs.map(num).joined(separator: ", ") + "]"
            }
        case .null: return "null"
        }
    }

    /// A string as a YAML scalar: plain when it cannot be misread, double-quoted otherwise.
    static func quoted(_ s: String) -> String {
        let reserved: Set<String> = ["", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"]
        let safe = s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "_./-+".unicodeScalars.contains($0) }
        if safe, !reserved.contains(s.lowercased()), double(s) == nil, let f = s.first, f.isLetter || f == "." || f == "/" || f == "_" {
            return s
        }
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }
}

extension Recipe {
    /// Every key, in MindCV's `config.py` order (vitzoo's additions last).
    static let fields: [RecipeField] = [
        .init("config", \.config), .init("mode", \.mode), .init("distribute", \.distribute),
        .init("val_while_train", \.valWhileTrain), .init("val_interval", \.valInterval),
        .init("log_interval", \.logInterval), .init("seed", \.seed), .init("device_target", \.deviceTarget),

        .init("dataset", \.dataset), .init("data_dir", \.dataDir), .init("train_split", \.trainSplit),
        .init("val_split", \.valSplit), .init("dataset_download", \.datasetDownload),
        .init("num_parallel_workers", \.numParallelWorkers), .init("shuffle", \.shuffle),
        .init("num_samples", \.numSamples), .init("batch_size", \.batchSize), .init("drop_remainder", \.dropRemainder),

        .init("image_resize", \.imageResize), .init("scale", \.scale, count: 2), .init("ratio", \.ratio, count: 2),
        .init("hflip", \.hflip), .init("vflip", \.vflip), .init("color_jitter", \.colorJitter),
        .init("interpolation", \.interpolation), .init("auto_augment", \.autoAugment), .init("aug_splits", \.augSplits),
        .init("re_prob", \.reProb), .init("re_scale", \.reScale, count: 2), .init("re_ratio", \.reRatio, count: 2),
        .init("re_value", \.reValue), .init("re_max_attempts", \.reMaxAttempts),
        .init("mean", \.mean, count: nil), .init("std", \.std, count: nil), .init("crop_pct", \.cropPct),
        .init("mixup", \.mixup), .init("cutmix", \.cutmix), .init("cutmix_prob", \.cutmixProb),
        .init("aug_repeats", \.augRepeats),

        .init("model", \.model), .init("num_classes", \.numClasses), .init("in_channels", \.inChannels),
        .init("drop_rate", \.dropRate), .init("drop_path_rate", \.dropPathRate), .init("pretrained", \.pretrained),
        .init("ckpt_path", \.ckptPath), .init("epoch_size", \.epochSize), .init("dataset_sink_mode", \.datasetSinkMode),

        .init("ckpt_save_dir", \.ckptSaveDir), .init("ckpt_save_interval", \.ckptSaveInterval),
        .init("ckpt_save_policy", \.ckptSavePolicy), .init("keep_checkpoint_max", \.keepCheckpointMax),
        .init("resume_opt", \.resumeOpt), .init("recovery_interval", \.recoveryInterval),

        .init("ema", \.ema), .init("ema_decay", \.emaDecay), .init("clip_grad", \.clipGrad),
        .init("clip_value", \.clipValue), .init("gradient_accumulation_steps", \.gradientAccumulationSteps),
        .init("layer_decay", \.layerDecay),

        .init("loss", \.loss), .init("label_smoothing", \.labelSmoothing), .init("aux_factor", \.auxFactor),
        .init("reduction", \.reduction),

        .init("scheduler", \.scheduler), .init("lr", \.lr), .init("min_lr", \.minLR),
        .init("warmup_epochs", \.warmupEpochs), .init("warmup_factor", \.warmupFactor),
        .init("decay_epochs", \.decayEpochs), .init("decay_rate", \.decayRate),
        .init("multi_step_decay_milestones", \.multiStepDecayMilestones), .init("lr_epoch_stair", \.lrEpochStair),
        .init("num_cycles", \.numCycles), .init("cycle_decay", \.cycleDecay),

        .init("opt", \.opt), .init("momentum", \.momentum), .init("weight_decay", \.weightDecay),
        .init("use_nesterov", \.useNesterov), .init("weight_decay_filter", \.weightDecayFilter), .init("eps", \.eps),

        .init("amp_level", \.ampLevel), .init("val_amp_level", \.valAmpLevel), .init("amp_cast_list", \.ampCastList),
        .init("loss_scale_type", \.lossScaleType), .init("loss_scale", \.lossScale),
        .init("drop_overflow_update", \.dropOverflowUpdate), .init("eval_shuffle", \.evalShuffle),

        .init("lr_base", \.lrBase), .init("lr_base_size", \.lrBaseSize), .init("lr_base_scale", \.lrBaseScale),
        .init("strict_data", \.strictData), .init("resume", \.resume), .init("numerics", \.numerics),
        .init("tensorboard", \.tensorboard), .init("tensorboard_dir", \.tensorboardDir),
    ]

    static let fieldsByName: [String: RecipeField] = Dictionary(uniqueKeysWithValues: fields.map { ($0.name, $0) })

    /// Every valid key, in order.
    public static var keys: [String] { fields.map { $0.name } }

    /// Where each key got its value (for error messages about cross-key checks).
    struct Origins {
        var places: [String: (source: String, line: Int?)] = [:]
        func error(_ key: String, _ kind: RecipeError.Kind) -> RecipeError {
            let p = places[key]
            return RecipeError(source: p?.source ?? "defaults", line: p?.line, key: key, kind: kind)
        }
    }

    /// Loads a recipe: MindCV defaults, then the YAML file (if any), then command-line overrides
    /// (`["--batch_size", "64", "--drop-path-rate=0.1", "--distribute"]`), then checks every value.
    public static func load(yamlPath: String?, overrides: [String] = []) throws -> Recipe {
        var text = ""
        if let yamlPath {
            do { text = try String(contentsOfFile: yamlPath, encoding: .utf8) } catch {
                throw RecipeError(source: yamlPath, kind: .unreadable(
                    FileManager.default.fileExists(atPath: yamlPath) ? error.localizedDescription : "no such file"))
            }
        }
        return try parse(yaml: text, source: yamlPath ?? "defaults", overrides: overrides)
    }

    /// Like `load`, from YAML text; `source` names it in errors.
    public static func parse(yaml: String, source: String = "recipe", overrides: [String] = []) throws -> Recipe {
        var recipe = Recipe()
        var origins = Origins()
        try recipe.apply(yaml: yaml, source: source, origins: &origins)
        try recipe.apply(overrides: overrides, origins: &origins)
        try recipe.validate(origins: origins)
        return recipe
    }

    /// Applies command-line overrides to an already loaded recipe and re-checks it.
    public func applying(overrides: [String]) throws -> Recipe {
        var r = self
        var origins = Origins()
        try r.apply(overrides: overrides, origins: &origins)
        try r.validate(origins: origins)
        return r
    }

    mutating func apply(yaml: String, source: String, origins: inout Origins) throws {
        let root: Node?
        try YAMLDepth.check(yaml, source: source)
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw RecipeError(source: source, kind: .syntax("\(error)"))
        }
        guard let root else { return }  // empty document: defaults
        guard case let .mapping(map) = root else {
            throw RecipeError(source: source, line: root.mark?.line, kind: .notAMapping)
        }
        var seen: [String: Int?] = [:]
        var lrLine: (key: String, line: Int?)? = nil
        for (k, v) in map {
            let line = k.mark?.line
            guard case let .scalar(ks) = k else { throw RecipeError(source: source, line: line, kind: .notAMapping) }
            let key = ks.string
            guard let field = Self.fieldsByName[key] else {
                throw RecipeError(source: source, line: line, key: key,
                                  kind: .unknownKey(suggestion: Self.suggestion(for: key, commandLine: false)))
            }
            if let first = seen[key] { throw RecipeError(source: source, line: line, key: key, kind: .duplicateKey(firstLine: first)) }
            seen[key] = line
            let raw = RawValue(v)
            guard let value = field.convert(raw) else {
                throw RecipeError(source: source, line: v.mark?.line ?? line, key: key,
                                  kind: .wrongType(expected: field.expected, found: raw.shown))
            }
            if (key == "lr" || key == "lr_base"), value != .null {
                if let other = lrLine {
                    throw RecipeError(source: source, line: line, key: key, kind: .conflict(
                        "give either 'lr' (absolute) or 'lr_base' (scaled by global batch), not both ('\(other.key)' on line \(other.line.map(String.init) ?? "?"))"))
                }
                lrLine = (key, line)
            }
            field.set(&self, value)
            origins.places[key] = (source, line)
        }
    }

    // MARK: value checks

    static let schedulers = ["constant", "cosine_decay", "warmup_cosine_decay", "exponential_decay",
                             "polynomial_decay", "step_decay", "multi_step_decay"]
    static let optimizers = ["sgd", "momentum", "nesterov", "adam", "adamw"]
    static let losses = ["ce", "bce", "jsd", "asl_single_label", "asl_multi_label"]
    static let interpolations = ["bilinear", "linear", "nearest", "bicubic", "area", "pilcubic", "antialias"]
    /// `dataset` values that mean an image folder (`imagefolder` is timm's name).
    static let datasets = ["imagenet", "", "imagefolder"]
    /// MindCV's built-in readers: refused with how to convert them to an image folder.
    static let builtInDatasets = ["cifar10", "cifar100", "mnist"]
    static let autoAugmentPolicies = ["randaug", "autoaug", "autoaugr", "3a", "trivialaugwide", "augmix"]

    func validate(origins: Origins) throws {
        func fail(_ key: String, _ message: String) -> RecipeError { origins.error(key, .outOfRange(message)) }
        func check(_ ok: Bool, _ key: String, _ message: @autoclosure () -> String) throws {
            if !ok { throw fail(key, message()) }
        }
        func choice(_ value: String, _ key: String, _ allowed: [String], caseInsensitive: Bool = false,
                    unsupported: [String] = []) throws {
            let v = caseInsensitive ? value.lowercased() : value
            if allowed.contains(v) { return }
            if unsupported.contains(v) { throw fail(key, "'\(value)' is a MindCV choice that vitzoo does not implement (supported: \(allowed.joined(separator: ", ")))") }
            let s = closest(to: value, among: allowed, limit: 1).first
            throw fail(key, "'\(value)' is not one of \(allowed.map { $0.isEmpty ? "''" : $0 }.joined(separator: ", "))" + (s.map { "; did you mean '\($0)'?" } ?? ""))
        }
        func probability(_ x: Double, _ key: String) throws { try check(x >= 0 && x <= 1, key, "must be in [0, 1], got \(x)") }
        func nonNegative(_ x: Double, _ key: String) throws { try check(x >= 0, key, "must be >= 0, got \(x)") }
        func positive(_ x: Int, _ key: String) throws { try check(x > 0, key, "must be > 0, got \(x)") }
        func range(_ xs: [Double], _ key: String, max: Double? = nil) throws {
            try check(xs[0] > 0 && xs[0] <= xs[1] && (max == nil || xs[1] <= max!), key,
                      "must be (low, high) with 0 < low <= high" + (max.map { " <= \($0)" } ?? "") + ", got \(xs)")
        }

        // system
        try check(mode == 0 || mode == 1, "mode", "must be 0 (graph) or 1 (pynative), got \(mode)")
        try positive(valInterval, "val_interval")
        try positive(logInterval, "log_interval")
        try check(seed >= 0, "seed", "must be >= 0, got \(seed)")
        try choice(deviceTarget, "device_target", ["Ascend", "GPU", "CPU"])
        // data
        func refuse(_ isRefused: Bool, _ key: String, _ message: @autoclosure () -> String) throws {
            if isRefused { throw origins.error(key, .refused(message())) }
        }
        try refuse(Self.builtInDatasets.contains(dataset.lowercased()), "dataset",
                   "'\(dataset)' is one of MindCV's built-in readers, which vitzoo does not have: convert it to an image folder "
                   + "(data_dir/train/<class>/*.png and data_dir/val/<class>/*.png; `zoo data fashion-mnist` does this for Fashion-MNIST) "
                   + "and set dataset: imagenet")
        try choice(dataset, "dataset", Self.datasets, caseInsensitive: true)
        try refuse(datasetDownload, "dataset_download",
                   "vitzoo does not download data sets: prepare an image folder (see `zoo data --help`) and set dataset_download: False")
        try positive(numParallelWorkers, "num_parallel_workers")
        if let numSamples { try positive(numSamples, "num_samples") }
        try positive(batchSize, "batch_size")
        // augmentation
        try positive(imageResize, "image_resize")
        try range(scale, "scale", max: 1)
        try range(ratio, "ratio")
        try probability(hflip, "hflip")
        try probability(vflip, "vflip")
        if let colorJitter { for x in colorJitter { try nonNegative(x, "color_jitter") } }
        try choice(interpolation, "interpolation", Self.interpolations, caseInsensitive: true)
        if let autoAugment {
            let name = String(autoAugment.prefix { $0 != "-" }).lowercased()
            try check(Self.autoAugmentPolicies.contains(name), "auto_augment",
                      "policy '\(autoAugment)' must start with one of \(Self.autoAugmentPolicies.joined(separator: ", "))")
        }
        try check(augSplits == 0 || augSplits == 3, "aug_splits", "must be 0 or 3, got \(augSplits)")
        try refuse(augSplits == 3, "aug_splits",
                   "AugMix split views (aug_splits: 3 with the JSD loss) are not implemented: set aug_splits: 0 (auto_augment: augmix-... still applies AugMix to each image)")
        try probability(reProb, "re_prob")
        try range(reScale, "re_scale", max: 1)
        try range(reRatio, "re_ratio")
        try positive(reMaxAttempts, "re_max_attempts")
        try check(mean.count == inChannels || mean.count == 3, "mean", "needs one value per input channel (\(inChannels)), got \(mean.count)")
        try check(std.count == mean.count, "std", "needs as many values as mean (\(mean.count)), got \(std.count)")
        try check(std.allSatisfy { $0 > 0 }, "std", "every value must be > 0, got \(std)")
        try check(cropPct > 0 && cropPct <= 1, "crop_pct", "must be in (0, 1], got \(cropPct)")
        try nonNegative(mixup, "mixup")
        try nonNegative(cutmix, "cutmix")
        try probability(cutmixProb, "cutmix_prob")
        try check(augRepeats >= 0, "aug_repeats", "must be >= 0, got \(augRepeats)")
        try check(augRepeats <= 1 || numSamples == nil, "aug_repeats", "cannot be combined with num_samples")
        // model
        try check(!model.isEmpty, "model", "must name a registered model")
        if let numClasses { try positive(numClasses, "num_classes") }
        try positive(inChannels, "in_channels")
        if let dropRate { try check(dropRate >= 0 && dropRate < 1, "drop_rate", "must be in [0, 1), got \(dropRate)") }
        if let dropPathRate { try check(dropPathRate >= 0 && dropPathRate < 1, "drop_path_rate", "must be in [0, 1), got \(dropPathRate)") }
        try check(!(pretrained && !ckptPath.isEmpty), "pretrained", "pretrained and ckpt_path are mutually exclusive")
        try positive(epochSize, "epoch_size")
        // checkpoints
        try positive(ckptSaveInterval, "ckpt_save_interval")
        if let ckptSavePolicy { try choice(ckptSavePolicy, "ckpt_save_policy", ["latest_k", "top_k"]) }
        try check(ckptSavePolicy != "top_k" || valWhileTrain, "ckpt_save_policy", "top_k ranks checkpoints by validation accuracy and needs val_while_train: True")
        try positive(keepCheckpointMax, "keep_checkpoint_max")
        try check(recoveryInterval >= 0, "recovery_interval", "must be >= 0 (0 = no recovery checkpoints), got \(recoveryInterval)")
        // EMA / clipping / accumulation
        try probability(emaDecay, "ema_decay")
        try check(clipValue > 0, "clip_value", "must be > 0, got \(clipValue)")
        try positive(gradientAccumulationSteps, "gradient_accumulation_steps")
        if let layerDecay { try check(layerDecay > 0 && layerDecay <= 1, "layer_decay", "must be in (0, 1], got \(layerDecay)") }
        // loss
        try choice(loss, "loss", Self.losses, caseInsensitive: true)
        try refuse(loss.lowercased() != "ce", "loss",
                   "only CE (softmax cross-entropy, with label_smoothing) is implemented: set loss: CE")
        try refuse(auxFactor != 0, "aux_factor", "none of the zoo's models has auxiliary heads: set aux_factor: 0")
        try check(labelSmoothing >= 0 && labelSmoothing < 1, "label_smoothing", "must be in [0, 1), got \(labelSmoothing)")
        try nonNegative(auxFactor, "aux_factor")
        try choice(reduction, "reduction", ["mean", "sum", "none"])
        try refuse(reduction != "mean", "reduction", "the loss is averaged over the batch: set reduction: mean (scale lr to get the effect of sum)")
        // schedule
        try choice(scheduler, "scheduler", Self.schedulers, unsupported: ["one_cycle", "cyclic"])
        if let lr { try nonNegative(lr, "lr") }
        try nonNegative(minLR, "min_lr")
        try check(warmupEpochs >= 0, "warmup_epochs", "must be >= 0, got \(warmupEpochs)")
        try probability(warmupFactor, "warmup_factor")
        try positive(decayEpochs, "decay_epochs")
        try check(decayRate > 0, "decay_rate", "must be > 0, got \(decayRate)")
        try check(multiStepDecayMilestones.allSatisfy { $0 >= 0 }, "multi_step_decay_milestones", "milestones must be >= 0, got \(multiStepDecayMilestones)")
        try positive(numCycles, "num_cycles")
        try check(cycleDecay > 0, "cycle_decay", "must be > 0, got \(cycleDecay)")
        // optimizer
        try choice(opt, "opt", Self.optimizers, caseInsensitive: true,
                   unsupported: ["lion", "nadam", "adan", "rmsprop", "adagrad", "lamb"])
        try check(momentum >= 0 && momentum < 1, "momentum", "must be in [0, 1), got \(momentum)")
        try nonNegative(weightDecay, "weight_decay")
        try choice(weightDecayFilter, "weight_decay_filter", ["disable", "auto", "norm_and_bias"])
        try check(eps > 0, "eps", "must be > 0, got \(eps)")
        // mixed precision (ignored on CPU, still checked)
        try choice(ampLevel, "amp_level", ["O0", "O1", "O2", "O3"])
        try choice(valAmpLevel, "val_amp_level", ["O0", "O1", "O2", "O3"])
        try choice(lossScaleType, "loss_scale_type", ["fixed", "dynamic", "auto"])
        try check(lossScale >= 1, "loss_scale", "must be >= 1, got \(lossScale)")
        try refuse(evalShuffle, "eval_shuffle", "evaluation reads the split in order and the order does not change the metrics: set eval_shuffle: False")
        // vitzoo
        if let lrBase { try nonNegative(lrBase, "lr_base") }
        try positive(lrBaseSize, "lr_base_size")
        try choice(lrBaseScale, "lr_base_scale", ["linear", "sqrt"])
        if let numerics { try choice(numerics, "numerics", Numerics.allCases.map(\.rawValue)) }
    }

    // MARK: output

    /// The resolved recipe as YAML, every key in `config.py` order, loadable again by `load`.
    /// Written beside the checkpoints; the header records the effective LR for `worldSize` ranks.
    public func resolvedYAML(worldSize: Int = 1) -> String {
        var lines = ["# vitzoo resolved recipe (defaults < recipe < command line)"]
        let lrNote = lrBase != nil && lr == nil
            ? "lr_base \(lrBase!) x (\(globalBatch(worldSize: worldSize)) / \(lrBaseSize))\(lrBaseScale == "sqrt" ? "^0.5" : "")"
            : (lr == nil ? "MindCV default" : "absolute lr")
        lines.append("# effective lr: \(effectiveLR(worldSize: worldSize)) (\(lrNote); world size \(worldSize))")
        for f in Self.fields { lines.append("\(f.name): \(f.yaml(f.get(self)))") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes `resolvedYAML` to `path` atomically.
    public func writeResolved(to path: String, worldSize: Int = 1) throws {
        try writeAtomically(Data(resolvedYAML(worldSize: worldSize).utf8), to: path)
    }
}
