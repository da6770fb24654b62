import CMPI
import Foundation

#if canImport(Glibc)
import Glibc
import Trainer
#endif

/// Why the MPI runtime could not start or a collective failed.
public enum DistributedError: Error, CustomStringConvertible, Equatable {
    case libraryNotFound(tried: [String], reason: String)
    case missingSymbol(String)
    case mpiCall(function: String, code: Int32, rank: Int)
    case notLaunchedByMPIRun
    case countTooLarge(Int)

    public var description: String {
        switch self {
        case let .libraryNotFound(tried, reason):
            return "--distribute needs OpenMPI at run time, but none of \(tried.joined(separator: ", ")) could be loaded (\(reason)); " +
                "install it with `apt-get install openmpi-bin libopenmpi-dev` or set VITZOO_MPI_LIBRARY to the path of libmpi.so"
        case let .missingSymbol(s):
            return "the loaded MPI library has no symbol '\(s)'; vitzoo needs OpenMPI (4.x or 5.x)"
        case let .mpiCall(f, c, r):
            return "rank \(r): \(f) failed with MPI error code \(c)"
        case .notLaunchedByMPIRun:
            return "--distribute given but the process was not launched by mpirun; run `mpirun -n N zoo train ... --distribute`"
        case let .countTooLarge(n):
            return "a collective over \(n) elements exceeds MPI's Int32 count"
        }
    }
}

/// The OpenMPI library, loaded with `dlopen` the first time `--distribute` asks for it, so that
/// `zoo` itself does not link libmpi and a plain run needs no MPI installation.
///
/// The C types and constants come from the `CMPI` system-library module (mpi.h); the functions
/// and OpenMPI's predefined handles (`MPI_COMM_WORLD` is the address of `ompi_mpi_comm_world`,
/// and so on) are looked up with `dlsym`.
final class MPILibrary: @unchecked Sendable {
    typealias InitThreadFn = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?, Int32, UnsafeMutablePointer<Int32>?) -> Int32
    typealias InitializedFn = @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
    typealias CommIntFn = @convention(c) (MPI_Comm?, UnsafeMutablePointer<Int32>?) -> Int32
    typealias IallreduceFn = @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int32, MPI_Datatype?, MPI_Op?, MPI_Comm?, UnsafeMutablePointer<MPI_Request?>?) -> Int32
    typealias IbcastFn = @convention(c) (UnsafeMutableRawPointer?, Int32, MPI_Datatype?, Int32, MPI_Comm?, UnsafeMutablePointer<MPI_Request?>?) -> Int32
    typealias IbarrierFn = @convention(c) (MPI_Comm?, UnsafeMutablePointer<MPI_Request?>?) -> Int32
    typealias TestFn = @convention(c) (UnsafeMutablePointer<MPI_Request?>?, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<MPI_Status>?) -> Int32
    typealias AbortFn = @convention(c) (MPI_Comm?, Int32) -> Int32
    typealias FinalizeFn = @convention(c) () -> Int32

    let path: String
    let initThread: InitThreadFn
    let initialized: InitializedFn
    let finalized: InitializedFn
    let commRank: CommIntFn
    let commSize: CommIntFn
    let iallreduce: IallreduceFn
    let ibcast: IbcastFn
    let ibarrier: IbarrierFn
    let test: TestFn
    let abort: AbortFn
    let finalize: FinalizeFn
    let commWorld: MPI_Comm
    let float: MPI_Datatype
    let double: MPI_Datatype
    let sum: MPI_Op

    /// Candidate library names, most specific first (`VITZOO_MPI_LIBRARY` overrides).
    static var candidates: [String] {
        var c: [String] = []
        if let p = ProcessInfo.processInfo.environment["VITZOO_MPI_LIBRARY"], !p.isEmpty { c.append(p) }
        #if os(macOS)
        c += ["libmpi.40.dylib", "libmpi.dylib", "/opt/homebrew/lib/libmpi.dylib", "/usr/local/lib/libmpi.dylib"]
        #else
        c += ["libmpi.so.40", "libmpi.so", "/usr/lib/x86_64-linux-gnu/openmpi/lib/libmpi.so", "/usr/lib/aarch64-linux-gnu/openmpi/lib/libmpi.so"]
        #endif
        return c
    }

    init() throws {
        var handle: UnsafeMutableRawPointer?
        var loaded = ""
        var lastError = "not found"
        for name in Self.candidates {
            // RTLD_GLOBAL: OpenMPI's plugins (MCA components) resolve libmpi's symbols globally.
            if let h = dlopen(name, RTLD_NOW | RTLD_GLOBAL) { handle = h; loaded = name; break }
            if let e = dlerror() { lastError = String(cString: e) }
        }
        guard let handle else { throw DistributedError.libraryNotFound(tried: Self.candidates, reason: lastError) }
        func sym(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let p = dlsym(handle, name) else { throw DistributedError.missingSymbol(name) }
            return p
        }
        func fn<T>(_ name: String, _: T.Type) throws -> T { unsafeBitCast(try sym(name), to: T.self) }
        path = loaded
        initThread = try fn("MPI_Init_thread", InitThreadFn.self)
        initialized = try fn("MPI_Initialized", InitializedFn.self)
        finalized = try fn("MPI_Finalized", InitializedFn.self)
        commRank = try fn("MPI_Comm_rank", CommIntFn.self)
        commSize = try fn("MPI_Comm_size", CommIntFn.self)
        iallreduce = try fn("MPI_Iallreduce", IallreduceFn.self)
        ibcast = try fn("MPI_Ibcast", IbcastFn.self)
        ibarrier = try fn("MPI_Ibarrier", IbarrierFn.self)
        test = try fn("MPI_Test", TestFn.self)
        abort = try fn("MPI_Abort", AbortFn.self)
        finalize = try fn("MPI_Finalize", FinalizeFn.self)
        // OpenMPI's predefined handles are the addresses of these globals.
        commWorld = MPI_Comm(try sym("ompi_mpi_comm_world"))
        float = MPI_Datatype(try sym("ompi_mpi_float"))
        double = MPI_Datatype(try sym("ompi_mpi_double"))
        sum = MPI_Op(try sym("ompi_mpi_op_sum"))
    }
}

