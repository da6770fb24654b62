import CMPI
import Foundation
import Models

#if canImport(Glibc)
import Glibc
import Trainer
#endif

/// Data-parallel collectives over OpenMPI's `MPI_COMM_WORLD`.
///
/// Every collective is started non-blocking and completed by polling `MPI_Test`, so a watchdog
/// bounds every wait: if the other ranks do not join within `MPIRuntime.collectiveTimeout`
/// seconds this rank prints which collective timed out and calls `MPI_Abort`, ending the job
/// instead of hanging. (A rank that dies is reported by mpirun, which then ends the others.)
public final class MPICommunicator: Communicator {
    let lib: MPILibrary
    public let rank: Int
    public let worldSize: Int
    public let timeout: Double
    /// Gradient buckets, planned on the first synchronisation.
    lazy var buckets = GradientBuckets(bytes: GradientBuckets.defaultBytes)

    /// Initialises MPI (once per process). Throws if libmpi cannot be loaded.
    public init() throws {
        lib = try MPIRuntime.start()
        rank = MPIRuntime.worldRank
        worldSize = MPIRuntime.worldSize
        timeout = MPIRuntime.collectiveTimeout
    }

    /// The path of the loaded MPI library.
    public var libraryPath: String { lib.path }

    // MARK: non-blocking primitives

    public func startAllReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> any CollectiveRequest {
        try start("MPI_Iallreduce(float, \(count))") { req in
            lib.iallreduce(UnsafeRawPointer(bitPattern: 1), buffer, try int32(count), lib.float, lib.sum, lib.commWorld, req)  // MPI_IN_PLACE
        }
    }

    func start(_ what: String, _ body: (UnsafeMutablePointer<MPI_Request?>) throws -> Int32) throws -> MPIRequest {
        let r = MPIRequest(communicator: self, what: what)
        let rc = try body(&r.handle)
        guard rc == MPI_SUCCESS else { throw DistributedError.mpiCall(function: what, code: rc, rank: rank) }
        return r
    }

    func int32(_ n: Int) throws -> Int32 {
        guard n <= Int(Int32.max) else { throw DistributedError.countTooLarge(n) }
        return Int32(n)
    }

    /// Completes `request`, polling so that the watchdog can end a wait that never finishes.
    func wait(_ request: MPIRequest) throws {
        guard !request.done else { return }
        let t0 = monotonicSeconds()
        var flag: Int32 = 0
        var polls = 0
        while true {
            let rc = lib.test(&request.handle, &flag, nil)  // MPI_STATUS_IGNORE
            guard rc == MPI_SUCCESS else { throw DistributedError.mpiCall(function: "MPI_Test(\(request.what))", code: rc, rank: rank) }
            if flag != 0 { break }
            polls += 1
            // OpenMPI advances a non-blocking collective only inside MPI calls: poll without pause
            // for the first couple of milliseconds, then with short sleeps (the loader's worker
            // threads get the core while a slower rank is still computing), backing off once a peer
            // is clearly late.
            if polls & 63 != 0 { continue }
            let waited = monotonicSeconds() - t0
            if timeout > 0 && waited > timeout {
                MPIRuntime.abortJob(String(format: "collective %@ timed out after %.0f s; a peer rank has probably failed " +
                                           "(world size %d; set VITZOO_MPI_TIMEOUT to change the limit)", request.what, timeout, worldSize))
            }
            if waited < 0.002 { continue }
            usleep(waited < 1 ? 20 : waited < 5 ? 200 : 1000)
        }
        request.done = true
        CommunicationStats.shared.addWait(monotonicSeconds() - t0)
    }

    // MARK: Communicator

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        var offset = 0
        while offset < count {  // counts beyond Int32 in chunks
            let n = min(count - offset, 1 << 30)
            try wait(try startAllReduceSum(buffer + offset, count: n) as! MPIRequest)
            offset += n
        }
    }

    public func allReduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
        let r = try start("MPI_Iallreduce(double, \(count))") { req in
            lib.iallreduce(UnsafeRawPointer(bitPattern: 1), buffer, try int32(count), lib.double, lib.sum, lib.commWorld, req)
        }
        try wait(r)
    }

    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int) throws {
        let r = try start("MPI_Ibcast(float, \(count), root \(root))") { req in
            lib.ibcast(buffer, try int32(count), lib.float, Int32(root), lib.commWorld, req)
        }
        try wait(r)
    }

    public func barrier() throws {
        let r = try start("MPI_Ibarrier") { req in lib.ibarrier(lib.commWorld, req) }
        try wait(r)
    }

    public func averageGradients(_ parameters: [Parameter]) throws {
        try buckets.average(parameters, communicator: self)
    }
}

/// An MPI request in flight.
final class MPIRequest: CollectiveRequest {
    unowned let communicator: MPICommunicator
    let what: String
    var handle: MPI_Request?
    var done = false
    init(communicator: MPICommunicator, what: String) { self.communicator = communicator; self.what = what }
    func wait() throws { try communicator.wait(self) }
}
