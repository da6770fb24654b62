import Tensor

/// The samples one rank reads in one epoch.
public struct ShardOrder: Sendable, Equatable {
    /// Dataset indices, in reading order.
    public var indices: [Int]
    /// Each sample's position in the epoch's global (all-rank) order. Unique within an epoch, so it
    /// seeds the sample's augmentation even when an index appears twice (padding, repeated augmentation).
    public var positions: [Int]
}

/// Epoch ordering and sharding with MindSpore's `DistributedSampler` semantics (docs/training.md §6.2).
///
/// One permutation of all N indices per epoch, drawn from (seed, epoch) and identical on every rank
/// (identity order without shuffling); rank r of R takes global positions r, r+R, r+2R, …, wrapping
/// modulo N, until it has ⌈N/R⌉ samples, so every rank reads the same count and a few samples are read
/// twice. With `padShards: false` positions stop at N instead (shards differ by at most one; nothing is
/// duplicated — use it for validation). `numSamples` caps the per-rank count (a fresh random subset
/// each epoch when shuffling).
///
/// Repeated augmentation (`repeats` k > 1, DeiT's `RASampler`): the permutation with every index
/// repeated k times consecutively, padded by wrapping to a multiple of R, rank r takes positions
/// r, r+R, … and keeps the first ⌈N/R⌉. MindCV seeds that permutation with the epoch alone; here it
/// comes from (seed, epoch) like the plain one.
public struct ShardSampler: Sendable, Equatable {
    public let datasetCount: Int
    public let shuffle: Bool
    public let seed: UInt64
    public let rank: Int
    public let worldSize: Int
    public let numSamples: Int?
    public let repeats: Int
    public let padShards: Bool

    public init(datasetCount: Int, shuffle: Bool, seed: UInt64, rank: Int = 0, worldSize: Int = 1,
                numSamples: Int? = nil, repeats: Int = 0, padShards: Bool = true) throws(DataError) {
        guard datasetCount > 0 else { throw .invalidConfig(key: "dataset", reason: "the dataset is empty") }
        guard worldSize >= 1 else { throw .invalidConfig(key: "world_size", reason: "must be ≥ 1, got \(worldSize)") }
        guard rank >= 0 && rank < worldSize else { throw .invalidConfig(key: "rank", reason: "must be in 0..<\(worldSize), got \(rank)") }
        if let n = numSamples, n < 1 { throw .invalidConfig(key: "num_samples", reason: "must be ≥ 1, got \(n)") }
        guard repeats >= 0 else { throw .invalidConfig(key: "aug_repeats", reason: "must be ≥ 0, got \(repeats)") }
        if numSamples != nil && repeats > 1 {
            throw .invalidConfig(key: "num_samples", reason: "cannot be combined with aug_repeats")
        }
        self.datasetCount = datasetCount
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.worldSize = worldSize
        self.numSamples = numSamples
        self.repeats = repeats
        self.padShards = padShards
    }

    /// Samples this rank reads per epoch.
    public var samplesPerEpoch: Int {
        let n = datasetCount, r = worldSize
        let full: Int
        if padShards || repeats > 1 {
            full = (n + r - 1) / r
        } else {
            full = rank < n ? (n - rank + r - 1) / r : 0
        }
        return min(full, numSamples ?? Int.max)
    }

    /// The epoch's global permutation (identity when not shuffling).
    public func permutation(epoch: Int) -> [Int] {
        guard shuffle else { return Array(0..<datasetCount) }
        var rng = DataSeeds.generator(seed, epoch: epoch, position: 0, stream: .shuffle)
        return rng.permutation(datasetCount)
    }

    /// This rank's samples for `epoch`.
    public func order(epoch: Int) -> ShardOrder {
        let perm = permutation(epoch: epoch)
        let n = datasetCount, r = worldSize, count = samplesPerEpoch
        var indices = [Int](), positions = [Int]()
        indices.reserveCapacity(count)
        positions.reserveCapacity(count)
        if repeats > 1 {
            let k = repeats
            let total = n * k
            for j in 0..<count {
                let p = rank + j * r                   // position in the padded repeated list
                indices.append(perm[(p % total) / k])   // padding wraps to the start of the list
                positions.append(p)
            }
        } else {
            for j in 0..<count {
                let p = rank + j * r
                indices.append(perm[p % n])
                positions.append(p)
            }
        }
        return ShardOrder(indices: indices, positions: positions)
    }
}
