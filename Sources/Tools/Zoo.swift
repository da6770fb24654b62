import ArgumentParser
import Foundation
import Tensor
import DistributedMPI
import ZooBenchmark

@main
struct Zoo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zoo",
        abstract: "Vision transformers on the CPU: train, validate, predict, benchmark.",
        subcommands: [TrainCommand.self, ValidateCommand.self, PredictCommand.self, ListCommand.self, DataCommand.self, BenchmarkCommand.self, DistributedCheckCommand.self, ExportCommand.self])

    static func main() {
        BLASRuntime.preferFastestCore()
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do { try command.run() } catch { exit(withError: error) }
    }
}

/// Prints a line and flushes it, so progress appears as it happens also when output is redirected.
@Sendable func emit(_ line: String) {
    print(line)
    fflush(nil)
}
