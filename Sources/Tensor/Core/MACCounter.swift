import Foundation

/// Counts multiply-accumulates of the GEMMs and direct convolutions run while counting is on:
/// every linear, matmul, convolution and attention product goes through `sgemm` or the depthwise
/// kernel, so the count is that of the real computation at its real shapes.
public enum MACCounter {
    nonisolated(unsafe) static var enabled = false
    nonisolated(unsafe) static var total = 0
    static let lock = NSLock()

    /// Runs `body` and returns its result with the multiply-accumulates it performed.
    public static func count<R>(_ body: () throws -> R) rethrows -> (result: R, macs: Int) {
        lock.lock(); total = 0; enabled = true; lock.unlock()
        defer { lock.lock(); enabled = false; lock.unlock() }
        let r = try body()
        lock.lock(); let n = total; lock.unlock()
        return (r, n)
    }

    @inline(__always)
    static func add(_ macs: Int) {
        guard enabled else { return }
        lock.lock(); total += macs; lock.unlock()
    }
}
