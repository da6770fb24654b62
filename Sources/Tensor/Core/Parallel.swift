import Dispatch
import Foundation

/// A pointer that may cross into worker threads. Kernels split disjoint ranges of one buffer
/// across threads; each thread writes only its own range.
public struct SendablePointer<T>: @unchecked Sendable {
    public let base: UnsafeMutablePointer<T>
    public init(_ base: UnsafeMutablePointer<T>) { self.base = base }
    @inline(__always) public subscript(i: Int) -> T {
        get { base[i] }
        nonmutating set { base[i] = newValue }
    }
    @inline(__always) public static func + (p: SendablePointer, offset: Int) -> UnsafeMutablePointer<T> { p.base + offset }
}

public extension UnsafeMutablePointer {
    var sendable: SendablePointer<Pointee> { SendablePointer(self) }
}

/// Splits work across the cores. `threads` is the engine's worker count: `VITZOO_NUM_THREADS`, else
/// `OPENBLAS_NUM_THREADS`, else the number of active cores.
public enum Parallel {
    nonisolated(unsafe) public static var threads: Int = {
        let env = ProcessInfo.processInfo.environment
        for key in ["VITZOO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"] {
            if let v = env[key], let n = Int(v), n > 0 { return n }
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body` over `0..<count` in contiguous chunks, in parallel when each chunk gets at least
    /// `grain` items. `body` receives a half-open range.
    @inline(__always)
    public static func forRange(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>) -> Void) {
        let chunks = min(threads, count / max(grain, 1))
        if chunks <= 1 {
            if count > 0 { body(0..<count) }
            return
        }
        WorkerPool.shared.run(chunks) { c in
            body(count * c / chunks ..< count * (c + 1) / chunks)
        }
    }
}

extension Parallel {
    /// Runs `body(i)` for i in 0..<iterations concurrently (inline when there is one iteration).
    /// Use it for work already split into per-thread pieces (e.g. one partial buffer per piece).
    @inline(__always)
    public static func forEach(_ iterations: Int, _ body: (Int) -> Void) {
        if iterations <= 1 {
            if iterations == 1 { body(0) }
            return
        }
        WorkerPool.shared.run(iterations, body)
    }
}

struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
