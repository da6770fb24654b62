import Foundation
import Tensor
#if canImport(Glibc)
import Glibc
import Trainer
#endif

/// The machine a benchmark ran on, printed in the header of every report: CPU, cores, the BLAS
/// library and the kernel core it picked, the thread count, the load average (the machine may be
/// shared: readers judge the medians by it) and the measured `cblas_sgemm` peak that model FLOP
/// utilisation is relative to.
public struct MachineInfo: Codable, Sendable, Equatable {
    public var cpuModel: String
    public var logicalCores: Int
    public var physicalCores: Int?
    public var avx512: Bool
    /// `openblas_get_config()`, e.g. "OpenBLAS 0.3.26 DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64".
    public var blasLibrary: String
    /// `openblas_get_corename()`: the kernel family in use.
    public var blasCore: String
    /// `OPENBLAS_CORETYPE` as this process saw it (nil: OpenBLAS chose by CPUID).
    public var blasCoreTypeEnv: String?
    public var threads: Int
    /// 1, 5 and 15 minute load averages when the run started.
    public var loadAverage: [Double]
    public var memoryTotalGB: Double?
    /// GFLOP/s of `cblas_sgemm` at `sgemmSize`³ with `threads` threads, measured in this run: the
    /// fastest of the timed calls (the machine's capability; on a shared machine the median is
    /// pulled down by other jobs), and the median beside it.
    public var sgemmPeakGFLOPs: Double
    public var sgemmMedianGFLOPs: Double?
    public var sgemmSize: Int
    public var date: String
    public var build: String

    /// Reads the machine and measures the sgemm peak (skip the measurement with `sgemmPeak`).
    public static func current(sgemmSize: Int = 2048, sgemmPeak: Double? = nil) -> MachineInfo {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        func field(_ key: String) -> String? {
            for line in cpu.split(separator: "\n") where line.hasPrefix(key) {
                if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
            }
            return nil
        }
        var model = field("model name") ?? "unknown CPU"
        if let fam = field("cpu family"), let mod = field("model\t"), let step = field("stepping") {
            model += " (family \(fam) model \(mod) stepping \(step))"
        }
        let physical: Int? = {
            // Distinct (physical id, core id) pairs; fall back to "cpu cores".
            var pairs = Set<String>(), phys = "0"
            for line in cpu.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2 else { continue }
                if parts[0] == "physical id" { phys = parts[1] }
                if parts[0] == "core id" { pairs.insert(phys + "/" + parts[1]) }
            }
            if !pairs.isEmpty { return min(pairs.count, ProcessInfo.processInfo.activeProcessorCount) }
            return field("cpu cores").flatMap { Int($0) }
        }()
        let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "")
            .split(separator: " ").prefix(3).compactMap { Double($0) }
        let mem: Double? = {
            guard let s = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
                  let line = s.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
                  let kb = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return nil }
            return kb / 1_048_576
        }()
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        let threads = Parallel.threads
        let measured = sgemmPeak == nil ? Self.measureSgemm(size: sgemmSize) : nil
        let peak = sgemmPeak ?? measured!.best
        let formatter = ISO8601DateFormatter()
        return MachineInfo(cpuModel: model, logicalCores: ProcessInfo.processInfo.activeProcessorCount, physicalCores: physical,
                           avx512: BLASRuntime.cpuHasAVX512, blasLibrary: BLASRuntime.config, blasCore: BLASRuntime.coreName,
                           blasCoreTypeEnv: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], threads: threads,
                           loadAverage: load, memoryTotalGB: mem, sgemmPeakGFLOPs: peak, sgemmMedianGFLOPs: measured?.median, sgemmSize: sgemmSize,
                           date: formatter.string(from: Date()), build: build)
    }

    /// Best and median GFLOP/s (2·n³ per call) of `cblas_sgemm` on n×n row-major matrices, after a
    /// warm-up call, with the current OpenBLAS thread count. Repeats until `seconds` have passed
    /// (at least `minRuns` timed calls).
    public static func measureSgemm(size n: Int = 2048, minRuns: Int = 5, seconds: Double = 2) -> (best: Double, median: Double) {
        let count = n * n
        let a = UnsafeMutablePointer<Float>.allocate(capacity: count), b = UnsafeMutablePointer<Float>.allocate(capacity: count)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        var g = RandomGenerator(seed: 7)
        let init_ = Tensor.randn([count], std: 1, generator: &g)
        a.update(from: init_.storage.pointer, count: count)
        b.update(from: init_.storage.pointer, count: count)
        c.initialize(repeating: 0, count: count)
        let call = { sgemm(transA: false, transB: false, m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: c, ldc: n) }
        call()
        var times: [Double] = []
        let start = BenchmarkClock.now()
        while times.count < minRuns || (BenchmarkClock.now() - start < seconds && times.count < 50) {
            let t0 = BenchmarkClock.now()
            call()
            times.append(BenchmarkClock.now() - t0)
        }
        let flop = 2 * Double(n) * Double(n) * Double(n)
        return (flop / times.min()! / 1e9, flop / BenchmarkClock.median(times) / 1e9)
    }

    /// Lines of the report header.
    public var headerLines: [String] {
        let cores = physicalCores.map { "\(logicalCores) logical / \($0) physical cores" } ?? "\(logicalCores) cores"
        let env = blasCoreTypeEnv.map { "OPENBLAS_CORETYPE=\($0)" } ?? "OPENBLAS_CORETYPE unset"
        return [
            "machine: \(cpuModel), \(cores)" + (avx512 ? ", AVX-512" : "") + (memoryTotalGB.map { String(format: ", %.0f GB RAM", $0) } ?? ""),
            "BLAS: \(blasLibrary); core \(blasCore) (\(env)); \(threads) threads; \(build) build",
            String(format: "cblas_sgemm peak: %.1f GFLOP/s at %d×%d×%d (fastest call of this run", sgemmPeakGFLOPs, sgemmSize, sgemmSize, sgemmSize)
                + (sgemmMedianGFLOPs.map { String(format: "; median %.1f", $0) } ?? "") + "); MFU is relative to it",
            "load average at start: " + loadAverage.map { String(format: "%.2f", $0) }.joined(separator: " ") + "; \(date)",
        ]
    }
}

