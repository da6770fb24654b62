import Foundation
import Tensor
import TestSupport
import XCTest
@testable import DistributedMPI
import DataPipeline
@testable import Trainer

/// Data parallelism over OpenMPI: runs `mpirun -n 2 zoo distributed-check …` (the hidden
/// self-check command, Sources/Tools/DistributedCheckCommand.swift) and checks its verdicts.
/// Skipped when mpirun or the built `zoo` is missing; CI installs OpenMPI, so there they run.
final class DistributedTests: XCTestCase {
    struct Outcome { var status: Int32; var output: String; var seconds: Double; var timedOut: Bool }

    /// Runs a command with a deadline; output is stdout and stderr together.
    func run(_ executable: String, _ arguments: [String], environment extra: [String: String] = [:], deadline: Double) throws -> Outcome {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        // Never inherit an enclosing MPI job's identity.
        for k in env.keys where k.hasPrefix("OMPI_COMM_WORLD") || k.hasPrefix("PMIX_") || k == "PMI_RANK" { env[k] = nil }
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"  // containers without ptrace/CMA
        for (k, v) in extra { env[k] = v }
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        let collected = OutputBox()
        pipe.fileHandleForReading.readabilityHandler = { h in collected.append(h.availableData) }
        let start = Date()
        try p.run()
        var timedOut = false
        while p.isRunning {
            if Date().timeIntervalSince(start) > deadline {
                timedOut = true
                p.terminate()
                Thread.sleep(forTimeInterval: 2)
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
                break
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        p.waitUntilExit()
        pipe.fileHandleForReading.readabilityHandler = nil
        collected.append(pipe.fileHandleForReading.readDataToEndOfFile())
        return Outcome(status: p.terminationStatus, output: collected.text, seconds: Date().timeIntervalSince(start), timedOut: timedOut)
    }

    final class OutputBox: @unchecked Sendable {
        let lock = NSLock()
        var data = Data()
        func append(_ d: Data) { lock.lock(); data.append(d); lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
    }

    func mpirun(ranks: Int = 2, _ arguments: [String], environment: [String: String] = [:], deadline: Double = 120) throws -> Outcome {
        guard let mpirun = BuiltExecutables.mpirun else { throw XCTSkip("mpirun not found (apt-get install openmpi-bin libopenmpi-dev)") }
        guard let zoo = BuiltExecutables.zoo else { throw XCTSkip("the zoo executable is not beside the test bundle; build it first (swift build)") }
        var args = ["--allow-run-as-root", "--oversubscribe", "-n", "\(ranks)"]
        for k in environment.keys.sorted() { args += ["-x", k] }
        return try run(mpirun, args + [zoo, "distributed-check"] + arguments, environment: environment, deadline: deadline)
    }

    /// Two ranks × batch b for k AdamW steps equal one rank × batch 2b on the same samples.
    func testTwoRanksMatchOneRankWithDoubleBatch() throws {
        let o = try mpirun(["--check", "equivalence", "--steps", "6", "--batch", "8", "--tolerance", "1e-5"])
        XCTAssertFalse(o.timedOut, o.output)
        XCTAssertEqual(o.status, 0, o.output)
        XCTAssertTrue(o.output.contains("PASS equivalence: 2 ranks x batch 8 vs 1 rank x batch 16"), o.output)
        let line = o.output.split(separator: "\n").first { $0.contains("max relative difference") }.map(String.init) ?? ""
        let value = line.components(separatedBy: "max relative difference ").dropFirst().first?.split(separator: " ").first.flatMap { Double($0) }
        XCTAssertNotNil(value, o.output)
        XCTAssertLessThanOrEqual(value ?? 1, 1e-5, line)
    }

    /// Three ranks too (uneven bucket boundaries do not matter; the reduction is exact per element).
    func testThreeRanksMatchOneRank() throws {
        let o = try mpirun(ranks: 3, ["--check", "equivalence", "--steps", "4", "--batch", "4"])
        XCTAssertEqual(o.status, 0, o.output)
        XCTAssertTrue(o.output.contains("PASS equivalence: 3 ranks"), o.output)
    }

    /// Shards: validation reads each sample exactly once across ranks; training reads each sample.
    func testShardsCoverEverySampleOnce() throws {
        let o = try mpirun(["--check", "shards"])
        XCTAssertEqual(o.status, 0, o.output)
        XCTAssertTrue(o.output.contains("PASS shard coverage: 2 ranks"), o.output)
    }

    /// A rank killed mid-run ends the job (non-zero, bounded time) and the output names it.
    func testKilledRankEndsTheJob() throws {
        let o = try mpirun(["--check", "failure", "--simulate-failure", "kill", "--fail-rank", "1", "--fail-step", "3"], deadline: 60)
        XCTAssertFalse(o.timedOut, "the job hung after rank 1 was killed:\n\(o.output)")
        XCTAssertNotEqual(o.status, 0, o.output)
        XCTAssertLessThan(o.seconds, 60, o.output)
        XCTAssertTrue(o.output.contains("rank 1"), o.output)
        XCTAssertFalse(o.output.contains("PASS"), o.output)
    }

    /// A rank that throws (bad data, failed write) ends the job too, naming itself.
    func testFailingRankEndsTheJob() throws {
        let o = try mpirun(["--check", "failure", "--simulate-failure", "error", "--fail-rank", "1"], deadline: 60)
        XCTAssertFalse(o.timedOut, o.output)
        XCTAssertNotEqual(o.status, 0, o.output)
        XCTAssertTrue(o.output.contains("rank 1"), o.output)
    }

    /// A rank that stops communicating without dying: the others' watchdog aborts the job.
    func testHangingRankTriggersTheWatchdog() throws {
        let o = try mpirun(["--check", "failure", "--simulate-failure", "hang", "--fail-rank", "1"],
                           environment: ["VITZOO_MPI_TIMEOUT": "5"], deadline: 60)
        XCTAssertFalse(o.timedOut, "the watchdog did not end the job:\n\(o.output)")
        XCTAssertNotEqual(o.status, 0, o.output)
        XCTAssertTrue(o.output.contains("rank 0: collective"), o.output)
        XCTAssertTrue(o.output.contains("timed out after 5 s"), o.output)
    }

    /// `--distribute` outside mpirun: a logged single-rank run, no MPI needed.
    func testDistributeOutsideMPIRunIsASingleRank() throws {
        guard let zoo = BuiltExecutables.zoo else { throw XCTSkip("the zoo executable is not beside the test bundle") }
        let o = try run(zoo, ["distributed-check", "--check", "shards"], deadline: 60)
        XCTAssertEqual(o.status, 0, o.output)
        XCTAssertTrue(o.output.contains("not launched by mpirun: running as a single rank"), o.output)
        XCTAssertTrue(o.output.contains("PASS shard coverage: 1 ranks"), o.output)
    }

    /// In-process: the bucket plan packs small gradients together (last parameter first) and
    /// reduces large ones in place.
    func testBucketPlan() {
        let b = GradientBuckets(bytes: 4096)  // 1024 floats
        b.replan([100, 0, 450, 300, 2000, 400])
        // last first: 400, 2000 (≥ half a bucket: in place), 300 → [400, 300]; 450 does not fit → [450, 100]
        XCTAssertEqual(b.plan.filter { $0.inPlace }.map { $0.members.map { $0.parameter } }, [[4]])
        XCTAssertEqual(b.plan.filter { !$0.inPlace }.map { $0.members.map { $0.parameter } }, [[5, 3], [2, 0]])
        XCTAssertEqual(b.plan.filter { !$0.inPlace }.map { $0.count }, [700, 550])
        XCTAssertEqual(b.plan.filter { !$0.inPlace }.map { $0.offset }, [0, 700])
        XCTAssertGreaterThanOrEqual(b.capacity, 1250)
    }

    /// A stand-in for R ranks that all hold the same gradients: the sum is R × the buffer.
    final class MirrorCommunicator: Communicator {
        let worldSize: Int
        var rank: Int { 0 }
        var reductions = 0
        init(worldSize: Int) { self.worldSize = worldSize }
        func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
            reductions += 1
            for i in 0..<count { buffer[i] *= Float(worldSize) }
        }
        func allReduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
            for i in 0..<count { buffer[i] *= Double(worldSize) }
        }
        func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {}
        func barrier() throws {}
    }

    /// Packing, reduction and the scaled copy-back return every gradient to its own parameter:
    /// with identical gradients on all ranks the average is the gradient itself.
    func testBucketedAverageRoutesEveryGradientBack() throws {
        let data = DistributedChecks.SyntheticSet(count: 32, dim: 24, classes: 5, seed: 1)
        let model = DistributedChecks.TinyNet(inputs: 24, hidden: 48, classes: 5, seed: 2)
        let (x, y) = data.batch(Array(0..<32)[...])
        Tensor.crossEntropy(logits: model(x), labels: y).backward()
        let params = model.parameters
        let before = params.map { $0.grad!.scalars }
        let comm = MirrorCommunicator(worldSize: 4)
        let buckets = GradientBuckets(bytes: 4096)
        try buckets.average(params, communicator: comm)
        XCTAssertGreaterThan(buckets.bucketCount, 1)
        XCTAssertEqual(comm.reductions, buckets.bucketCount)
        for (p, b) in zip(params, before) {
            let after = p.grad!.scalars
            for i in b.indices { XCTAssertEqual(after[i], b[i], accuracy: abs(b[i]) * 1e-6 + 1e-12) }
        }
        // The protocol's default (LocalCommunicator, one rank) leaves gradients alone.
        let snapshot = params.map { $0.grad!.scalars }
        try LocalCommunicator().averageGradients(params)
        XCTAssertEqual(params.map { $0.grad!.scalars }, snapshot)
    }
}
