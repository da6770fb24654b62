/// A bound on how deeply a YAML text nests, checked before the parser sees it: the parser and the
/// node tree are recursive, so a document nested a few thousand levels deep (`[[[[…`) overflows the
/// stack (docs/input-validation.md). Recipes are flat; anything beyond `limit` is refused.
enum YAMLDepth {
    /// Nesting levels accepted (a recipe uses two or three).
    static let limit = 64

    /// The deepest nesting in `text` and the 1-based line where it is first reached. It counts flow
    /// brackets (`[`, `{`) outside quotes and comments, plus block levels (indentation steps and
    /// `- ` sequence markers); it over-counts rather than under-counts. Stops at the first line
    /// deeper than `stopAbove`.
    static func deepest(_ text: String, stopAbove: Int = Int.max) -> (depth: Int, line: Int) {
        var best = (depth: 0, line: 1)
        var flow = 0
        var indents: [Int] = []
        var line = 1
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            defer { line += 1 }
            let bytes = Array(raw.utf8)
            var i = 0
            while i < bytes.count, bytes[i] == 0x20 { i += 1 }
            if flow == 0 {
                guard i < bytes.count, bytes[i] != 0x23 /* # */ else { continue }
                while let last = indents.last, last >= i { indents.removeLast() }
                indents.append(i)
                var markers = 0
                while i + 1 < bytes.count, bytes[i] == 0x2D /* - */, bytes[i + 1] == 0x20 || bytes[i + 1] == 0x2D {
                    markers += 1
                    i += bytes[i + 1] == 0x20 ? 2 : 1
                    while i < bytes.count, bytes[i] == 0x20 { i += 1 }
                }
                let blockDepth = indents.count + markers
                if blockDepth > best.depth { best = (blockDepth, line) }
                if best.depth > stopAbove { return best }
            }
            var quote: UInt8? = nil
            var previous: UInt8 = 0x20
            while i < bytes.count {
                let c = bytes[i]
                if let q = quote {
                    if c == q { quote = nil }
                } else if c == 0x23, previous == 0x20 || previous == 0x09 {
                    break  // comment
                } else if c == 0x22 || c == 0x27 {
                    quote = c
                } else if c == 0x5B || c == 0x7B {
                    flow += 1
                    if indents.count + flow > best.depth { best = (indents.count + flow, line) }
                    if best.depth > stopAbove { return best }
                } else if c == 0x5D || c == 0x7D {
                    flow = max(flow - 1, 0)
                }
                previous = c
                i += 1
            }
        }
        return best
    }

    /// Throws a syntax error naming the line when `text` nests deeper than `limit`.
    static func check(_ text: String, source: String) throws {
        let d = deepest(text, stopAbove: limit)
        if d.depth > limit {
            throw RecipeError(source: source, line: d.line,
                              kind: .syntax("nested more than \(limit) levels deep; a recipe may nest at most \(limit) levels"))
        }
    }
}
