import Foundation
import Models
import Tensor

/// Averages gradients across ranks in buckets: the gradients are concatenated (last parameter
/// first, the order in which the backward pass finishes them) into buffers of about `bytes`, each
/// bucket's sum is started non-blocking as soon as it is packed, and the buckets are then waited
/// for in order and copied back scaled by 1/world — so the reductions of later buckets proceed
/// while earlier ones are unpacked. A gradient at least half a bucket large is reduced in place.
///
/// The plan (which parameter goes where) is made on the first call and kept while the set of
/// gradients and their sizes stay the same; the bucket buffer is allocated once.
public final class GradientBuckets {
    /// `VITZOO_BUCKET_MB` (default 25 MB).
    public static var defaultBytes: Int {
        if let s = ProcessInfo.processInfo.environment["VITZOO_BUCKET_MB"], let mb = Double(s), mb > 0 { return Int(mb * 1_048_576) }
        return 25 << 20
    }

    struct Member { var parameter: Int; var offset: Int; var count: Int }
    struct Bucket { var members: [Member]; var offset: Int; var count: Int; var inPlace: Bool }

    public let bytes: Int
    var key: [Int] = []
    var plan: [Bucket] = []
    var buffer: UnsafeMutablePointer<Float>?
    var capacity = 0

    public init(bytes: Int) { self.bytes = max(bytes, 4096) }
    deinit { buffer?.deallocate() }

    /// Number of buckets in the current plan.
    public var bucketCount: Int { plan.count }

    /// Groups the parameters with a gradient into buckets, last parameter first.
    func replan(_ counts: [Int]) {
        let limit = bytes / MemoryLayout<Float>.stride
        plan = []
        var current = Bucket(members: [], offset: 0, count: 0, inPlace: false)
        var packed = 0
        func close() {
            if !current.members.isEmpty { plan.append(current); packed += current.count }
            current = Bucket(members: [], offset: packed, count: 0, inPlace: false)
        }
        for i in counts.indices.reversed() where counts[i] > 0 {
            let n = counts[i]
            if n * 2 >= limit {
                plan.append(Bucket(members: [Member(parameter: i, offset: 0, count: n)], offset: -1, count: n, inPlace: true))
                continue
            }
            if current.count + n > limit { close() }
            current.members.append(Member(parameter: i, offset: current.count, count: n))
            current.count += n
        }
        close()
        if packed > capacity {
            buffer?.deallocate()
            buffer = UnsafeMutablePointer<Float>.allocate(capacity: packed)
            capacity = packed
        }
        key = counts
    }

    public func average(_ parameters: [Parameter], communicator: any Communicator) throws {
        let world = communicator.worldSize
        guard world > 1 else { return }
        let t0 = monotonicSeconds()
        let grads = parameters.map { $0.grad }
        let counts = grads.map { $0?.count ?? 0 }
        if counts != key { replan(counts) }
        var requests: [any CollectiveRequest] = []
        requests.reserveCapacity(plan.count)
        var totalBytes = 0
        for b in plan {
            if b.inPlace {
                let g = grads[b.members[0].parameter]!
                requests.append(try communicator.startAllReduceSum(g.storage.pointer, count: b.count))
            } else {
                let base = buffer! + b.offset
                for m in b.members {
                    (base + m.offset).update(from: grads[m.parameter]!.storage.pointer, count: m.count)
                }
                requests.append(try communicator.startAllReduceSum(base, count: b.count))
            }
            totalBytes += b.count * 4
        }
        let inv = 1 / Float(world)
        for (b, r) in zip(plan, requests) {
            try r.wait()
            for m in b.members {
                let dst = grads[m.parameter]!.storage.pointer.sendable
                if b.inPlace {
                    Parallel.forRange(m.count, grain: 1 << 16) { r in for i in r { dst[i] *= inv } }
                } else {
                    let src = (buffer! + b.offset + m.offset).sendable
                    Parallel.forRange(m.count, grain: 1 << 16) { r in for i in r { dst[i] = src[i] * inv } }
                }
            }
        }
        CommunicationStats.shared.addSync(seconds: monotonicSeconds() - t0, bytes: totalBytes)
    }
}
