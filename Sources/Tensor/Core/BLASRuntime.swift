import CBLAS
import Foundation

/// The OpenBLAS library as loaded: its kernel core and threads, and the AVX-512 fast path.
public enum BLASRuntime {
    /// The kernel family OpenBLAS picked (e.g. "Cooperlake", "SkylakeX", "Haswell").
    public static var coreName: String {
        guard let c = openblas_get_corename() else { return "unknown" }
        return String(cString: c)
    }

    public static var config: String {
        guard let c = openblas_get_config() else { return "" }
        return String(cString: c)
    }

    public static var threads: Int { Int(openblas_get_num_threads()) }

    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(n))
        Parallel.threads = n
    }

    /// Whether this CPU executes AVX-512F (read from /proc/cpuinfo).
    public static var cpuHasAVX512: Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return false }
        return info.split(separator: "\n").contains { $0.hasPrefix("flags") && $0.split(separator: " ").contains("avx512f") }
    }

    /// Cores whose kernels are AVX2 or older; on an AVX-512 CPU they leave about half of sgemm unused.
    static let avx2Cores: Set<String> = ["haswell", "zen", "sandybridge", "nehalem", "core2", "prescott", "barcelona", "bulldozer", "piledriver", "steamroller", "excavator"]

    /// OpenBLAS reads `OPENBLAS_CORETYPE` once, when it loads, so a better core needs a fresh process.
    /// When the user set no core, the CPU has AVX-512 and OpenBLAS chose an AVX2 core (older OpenBLAS
    /// on Zen 4), re-executes this program once with `OPENBLAS_CORETYPE=SkylakeX`. A value the user
    /// set is always respected.
    public static func preferFastestCore() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env["VITZOO_BLAS_REEXEC"] == nil else { return }
        guard avx2Cores.contains(coreName.lowercased()), cpuHasAVX512 else { return }
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1)
        setenv("VITZOO_BLAS_REEXEC", "1", 1)
        let args = CommandLine.arguments
        var cArgs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cArgs.append(nil)
        execv("/proc/self/exe", &cArgs)
        // execv returns only on failure: carry on with the core we have.
        unsetenv("OPENBLAS_CORETYPE")
    }
}

extension BLASRuntime {
    /// Runs `body` with OpenBLAS on one thread, for regions that run independent small GEMMs on
    /// several engine threads at once (one single-threaded sgemm per worker beats threading each
    /// small GEMM). Concurrent single-threaded sgemm calls are safe: OpenBLAS (threaded build)
    /// takes its work buffers from a locked pool and runs a 1-thread call on the caller's thread.
    ///
    /// The thread count is process-global, so regions are reference-counted under a lock: the
    /// first region to enter saves the count and sets 1, the last to leave restores it. Without
    /// this, two overlapping regions (two tasks evaluating models) could restore the count while
    /// the other still runs concurrent sgemms.
    public static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
        singleThreadLock.lock()
        if singleThreadDepth == 0 {
            savedThreads = openblas_get_num_threads()
            if savedThreads != 1 { openblas_set_num_threads(1) }
        }
        singleThreadDepth += 1
        singleThreadLock.unlock()
        defer {
            singleThreadLock.lock()
            singleThreadDepth -= 1
            if singleThreadDepth == 0 && savedThreads != 1 { openblas_set_num_threads(savedThreads) }
            singleThreadLock.unlock()
        }
        return try body()
    }

    /// Whether some thread is inside `withSingleThreadedBLAS` (its callers parallelise themselves, so
    /// `sgemm` does not split its product again).
    static var inSingleThreadedRegion: Bool { singleThreadDepth > 0 }

    private static let singleThreadLock = NSLock()
    nonisolated(unsafe) private static var singleThreadDepth = 0
    nonisolated(unsafe) private static var savedThreads: Int32 = 1
}
