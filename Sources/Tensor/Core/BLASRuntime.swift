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
