import Foundation
import Tensor
import TestSupport
import XCTest
@testable import DataPipeline
import Trainer

final class DataLoaderTests: XCTestCase {
    /// `count` tiny PNGs in memory, label = index % classes.
    func memoryDataset(count: Int, classes: Int = 3) throws -> InMemoryDataset {
        let encoded = try (0..<count).map { try ImageEncoder.png(syntheticImage(width: 12 + $0 % 5, height: 10, seed: UInt64($0))) }
        return InMemoryDataset(encoded: encoded, labels: (0..<count).map { $0 % classes },
                               classes: (0..<classes).map { "c\($0)" })
    }

    struct Snapshot: Equatable {
        var images: [[UInt32]] = []
        var targets: [[UInt32]] = []
        var labels: [[Int]] = []
        var paths: [[String]] = []
    }

    func run(_ loader: DataLoader, epoch: Int) throws -> (Snapshot, EpochSummary) {
        var snap = Snapshot()
        let it = loader.epoch(epoch)
        while let batch = try it.next() {
            snap.images.append(tensorBits(batch.images))
            snap.targets.append(batch.targets.map(tensorBits) ?? [])
            snap.labels.append(batch.labels)
            snap.paths.append(batch.paths)
        }
        return (snap, it.summary)
    }

    func testSameSeedSameBatchesWhateverTheWorkerCount() throws {
        let root = try DataTempFolder("determinism")
        defer { root.cleanup() }
        try makeImageFolder(root, perClass: 5)
        let dataset = try ImageFolder(root: root.path, split: "train")
        let transform = try TrainTransform(imageSize: 16, interpolation: .bicubic, vflip: 0.3,
                                           autoAugment: "randaug-m9-mstd0.5-inc1", reProb: 0.5, reValue: .random)
        let mixup = try MixupCutmix(mixupAlpha: 0.8, cutmixAlpha: 1.0, numClasses: 3)
        var reference: Snapshot?
        for workers in [0, 1, 2, 5] {
            for prefetch in [1, 3] {
                let options = LoaderOptions(batchSize: 4, numParallelWorkers: workers, prefetchBatches: prefetch, seed: 123)
                let loader = try DataLoader(dataset: dataset, transform: transform, options: options, mixup: mixup)
                XCTAssertEqual(loader.batchesPerEpoch, 3)
                let (snap, summary) = try run(loader, epoch: 2)
                XCTAssertEqual(snap.images.count, 3)
                XCTAssertEqual(summary.batches, 3)
                XCTAssertEqual(summary.samples, 12)
                XCTAssertEqual(summary.skippedCount, 0)
                if let reference {
                    XCTAssertEqual(snap, reference, "\(workers) workers, prefetch \(prefetch)")
                } else {
                    reference = snap
                }
            }
        }
        let loader = try DataLoader(dataset: dataset, transform: transform,
                                    options: LoaderOptions(batchSize: 4, numParallelWorkers: 2, seed: 123), mixup: mixup)
        XCTAssertNotEqual(try run(loader, epoch: 3).0.images, reference?.images, "epochs differ")
        let other = try DataLoader(dataset: dataset, transform: transform,
                                   options: LoaderOptions(batchSize: 4, numParallelWorkers: 2, seed: 124), mixup: mixup)
        XCTAssertNotEqual(try run(other, epoch: 2).0.images, reference?.images, "seeds differ")
    }

    /// Each image lands in the batch slot of its own label and path.
    func testImagesMatchTheirLabels() throws {
        let colours: [(UInt8, UInt8, UInt8)] = [(200, 20, 20), (20, 200, 20), (20, 20, 200)]
        var encoded: [[UInt8]] = [], labels: [Int] = []
        for i in 0..<30 {
            let label = (i * 7) % 3
            encoded.append(try ImageEncoder.png(RGBImage(width: 10 + i % 4, height: 9, fill: colours[label])))
            labels.append(label)
        }
        let dataset = InMemoryDataset(encoded: encoded, labels: labels, classes: ["r", "g", "b"])
        let transform = try TrainTransform(imageSize: 6, scale: 0.5...1, colorJitter: nil)
        let loader = try DataLoader(dataset: dataset, transform: transform,
                                    options: LoaderOptions(batchSize: 4, numParallelWorkers: 3, prefetchBatches: 3))
        let it = loader.epoch(1)
        var seen = 0
        while let batch = try it.next() {
            let values = batch.images.scalars
            for k in 0..<batch.count {
                let means = (0..<3).map { c in values[(k * 3 + c) * 36..<((k * 3 + c) + 1) * 36].reduce(0, +) / 36 }
                let brightest = means.indices.max { means[$0] < means[$1] }!
                XCTAssertEqual(brightest, batch.labels[k])
                XCTAssertEqual(batch.labels[k], labels[batch.sampleIndices[k]])
                XCTAssertEqual(batch.paths[k], "memory:\(batch.sampleIndices[k])")
                seen += 1
            }
        }
        XCTAssertEqual(seen, 28)
    }

