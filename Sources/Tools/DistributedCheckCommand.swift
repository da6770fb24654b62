import ArgumentParser
import Foundation
import Trainer
import DistributedMPI
import ZooBenchmark

/// `mpirun -n 2 zoo distributed-check --check equivalence|shards|failure`: self-checks of data
/// parallelism for the test suite (Tests/DistributedTests/DistributedTests.swift). Hidden from help.
struct DistributedCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distributed-check", abstract: "Self-checks of distributed training (run under mpirun).",
        shouldDisplay: false)

    @Option(help: "equivalence, shards, failure, or bench.")
    var check: String = "equivalence"

    @Option(help: "Training steps (equivalence).")
    var steps: Int = 5

    @Option(help: "Batch per rank (equivalence).")
    var batch: Int = 8

    @Option(help: "Relative tolerance (equivalence).")
    var tolerance: Double = 1e-5

    @Option(help: "Bucket size in bytes (small, so that several buckets and in-place reductions are exercised).")
    var bucketBytes: Int = 8192

    @Option(help: "Megabytes of gradients to all-reduce (bench).")
    var megabytes: Double = 18.2

    @Option(help: "How the failing rank fails: kill, hang or error (failure).")
    var simulateFailure: String = "kill"

    @Option(help: "The rank that fails (failure).")
    var failRank: Int = 1

    @Option(help: "The step at which it fails (failure).")
    var failStep: Int = 3

    func run() throws {
        let communicator = try makeCommunicator(distribute: true)
        let line: String
        switch check {
        case "equivalence":
            line = try DistributedChecks.equivalence(communicator: communicator, steps: steps, batch: batch,
                                                     tolerance: tolerance, bucketBytes: bucketBytes)
        case "shards":
            line = try DistributedChecks.shardCoverage(communicator: communicator)
        case "failure":
            guard let mode = DistributedChecks.FailureMode(rawValue: simulateFailure) else {
                throw ValidationError("--simulate-failure must be one of kill, hang, error")
            }
            line = try DistributedChecks.simulateFailure(communicator: communicator, mode: mode, failRank: failRank, step: failStep)
        case "bench":
            line = try DistributedChecks.allReduceBenchmark(communicator: communicator, megabytes: megabytes, repeats: 30)
        default:
            throw ValidationError("--check must be equivalence, shards, failure or bench, got '\(check)'")
        }
        try communicator.barrier()
        if communicator.rank == 0 { print("PASS \(line)") }
    }
}
