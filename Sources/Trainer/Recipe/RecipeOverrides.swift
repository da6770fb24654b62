import Foundation
import Yams

// Command-line overrides of a recipe, in either dialect:
//   * MindCV: `--key value`, `--key=value`, a bare `--flag` for booleans, snake_case or kebab-case;
//   * timm: the aliases of RecipeAliases.swift (`--epochs 3`, `-b 64`, `-j 4`, `--model-ema`,
//     `--clip-grad 1.0`), list values as separate words (`--scale 0.08 1.0`), and the data folder as
//     the one positional argument.
// A boolean takes the next word only when it reads as a boolean, so `--distribute DATA` keeps DATA
// as the data folder.

extension Recipe {
    /// The words that read as boolean values.
    static func isBoolLiteral(_ s: String) -> Bool {
        ["yes", "true", "1", "no", "false", "0"].contains(s.lowercased())
    }

    static func isNumber(_ s: String) -> Bool { RecipeField.double(s) != nil }

    mutating func apply(overrides args: [String], origins: inout Origins) throws {
        let source = "command line"
        var i = 0
        var positional: String? = nil

        /// Sets `key` from the text of `flag`, converting through the key's field.
        func set(_ key: String, _ text: String?, flag: String) throws {
            guard let field = Self.fieldsByName[key] else {
                throw RecipeError(source: source, key: flag, kind: .unknownKey(suggestion: Self.suggestion(for: key, commandLine: true)))
            }
            let raw: RawValue
            if let text {
                if ["null", "none", "~"].contains(text.lowercased()) {
                    raw = .scalar("null", quoted: false)
                } else if text.hasPrefix("["), YAMLDepth.deepest(text, stopAbove: YAMLDepth.limit).depth <= YAMLDepth.limit, let node = try? Yams.compose(yaml: text) {
                    raw = RawValue(node)
                } else {
                    raw = .scalar(text, quoted: true)
                }
            } else if field.kind == .bool {
                raw = .scalar("true", quoted: true)
            } else {
                throw RecipeError(source: source, key: flag, kind: .missingValue)
            }
            guard let value = field.convert(raw) else {
                throw RecipeError(source: source, key: flag, kind: .wrongType(expected: field.expected, found: raw.shown))
            }
            field.set(&self, value)
            origins.places[key] = (source, nil)
            // The later layer decides between an absolute and a scaled LR.
            if key == "lr", value != .null { lrBase = nil }
            if key == "lr_base", value != .null { lr = nil }
        }

        /// The value words after a flag: one word, or for list keys every following number
        /// (`--scale 0.08 1.0`); booleans take a following word only when it is a boolean.
        func value(for kind: RecipeField.Kind?) -> String? {
            guard i < args.count else { return nil }
            let next = args[i]
            let isFlag = next.hasPrefix("-") && !Self.isNumber(next)
            if isFlag { return nil }
            if kind == .bool && !Self.isBoolLiteral(next) && !["null", "none"].contains(next.lowercased()) { return nil }
            i += 1
            var words = [next]
            switch kind {
            case .doubles?, .ints?, .colorJitter?, .reValue?:
                if !next.contains(","), !next.hasPrefix("["), Self.isNumber(next) {
                    while i < args.count, Self.isNumber(args[i]) { words.append(args[i]); i += 1 }
                }
            default: break
            }
            return words.joined(separator: ",")
        }

        while i < args.count {
            let arg = args[i]
            i += 1
            // The one bare argument is the data folder (timm's positional `data`).
            if !arg.hasPrefix("-") || arg == "-" {
                if let positional {
                    throw RecipeError(source: source, key: arg, kind: .syntax(
                        "only the data folder may be given without a flag, and it was already given ('\(positional)'); use --key value"))
                }
                positional = arg
                try set("data_dir", arg, flag: arg)
                continue
            }
            let dashes = arg.hasPrefix("--") ? 2 : 1
            guard arg.count > dashes else {
                throw RecipeError(source: source, key: arg, kind: .syntax("expected --key value, --key=value or --flag, got '\(arg)'"))
            }
            var body = String(arg.dropFirst(dashes))
            var text: String? = nil
            if let eq = body.firstIndex(of: "=") {
                text = String(body[body.index(after: eq)...])
                body = String(body[..<eq])
            }
            let flag = String(repeating: "-", count: dashes) + body
            let name = body.replacingOccurrences(of: "-", with: "_")

            // A recipe key (long form only).
            // `--clip-grad` is MindCV's boolean unless a norm follows (timm's `--clip-grad 1.0`).
            let timmClip: Bool = {
                guard name == "clip_grad", let v = text ?? (i < args.count ? args[i] : nil) else { return false }
                return Self.isNumber(v) && !Self.isBoolLiteral(v)
            }()
            if dashes == 2, !timmClip, let field = Self.fieldsByName[name] {
                // `--tensorboard DIR`: on, writing to DIR.
                if name == "tensorboard", text == nil, i < args.count, !args[i].hasPrefix("-"), !Self.isBoolLiteral(args[i]) {
                    try set("tensorboard", "true", flag: flag)
                    try set("tensorboard_dir", args[i], flag: flag)
                    i += 1
                    continue
                }
                try set(name, text ?? value(for: field.kind), flag: flag)
                continue
            }
            guard let alias = Self.timmAliasesByFlag[name] else {
                throw RecipeError(source: source, key: flag, kind: .unknownKey(suggestion: Self.suggestion(for: name, commandLine: true)))
            }
            switch alias.rule {
            case let .rename(key):
                try set(key, text ?? value(for: Self.fieldsByName[key]?.kind), flag: flag)
            case let .set(key, v):
                try set(key, text ?? value(for: .bool) ?? v, flag: flag)
            case let .translate(key, translate):
                guard let given = text ?? value(for: .string) else { throw RecipeError(source: source, key: flag, kind: .missingValue) }
                do { try set(key, try translate(given), flag: flag) } catch let refusal as AliasRefusal {
                    throw RecipeError(source: source, key: flag, kind: .refused(refusal.message))
                }
            case .clipGrad:
                guard let given = text ?? value(for: .double) else { throw RecipeError(source: source, key: flag, kind: .missingValue) }
                try set("clip_grad", "true", flag: flag)
                try set("clip_value", given, flag: flag)
            case let .refuse(message):
                throw RecipeError(source: source, key: flag, kind: .refused("timm's \(flag) is not supported: \(message)"))
            }
        }
    }
}
