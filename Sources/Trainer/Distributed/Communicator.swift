import Models
import Tensor

/// Collective operations between the ranks of a data-parallel job. The single-process run uses
/// `LocalCommunicator`; `mpirun ... --distribute` uses `MPICommunicator`.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var worldSize: Int { get }
    /// Element-wise sum across ranks, in place.
    func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// Element-wise sum of doubles across ranks, in place (metrics).
    func allReduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws
    /// Copies rank `root`'s buffer to every rank.
    func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws
    func barrier() throws
    /// Starts an in-place sum across ranks and returns at once; the buffer must not be touched
    /// until the request's `wait()` returns. The default runs the blocking `allReduceSum`.
    func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> any CollectiveRequest
    /// Replaces every parameter's gradient by its mean over the ranks. The default reduces in
    /// buckets of `GradientBuckets.defaultBytes` (a no-op with one rank). Every rank must pass the
    /// same parameters, and a parameter must have a gradient on all ranks or on none.
    func averageGradients(_ parameters: [Parameter]) throws
}

/// A collective started by `startAllReduceSum`.
public protocol CollectiveRequest: AnyObject {
    func wait() throws
}

/// A request that completed when it was started.
public final class CompletedRequest: CollectiveRequest {
    public init() {}
    public func wait() throws {}
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    public func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> any CollectiveRequest {
        try allReduceSum(buffer, count: count)
        return CompletedRequest()
    }

    public func averageGradients(_ parameters: [Parameter]) throws {
        guard worldSize > 1 else { return }
        try GradientBuckets(bytes: GradientBuckets.defaultBytes).average(parameters, communicator: self)
    }

    /// Sums `values` across ranks.
    public func allReduceSum(_ values: [Double]) throws -> [Double] {
        var v = values
        try v.withUnsafeMutableBufferPointer { try allReduceSum($0.baseAddress!, count: $0.count) }
        return v
    }
}

/// One process, no communication.
public final class LocalCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var worldSize: Int { 1 }
    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func allReduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {}
    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {}
    public func barrier() throws {}
}
