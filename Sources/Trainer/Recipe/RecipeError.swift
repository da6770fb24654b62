/// Why a recipe (YAML file or command-line override) was rejected. Every error names where it came
/// from (file or `command line`), the line when known, and the key; unknown keys carry the closest
/// valid key.
public struct RecipeError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// The file could not be read or is not YAML (message from the reader).
        case unreadable(String)
        case syntax(String)
        /// The document is not a mapping of keys to values.
        case notAMapping
        case unknownKey(suggestion: String?)
        case duplicateKey(firstLine: Int?)
        case wrongType(expected: String, found: String)
        case outOfRange(String)
        /// A command-line flag without a value (and not a boolean).
        case missingValue
        /// A key or flag that is accepted elsewhere but not implemented here; the message says what to do.
        case refused(String)
        /// Two keys that cannot be given together.
        case conflict(String)
    }

    /// File path, or `command line`.
    public var source: String
    /// 1-based line, when known.
    public var line: Int?
    public var key: String?
    public var kind: Kind

    public init(source: String, line: Int? = nil, key: String? = nil, kind: Kind) {
        self.source = source; self.line = line; self.key = key; self.kind = kind
    }

    public var description: String {
        var head = source
        if let line { head += ":\(line)" }
        if let key { head += ": '\(key)'" }
        let what: String
        switch kind {
        case let .unreadable(m): what = "cannot read recipe: \(m)"
        case let .syntax(m): what = "YAML syntax error: \(m)"
        case .notAMapping: what = "a recipe must be a mapping of MindCV keys to values"
        case let .unknownKey(s): what = "unknown key" + (s.map { "; did you mean \(Recipe.describeSuggestion($0))?" } ?? "")
        case let .duplicateKey(first): what = "key given twice" + (first.map { " (first on line \($0))" } ?? "")
        case let .wrongType(e, f): what = "expected \(e), got \(f)"
        case let .outOfRange(m): what = m
        case .missingValue: what = "needs a value (--key value or --key=value)"
        case let .refused(m): what = m
        case let .conflict(m): what = m
        }
        return "\(head): \(what)"
    }
}