    func testShardingCoversEverySampleOncePerEpoch() throws {
        let n = 23
        for shuffle in [false, true] {
            for world in [1, 2, 3, 4] {
                for epoch in 0..<3 {
                    var seen = [Int](repeating: 0, count: n)
                    var padded = [Int](repeating: 0, count: n)
                    for rank in 0..<world {
                        let exact = try ShardSampler(datasetCount: n, shuffle: shuffle, seed: 9, rank: rank, worldSize: world, padShards: false)
                        for i in exact.order(epoch: epoch).indices { seen[i] += 1 }
                        let pad = try ShardSampler(datasetCount: n, shuffle: shuffle, seed: 9, rank: rank, worldSize: world)
                        let order = pad.order(epoch: epoch)
                        XCTAssertEqual(order.indices.count, (n + world - 1) / world, "equal shards")
                        for i in order.indices { padded[i] += 1 }
                    }
                    XCTAssertEqual(seen, [Int](repeating: 1, count: n), "shuffle \(shuffle) world \(world)")
                    XCTAssertTrue(padded.allSatisfy { $0 >= 1 })
                    XCTAssertEqual(padded.reduce(0, +), (n + world - 1) / world * world)
                }
            }
        }
        // Shuffled epochs use different permutations, the same on every rank.
        let s0 = try ShardSampler(datasetCount: n, shuffle: true, seed: 9)
        XCTAssertNotEqual(s0.permutation(epoch: 0), s0.permutation(epoch: 1))
        let s1 = try ShardSampler(datasetCount: n, shuffle: true, seed: 9, rank: 1, worldSize: 2)
        XCTAssertEqual(s0.permutation(epoch: 4), s1.permutation(epoch: 4))
        XCTAssertThrowsError(try ShardSampler(datasetCount: n, shuffle: true, seed: 9, rank: 2, worldSize: 2))
    }

    func testLoaderShardsAndBatchCounts() throws {
        let dataset = try memoryDataset(count: 10)
        let transform = try EvalTransform(imageSize: 8, cropPct: 1)
        var all: [Int] = []
        for rank in 0..<3 {
            let options = LoaderOptions(batchSize: 2, shuffle: true, dropRemainder: false, numParallelWorkers: 2, seed: 5,
                                        rank: rank, worldSize: 3, padShards: false)
            let loader = try DataLoader(dataset: dataset, transform: transform, options: options)
            let it = loader.epoch(0)
            var sizes: [Int] = []
            while let batch = try it.next() {
                sizes.append(batch.count)
                all += batch.sampleIndices
                XCTAssertEqual(batch.images.shape, [batch.count, 3, 8, 8])
                XCTAssertNil(batch.targets)
            }
            XCTAssertEqual(sizes, rank == 0 ? [2, 2] : [2, 1])
        }
        XCTAssertEqual(all.sorted(), Array(0..<10))

        let dropping = try DataLoader(dataset: dataset, transform: transform, options: LoaderOptions(batchSize: 4, numParallelWorkers: 1))
        XCTAssertEqual(dropping.batchesPerEpoch, 2)
        XCTAssertEqual(try run(dropping, epoch: 0).0.labels.map(\.count), [4, 4])
        let keeping = try DataLoader(dataset: dataset, transform: transform,
                                     options: LoaderOptions(batchSize: 4, dropRemainder: false, numParallelWorkers: 1))
        XCTAssertEqual(try run(keeping, epoch: 0).0.labels.map(\.count), [4, 4, 2])
        let capped = try DataLoader(dataset: dataset, transform: transform,
                                    options: LoaderOptions(batchSize: 3, dropRemainder: false, numParallelWorkers: 1, numSamples: 7))
        XCTAssertEqual(try run(capped, epoch: 0).0.labels.map(\.count), [3, 3, 1])
    }

