import Foundation
import DataPipeline
import Models
import Tensor

#if canImport(Glibc)
import Glibc
import Trainer
#endif

/// Self-checks of data parallelism, run by every rank of an `mpirun` job (`zoo distributed-check`)
/// and driven by Tests/DistributedTests/DistributedTests.swift. Each returns a one-line verdict that
/// rank 0 prints; a failed check throws `DistributedCheckFailure`.
public enum DistributedChecks {
    /// A small MLP without dropout or BatchNorm: Linear → LayerNorm → GELU → Linear.
    final class TinyNet: Module {
        let fc1: Linear, norm: LayerNorm, fc2: Linear
        init(inputs: Int, hidden: Int, classes: Int, seed: UInt64) {
            var g = RandomGenerator(seed: seed)
            fc1 = Linear(inputs, hidden, std: 0.2, generator: &g)
            norm = LayerNorm(hidden, eps: 1e-5)
            fc2 = Linear(hidden, classes, std: 0.2, generator: &g)
        }
        func callAsFunction(_ x: Tensor) -> Tensor { fc2(norm(fc1(x)).gelu(approximate: .tanh)) }
        func visit(_ v: inout ModuleVisitor) { v.child("fc1", fc1); v.child("norm", norm); v.child("fc2", fc2) }
    }

    /// A fixed synthetic classification set: Gaussian features, labels from a random linear map.
    struct SyntheticSet {
        let features: [Float], labels: [Int], dim: Int
        init(count: Int, dim: Int, classes: Int, seed: UInt64) {
            var g = RandomGenerator(seed: seed)
            var f = [Float](repeating: 0, count: count * dim)
            for i in f.indices { f[i] = g.nextNormal() }
            var w = [Float](repeating: 0, count: dim * classes)
            for i in w.indices { w[i] = g.nextNormal() }
            var l = [Int](repeating: 0, count: count)
            for n in 0..<count {
                var best = -Float.infinity
                for c in 0..<classes {
                    var s: Float = 0
                    for d in 0..<dim { s += f[n * dim + d] * w[d * classes + c] }
                    if s > best { best = s; l[n] = c }
                }
            }
            features = f; labels = l; self.dim = dim
        }
        func batch(_ indices: ArraySlice<Int>) -> (Tensor, [Int]) {
            var x = [Float](); x.reserveCapacity(indices.count * dim)
            for i in indices { x.append(contentsOf: features[(i * dim)..<((i + 1) * dim)]) }
            return (Tensor(shape: [indices.count, dim], x), indices.map { labels[$0] })
        }
    }

    /// Trains `TinyNet` with AdamW for `steps` steps of `batch` samples per rank, drawing this rank's
    /// shard of the epoch order; gradients are averaged through `GradientBuckets(bytes:)`.
    /// Every rank starts from its own random init and is overwritten by rank 0's (as `TrainingRun`).
    static func train(communicator: any Communicator, data: SyntheticSet, steps: Int, batch: Int, bucketBytes: Int,
                      onStep: (Int) throws -> Void = { _ in }) throws -> (weights: [[Float]], initial: [[Float]], loss: Float) {
        let model = TinyNet(inputs: data.dim, hidden: 48, classes: 5, seed: 1234 + UInt64(communicator.rank))
        let params = model.parameters
        if communicator.worldSize > 1 {
            for p in params { try communicator.broadcast(p.value.storage.pointer, count: p.value.count, root: 0) }
        }
        let initial = params.map { $0.value.scalars }
        let optimizer = AdamW(parameters: model.namedParameters(), weightDecay: 0.05)
        let sampler = try ShardSampler(datasetCount: data.labels.count, shuffle: true, seed: 99,
                                       rank: communicator.rank, worldSize: communicator.worldSize)
        let order = sampler.order(epoch: 0).indices
        precondition(order.count >= steps * batch, "not enough samples for \(steps) steps of \(batch)")
        let buckets = GradientBuckets(bytes: bucketBytes)
        var lastLoss: Float = 0
        for s in 0..<steps {
            try onStep(s)
            let (x, y) = data.batch(order[(s * batch)..<((s + 1) * batch)])
            let loss = Tensor.crossEntropy(logits: model(x), labels: y)
            lastLoss = loss.item
            loss.backward()
            try buckets.average(params, communicator: communicator)
            optimizer.step(lr: 0.01)
            optimizer.zeroGrad()
        }
        return (params.map { $0.value.scalars }, initial, lastLoss)
    }

    /// R ranks × batch b for k steps give the same weights as one rank × batch R·b on the same
    /// samples (relative L2 difference per tensor ≤ `tolerance`), and all ranks hold identical weights.
    public static func equivalence(communicator: any Communicator, steps: Int, batch: Int, tolerance: Double = 1e-5,
                                   bucketBytes: Int = 8192) throws -> String {
        let world = communicator.worldSize
        guard world >= 2 else { throw DistributedCheckFailure("equivalence needs at least 2 ranks (run under mpirun -n 2), got \(world)") }
        let data = SyntheticSet(count: world * batch * steps + 13, dim: 24, classes: 5, seed: 5)
        let dist = try train(communicator: communicator, data: data, steps: steps, batch: batch, bucketBytes: bucketBytes)

        // All ranks agree with rank 0.
        var flat = dist.weights.flatMap { $0 }
        let mine = flat
        try flat.withUnsafeMutableBufferPointer { try communicator.broadcast($0.baseAddress!, count: $0.count, root: 0) }
        var spread = 0.0
        for i in flat.indices { spread = max(spread, Double(abs(flat[i] - mine[i]))) }
        let maxSpread = try communicator.allReduceSum([spread]).reduce(0, +)

        // One rank, batch R·b, same samples, same initial weights (rank 0's).
        let single = try train(communicator: LocalCommunicator(), data: data, steps: steps, batch: world * batch, bucketBytes: bucketBytes)
        var worst = 0.0, moved = 0.0
        for (w, r) in zip(dist.weights, single.weights) {
            var d = 0.0, n = 0.0
            for i in w.indices { d += Double(w[i] - r[i]) * Double(w[i] - r[i]); n += Double(r[i]) * Double(r[i]) }
            worst = max(worst, (d / max(n, 1e-30)).squareRoot())
        }
        for (w, i) in zip(single.weights, single.initial) {
            for k in w.indices { moved = max(moved, Double(abs(w[k] - i[k]))) }
        }
        let line = String(format: "equivalence: %d ranks x batch %d vs 1 rank x batch %d, %d AdamW steps: max relative difference %.3g " +
                          "(tolerance %.0e); ranks differ by at most %.3g; weights moved by up to %.3g; loss %.4f",
                          world, batch, world * batch, steps, worst, tolerance, maxSpread, moved, dist.loss)
        guard worst <= tolerance, maxSpread == 0, moved > 1e-3 else { throw DistributedCheckFailure(line) }
        return line
    }

