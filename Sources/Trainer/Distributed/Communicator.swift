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
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

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