/// Process-wide MPI state: initialised once, finalised at a clean exit, aborted at a failing one.
public enum MPIRuntime {
    /// True when this process was started by mpirun/mpiexec (OpenMPI or PMIx environment).
    public static var launchedByMPIRun: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK"].contains { env[$0] != nil }
    }

    /// Ranks of this job on this machine (mpirun's `OMPI_COMM_WORLD_LOCAL_SIZE`), 1 if unknown.
    public static var localSize: Int {
        Int(ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? "") ?? 1
    }

    /// Seconds a collective may wait for the other ranks before this rank aborts the job
    /// (`VITZOO_MPI_TIMEOUT`, default 120; 0 disables the watchdog).
    public static var collectiveTimeout: Double {
        if let s = ProcessInfo.processInfo.environment["VITZOO_MPI_TIMEOUT"], let v = Double(s), v >= 0 { return v }
        return 120
    }

    nonisolated(unsafe) static var library: MPILibrary?
    nonisolated(unsafe) static var worldRank = 0
    nonisolated(unsafe) static var worldSize = 1
    nonisolated(unsafe) static var isActive = false
    static let lock = NSLock()

    /// Loads libmpi, calls `MPI_Init_thread` (once) and registers the exit handler.
    static func start() throws -> MPILibrary {
        lock.lock(); defer { lock.unlock() }
        if let library, isActive { return library }
        let lib = try MPILibrary()
        var flag: Int32 = 0
        _ = lib.initialized(&flag)
        if flag == 0 {
            var provided: Int32 = 0
            let rc = lib.initThread(nil, nil, Int32(MPI_THREAD_SERIALIZED), &provided)
            guard rc == MPI_SUCCESS else { throw DistributedError.mpiCall(function: "MPI_Init_thread", code: rc, rank: -1) }
        }
        var r: Int32 = 0, s: Int32 = 0
        _ = lib.commRank(lib.commWorld, &r)
        _ = lib.commSize(lib.commWorld, &s)
        worldRank = Int(r); worldSize = Int(s)
        library = lib
        isActive = true
        on_exit({ status, _ in MPIRuntime.atExit(status: status) }, nil)
        return lib
    }

    /// A clean exit (status 0) finalises MPI; any other exit aborts the whole job at once, naming
    /// this rank, instead of leaving the other ranks waiting in a collective.
    static func atExit(status: Int32) {
        guard isActive, let lib = library else { return }
        isActive = false
        if ProcessInfo.processInfo.environment["VITZOO_MPI_STATS"] != nil { writeStderr("rank \(worldRank): communication: \(CommunicationStats.shared.summary)\n") }
        if status == 0 {
            _ = lib.finalize()
        } else {
            writeStderr("rank \(worldRank): exiting with status \(status); aborting the MPI job (\(worldSize) ranks)\n")
            _ = lib.abort(lib.commWorld, status)
        }
    }

    /// Prints why and ends every rank of the job.
    static func abortJob(_ message: String, code: Int32 = 1) -> Never {
        writeStderr("rank \(worldRank): \(message)\n")
        if let lib = library {
            isActive = false
            _ = lib.abort(lib.commWorld, code)
        }
        _exit(code)
    }
}

/// Writes straight to file descriptor 2 (unbuffered, usable in exit handlers).
func writeStderr(_ s: String) {
    var bytes = Array(s.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { break }
        offset += n
    }
}
