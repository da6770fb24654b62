import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Time spent in collectives (wall-clock inside waits, and packing/unpacking gradient buckets).
public final class CommunicationStats: @unchecked Sendable {
    public static let shared = CommunicationStats()
    let lock = NSLock()
    public private(set) var gradientSyncs = 0
    public private(set) var gradientSeconds = 0.0
    public private(set) var waitSeconds = 0.0
    public private(set) var gradientBytes = 0

    public func addSync(seconds: Double, bytes: Int) {
        lock.lock(); gradientSyncs += 1; gradientSeconds += seconds; gradientBytes = bytes; lock.unlock()
    }
    public func addWait(_ s: Double) { lock.lock(); waitSeconds += s; lock.unlock() }
    public func reset() { lock.lock(); gradientSyncs = 0; gradientSeconds = 0; waitSeconds = 0; lock.unlock() }

    public var summary: String {
        lock.lock(); defer { lock.unlock() }
        let per = gradientSyncs > 0 ? gradientSeconds / Double(gradientSyncs) * 1000 : 0
        return String(format: "%d gradient all-reduces of %.1f MB, %.2f ms each (%.1f s in total); %.1f s waiting in collectives",
                      gradientSyncs, Double(gradientBytes) / 1e6, per, gradientSeconds, waitSeconds)
    }

}

@inline(__always) public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
