import ArgumentParser
import Foundation
import Trainer
import DistributedMPI
import ZooBenchmark

/// `zoo train --config RECIPE.yaml [--key value ...] [DATA_DIR]`: any recipe key may follow as a
/// flag, in MindCV's snake_case or in kebab-case (`--data_dir D`, `--batch-size 64`, `--resume DIR`),
/// and timm's train.py names are aliases (`--epochs 3`, `-b 64`, `--model-ema`; docs/cli.md).
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train a model from a recipe file.",
        usage: "zoo train [-c RECIPE.yaml] [--key value ...] [DATA_DIR]",
        discussion: """
            Every recipe key is accepted as --key value (snake_case or kebab-case); flags override the recipe, \
            which overrides the defaults. timm's train.py flags are aliases (--epochs, --sched, --smoothing, \
            --drop-path, --aa, --reprob, --model-ema, --output, -b, -j, --img-size, --initial-checkpoint, \
            --checkpoint-hist, the data folder as the positional argument; see docs/cli.md). --resume PATH continues \
            a run from its checkpoint directory or file.

            Recipe keys (type, default, meaning), grouped as in MindCV's config.py:

            """ + Recipe.keyHelp())

    @Option(name: [.customShort("c"), .customLong("config")], help: "Recipe YAML file (MindCV keys).")
    var config: String?

    @Flag(name: [.customLong("dry_run"), .customLong("dry-run")],
          help: "Print the resolved recipe, effective lr, global batch, parameter count and images per split; train nothing.")
    var dryRun = false

    @Argument(parsing: .allUnrecognized, help: "Recipe keys as --key value, timm aliases, and the data folder.")
    var overrides: [String] = []

    func run() throws {
        let recipe = try Recipe.load(yamlPath: config, overrides: overrides)
        if dryRun {
            print(try DryRunSummary(recipe: recipe).text)
            return
        }
        let communicator = try makeCommunicator(distribute: recipe.distribute)
        let notes = recipe.noEffectSettings
        if communicator.rank == 0, !notes.isEmpty { emit("note: no effect on a CPU fp32 run: " + notes.joined(separator: ", ")) }
        // On a terminal the run's log lines print above one updating progress line.
        let progress = ProgressLine(phase: "train", unit: "steps", enabled: communicator.rank == 0)
        let terminal = progress.terminal
        let log: @Sendable (String) -> Void = { line in if terminal { progress.line(line) } else { emit(line) } }
        let run = try TrainingRun(recipe: recipe, communicator: communicator, log: log)
        if progress.terminal { run.addObserver(TrainProgressObserver(progress: progress)) }
        installInterruptHandler(run)
        try run.run()
    }
}

/// Ctrl-C stops after the current step (the newest epoch or recovery checkpoint stays the resume point); a second Ctrl-C exits at once.
func installInterruptHandler(_ run: TrainingRun) {
    nonisolated(unsafe) let target = run
    signal(SIGINT, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
    nonisolated(unsafe) var count = 0
    source.setEventHandler {
        count += 1
        if count > 1 { exit(130) }
        FileHandle.standardError.write(Data("interrupt: stopping after the current step; the newest epoch or recovery checkpoint is kept for --resume (Ctrl-C again to quit now)\n".utf8))
        target.stopRequested = true
    }
    source.resume()
    interruptSource = source
}
nonisolated(unsafe) var interruptSource: DispatchSourceSignal?