    func testRepeatedAugmentation() throws {
        let sampler = try ShardSampler(datasetCount: 6, shuffle: true, seed: 1, repeats: 3)
        let order = sampler.order(epoch: 0)
        XCTAssertEqual(order.indices.count, 6)
        XCTAssertEqual(order.indices[0], order.indices[1])
        XCTAssertEqual(order.indices[1], order.indices[2])
        XCTAssertEqual(order.indices[3], order.indices[5])
        XCTAssertEqual(Set(order.positions).count, 6, "positions are unique, so the copies are augmented differently")
        XCTAssertThrowsError(try ShardSampler(datasetCount: 6, shuffle: true, seed: 1, numSamples: 3, repeats: 3))
    }

    func testCorruptImagesAreReplacedAndCounted() throws {
        let root = try DataTempFolder("corrupt")
        defer { root.cleanup() }
        try makeImageFolder(root, perClass: 4)
        let good = try ImageEncoder.jpeg(syntheticImage(width: 40, height: 30), quality: 90)
        let truncated = root.path + "/train/dog/trunc.jpg"
        let garbage = root.path + "/train/eel/garbage.png"
        try root.write("train/dog/trunc.jpg", Array(good.prefix(good.count / 3)))
        try root.write("train/eel/garbage.png", Array("definitely not a png".utf8))
        let dataset = try ImageFolder(root: root.path, split: "train")
        XCTAssertEqual(dataset.count, 14)
        let transform = try TrainTransform(imageSize: 12)

        let options = LoaderOptions(batchSize: 7, shuffle: true, numParallelWorkers: 2, seed: 3)
        let reported = DataCallCounter()
        let loader = try DataLoader(dataset: dataset, transform: transform, options: options,
                                    onSkippedSample: { _ in reported.increment() })
        let (snap, summary) = try run(loader, epoch: 0)
        XCTAssertEqual(reported.value, summary.skippedCount)
        XCTAssertEqual(snap.labels.flatMap { $0 }.count, 14)
        XCTAssertGreaterThanOrEqual(summary.skippedCount, 2)
        XCTAssertEqual(Set(summary.skippedPaths), [truncated, garbage])
        XCTAssertFalse(snap.paths.flatMap { $0 }.contains(truncated))
        XCTAssertFalse(snap.paths.flatMap { $0 }.contains(garbage))
        XCTAssertTrue(summary.skipped.contains { $0.path == truncated && $0.reason.contains(truncated) })
        // Deterministic replacements.
        let (again, summaryAgain) = try run(try DataLoader(dataset: dataset, transform: transform,
                                                           options: LoaderOptions(batchSize: 7, numParallelWorkers: 0, seed: 3)), epoch: 0)
        XCTAssertEqual(again, snap)
        XCTAssertEqual(summaryAgain.skipped, summary.skipped)

        var strictOptions = options
        strictOptions.strictData = true
        let strict = try DataLoader(dataset: dataset, transform: transform, options: strictOptions)
        XCTAssertThrowsError(try run(strict, epoch: 0)) { error in
            guard let e = error as? DataError, let path = e.path else { return XCTFail("\(error)") }
            XCTAssertTrue([truncated, garbage].contains(path), "\(e)")
        }
    }

    func testAllCorruptFailsAfterReplacements() throws {
        let dataset = InMemoryDataset(encoded: [[1, 2, 3], [4, 5, 6]], labels: [0, 1], classes: ["a", "b"])
        let loader = try DataLoader(dataset: dataset, transform: try EvalTransform(imageSize: 4),
                                    options: LoaderOptions(batchSize: 1, numParallelWorkers: 1, maxReplacementAttempts: 3))
        XCTAssertThrowsError(try run(loader, epoch: 0)) { error in
            guard case DataError.replacementFailed(_, let attempts) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(attempts, 3)
        }
    }

    func testCancellingAnEpochStopsTheWorkers() throws {
        let dataset = try memoryDataset(count: 40)
        let loader = try DataLoader(dataset: dataset, transform: try TrainTransform(imageSize: 8),
                                    options: LoaderOptions(batchSize: 2, numParallelWorkers: 3, prefetchBatches: 2))
        let it = loader.epoch(0)
        XCTAssertNotNil(try it.next())
        it.cancel()
        XCTAssertNil(try it.next())
        XCTAssertThrowsError(try DataLoader(dataset: dataset, transform: try TrainTransform(imageSize: 8),
                                            options: LoaderOptions(batchSize: 0)))
    }
}