// MARK: - Clocks, medians, resident memory

public enum BenchmarkClock {
    @inline(__always)
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// CPU seconds of the process (all threads).
    public static func cpuNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Median of a non-empty list (mean of the middle two for an even count).
    public static func median(_ xs: [Double]) -> Double {
        precondition(!xs.isEmpty, "median of nothing")
        let s = xs.sorted(), n = s.count
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
    }
}

/// The process's resident set from /proc/self/status (Linux): current (`VmRSS`) and peak (`VmHWM`).
public enum ResidentMemory {
    static func statusField(_ key: String) -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in s.split(separator: "\n") where line.hasPrefix(key + ":") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
        }
        return nil
    }

    /// Current resident bytes.
    public static var current: Int? { statusField("VmRSS") }
    /// Peak resident bytes since the process started or since the last `releaseAndResetPeak()`.
    public static var peak: Int? { statusField("VmHWM") }

    /// Returns cached engine buffers and free heap pages to the system, then resets the peak
    /// (`VmHWM`) to the current resident set by writing 5 to /proc/self/clear_refs (Linux ≥ 4.0).
    /// Returns whether the reset took effect.
    @discardableResult
    public static func releaseAndResetPeak() -> Bool {
        BufferPool.shared.drain()
        BufferPool.shared.resetPeak()
        // glibc's malloc_trim (not in the Glibc module map): returns free heap pages to the system.
        if let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
            typealias Trim = @convention(c) (Int) -> Int32
            _ = unsafeBitCast(sym, to: Trim.self)(0)
        }
        guard let fh = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? fh.close() }
        do { try fh.write(contentsOf: Data("5".utf8)) } catch { return false }
        return true
    }
}
