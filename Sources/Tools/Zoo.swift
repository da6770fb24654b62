import ArgumentParser
import Foundation
import Tensor

@main
struct Zoo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zoo",
        abstract: "Vision transformers on the CPU: train, validate, predict, benchmark.",
        subcommands: [TrainCommand.self, ValidateCommand.self, PredictCommand.self, ListCommand.self, DataCommand.self])

    static func main() {
        BLASRuntime.preferFastestCore()
        setvbuf(stdout, nil, _IOLBF, 0)  // progress lines appear as they are printed, also when redirected
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do { try command.run() } catch { exit(withError: error) }
    }
}