    /// The training sampler (padded shards) reads every sample at least once per epoch and the
    /// padding only repeats ⌈N/R⌉·R − N samples; the validation sampler reads each exactly once.
    public static func shardCoverage(communicator: any Communicator, counts: [Int] = [1000, 1001, 37, 3]) throws -> String {
        let world = communicator.worldSize
        var notes: [String] = []
        for n in counts {
            for epoch in 0..<2 {
                for pad in [true, false] {
                    let sampler = try ShardSampler(datasetCount: n, shuffle: true, seed: 7, rank: communicator.rank,
                                                   worldSize: world, padShards: pad)
                    var hist = [Double](repeating: 0, count: n)
                    for i in sampler.order(epoch: epoch).indices { hist[i] += 1 }
                    hist = try communicator.allReduceSum(hist)
                    let total = Int(hist.reduce(0, +))
                    let missing = hist.filter { $0 == 0 }.count
                    let twice = hist.filter { $0 > 1 }.count
                    let padded = (n + world - 1) / world * world
                    let ok = pad ? (missing == 0 && total == padded && twice == padded - n && (hist.max() ?? 0) <= 2)
                                 : (missing == 0 && twice == 0 && total == n)
                    guard ok else {
                        throw DistributedCheckFailure("shard coverage failed: N=\(n), epoch \(epoch), \(pad ? "train (padded)" : "validation"), " +
                                                      "\(world) ranks: \(missing) samples never read, \(twice) read more than once, \(total) reads")
                    }
                }
            }
            notes.append("N=\(n)")
        }
        return "shard coverage: \(world) ranks, \(notes.joined(separator: ", ")), 2 epochs: validation reads every sample exactly once; " +
            "training reads every sample, repeating only the ⌈N/R⌉·R − N padding samples"
    }

    /// How `simulateFailure` misbehaves on the failing rank.
    public enum FailureMode: String, Sendable, CaseIterable {
        case kill   // SIGKILL itself
        case hang   // stop communicating (sleep), so the others' watchdog must fire
        case error  // throw an error, as a rank whose data or checkpoint fails would
    }

    /// Trains until `step`, where rank `failRank` fails in the given way; the job must end, not hang.
    public static func simulateFailure(communicator: any Communicator, mode: FailureMode, failRank: Int, step: Int) throws -> String {
        let data = SyntheticSet(count: 4096, dim: 24, classes: 5, seed: 5)
        _ = try train(communicator: communicator, data: data, steps: step + 50, batch: 8, bucketBytes: 8192) { s in
            guard s == step, communicator.rank == failRank else { return }
            switch mode {
            case .kill:
                writeStderr("rank \(failRank): simulating a crash (SIGKILL) at step \(s)\n")
                kill(getpid(), SIGKILL)
            case .hang:
                writeStderr("rank \(failRank): simulating a hang at step \(s)\n")
                while true { sleep(1000) }
            case .error:
                throw DistributedCheckFailure("rank \(failRank): simulated error at step \(s)")
            }
        }
        return "simulate-failure: finished without a failure (rank \(failRank) not in the world of \(communicator.worldSize)?)"
    }
}

extension DistributedChecks {
    /// Times the bucketed average of `megabytes` of gradients (after a barrier, so no rank waits
    /// for a slower one): the pure communication cost of one training step.
    public static func allReduceBenchmark(communicator: any Communicator, megabytes: Double, repeats: Int) throws -> String {
        let n = Int(megabytes * 1e6 / 4)
        let p = Parameter(Tensor.zeros([n]))
        let loss = Tensor.crossEntropy(logits: p.value.reshaped([1, n]), labels: [0])
        loss.backward()
        let buckets = GradientBuckets(bytes: GradientBuckets.defaultBytes)
        let params = [p]
        try buckets.average(params, communicator: communicator)  // warm-up, allocation
        var times: [Double] = []
        for _ in 0..<repeats {
            try communicator.barrier()
            let t0 = monotonicSeconds()
            try buckets.average(params, communicator: communicator)
            times.append(monotonicSeconds() - t0)
        }
        times.sort()
        let median = times[times.count / 2] * 1000
        return String(format: "all-reduce benchmark: %d ranks, %.1f MB of gradients in %d bucket(s): median %.2f ms, best %.2f ms (%.2f GB/s algorithmic)",
                      communicator.worldSize, megabytes, buckets.bucketCount, median, times[0] * 1000, megabytes / 1000 / (median / 1000))
    }
}

/// A self-check that did not hold.
public struct DistributedCheckFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
