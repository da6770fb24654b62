import ArgumentParser
import Foundation
import Models
import DistributedMPI
import ZooBenchmark

/// `zoo list [--json]`: every registered model with its parameter counts beside the model card.
struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the registered models and their parameter counts.")

    @Flag(name: .long, help: "Print a JSON array, one object per model.")
    var json = false

    func run() throws {
        let rows = ModelRegistry.entries.map { ModelRegistry.summary(of: $0) }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            enc.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try enc.encode(rows), as: UTF8.self))
        } else {
            print(Self.formatTable(rows))
        }
    }
}

extension ListCommand {
    /// The `zoo list` table as text (Markdown-compatible).
    static func formatTable(_ rows: [ModelSummary]) -> String {
        func m(_ n: Int) -> String { String(format: "%.4f", Double(n) / 1e6) }
        var lines = ["| model | family | trainable (M) | with BN stats (M) | without head (M) | counting rule | counted (M) | published (M) | reproduced |",
                     "|---|---|---:|---:|---:|---|---:|---:|---|"]
        for r in rows {
            let pub = r.publishedParamsM.map { String(format: "%.2f", $0) } ?? "-"
            lines.append("| \(r.name) | \(r.family) | \(m(r.trainableParams)) | \(m(r.storedParams)) | \(m(r.paramsWithoutHead)) | \(r.countingRule) | \(m(r.countedParams)) | \(pub) | \(r.agreement.rawValue) |")
        }
        return lines.joined(separator: "\n")
    }
}
