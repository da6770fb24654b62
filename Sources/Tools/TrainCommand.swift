import ArgumentParser
import Foundation
import Trainer
import DistributedMPI
import ZooBenchmark

/// `zoo train --config RECIPE.yaml [--key value ...]`: any recipe key may follow as a flag, in
/// MindCV's snake_case or in kebab-case (`--data_dir D`, `--batch-size 64`, `--resume DIR`).
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train a model from a recipe file.",
        discussion: "Every recipe key is accepted as --key value (snake_case or kebab-case); flags override the recipe, which overrides the defaults. --resume PATH continues a run from its checkpoint directory or file.")

    @Option(name: [.customShort("c"), .customLong("config")], help: "Recipe YAML file (MindCV keys).")
    var config: String?

    @Argument(parsing: .allUnrecognized, help: "Recipe keys as --key value.")
    var overrides: [String] = []

    func run() throws {
        let recipe = try Recipe.load(yamlPath: config, overrides: overrides)
        let communicator = try makeCommunicator(distribute: recipe.distribute)
        let run = try TrainingRun(recipe: recipe, communicator: communicator, log: emit)
        installInterruptHandler(run)
        try run.run()
    }
}

/// Ctrl-C stops after the current step (the last completed epoch stays the resume point); a second Ctrl-C exits at once.
func installInterruptHandler(_ run: TrainingRun) {
    nonisolated(unsafe) let target = run
    signal(SIGINT, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    nonisolated(unsafe) var count = 0
    source.setEventHandler {
        count += 1
        if count > 1 { exit(130) }
        FileHandle.standardError.write(Data("interrupt: stopping after the current step; the last completed epoch's checkpoint is kept (Ctrl-C again to quit now)\n".utf8))
        target.stopRequested = true
    }
    source.resume()
    interruptSource = source
}
nonisolated(unsafe) var interruptSource: DispatchSourceSignal?
