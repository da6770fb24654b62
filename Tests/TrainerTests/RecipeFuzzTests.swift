import Foundation
import XCTest
import TestSupport
@testable import Trainer

/// Recipe loading under the mutation fuzzer (docs/fuzzing.md): every text parses to a checked
/// recipe or throws a `RecipeError` naming its source; nesting is bounded before the YAML parser.
final class RecipeFuzzTests: XCTestCase {
    func testMutatedRecipesParseOrThrowNamedErrors() throws {
        let corpus = try MutationFuzzer.corpus("recipe").map(\.bytes)
        let r = MutationFuzzer(seed: 7).run(corpus: corpus, refusing: RecipeError.self, { bytes, _ in
            _ = try Recipe.parse(yaml: String(decoding: bytes, as: UTF8.self), source: "fuzz.yaml")
        }, refused: { error, label in
            XCTAssertEqual(error.source, "fuzz.yaml", label)
        })
        XCTAssertGreaterThan(r.inputs, corpus.count)
        XCTAssertGreaterThan(r.accepted, 0)
        XCTAssertGreaterThan(r.refused, 0)
    }

    /// Row 7: 5,000 nested brackets (flow) and 200 nested block sequences are refused with the line.
    func testDeepNestingIsRefusedBeforeParsing() throws {
        for (name, line) in [("row07-nested-5000.yaml", 2), ("nested-block-200.yaml", 64)] {
            let text = try String(contentsOfFile: Fixtures.path("fuzz/recipe/" + name), encoding: .utf8)
            XCTAssertThrowsError(try Recipe.parse(yaml: text, source: name), name) { e in
                guard let r = e as? RecipeError, case .syntax(let m) = r.kind else { return XCTFail("\(e)") }
                XCTAssertEqual(r.line, line, "\(r)")
                XCTAssertTrue(m.contains("nested"), m)
            }
        }
        XCTAssertEqual(YAMLDepth.deepest("a: 1\nb: [1, [2, 3]]\nc: '[[[['  # [[[\n").depth, 3)
        XCTAssertEqual(YAMLDepth.deepest("a:\n  b:\n    - - x\n").depth, 5)
        let published = try String(contentsOfFile: Fixtures.path("fuzz/recipe/valid.yaml"), encoding: .utf8)
        XCTAssertLessThanOrEqual(YAMLDepth.deepest(published).depth, 3)
    }
}
