import ArgumentParser
import Foundation
import Models
import DataPipeline
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
            print(ModelRegistry.formatTable(rows))
        }
    }
}
