import ArgumentParser
import Tensor

@main
struct Zoo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zoo",
        abstract: "Vision transformers on the CPU: train, validate, predict, benchmark.",
        subcommands: [ListCommand.self, DataCommand.self])

    static func main() {
        BLASRuntime.preferFastestCore()
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do { try command.run() } catch { exit(withError: error) }
    }
}
