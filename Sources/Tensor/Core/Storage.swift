import Foundation

/// Owns a 64-byte-aligned Float32 buffer. Large buffers come from and return to `BufferPool`, so a
/// training step that repeats the same shapes reuses memory instead of page-faulting fresh pages.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    /// Number of valid elements.
    public let count: Int
    let capacity: Int

    /// Uninitialised storage of `count` floats.
    public init(count: Int) {
        precondition(count >= 0, "negative element count")
        self.count = count
        let (p, cap) = BufferPool.shared.acquire(count)
        self.pointer = p
        self.capacity = cap
    }

    /// Zero-filled storage.
    public convenience init(zeros count: Int) {
        self.init(count: count)
        if count > 0 { memset(pointer, 0, count * MemoryLayout<Float>.stride) }
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit { BufferPool.shared.release(pointer, capacity: capacity) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
}

/// A size-bucketed cache of large aligned buffers. Buffers of 64 KiB or more are rounded to whole
/// pages and kept after release (up to `limitBytes` in total), so the next allocation of the same
/// size gets already-mapped memory. Small buffers go straight to malloc, which is cheap for them.
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    private let lock = NSLock()
    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var cachedBytes = 0
    /// Bytes kept cached at most; past it the cache is emptied before caching more.
    public var limitBytes: Int = 6 << 30
    private static let pooledMinimum = 16 * 1024  // floats (64 KiB)
    private static let pageFloats = 1024  // 4 KiB

    func acquire(_ count: Int) -> (UnsafeMutablePointer<Float>, Int) {
        if count < Self.pooledMinimum {
            let cap = max(count, 16)
            return (Self.allocate(cap), cap)
        }
        let cap = (count + Self.pageFloats - 1) / Self.pageFloats * Self.pageFloats
        lock.lock()
        if var list = free[cap], let p = list.popLast() {
            free[cap] = list
            cachedBytes -= cap * 4
            lock.unlock()
            return (p, cap)
        }
        lock.unlock()
        return (Self.allocate(cap), cap)
    }

    func release(_ p: UnsafeMutablePointer<Float>, capacity: Int) {
        if capacity < Self.pooledMinimum { Foundation.free(p); return }
        lock.lock()
        if cachedBytes + capacity * 4 > limitBytes { drainLocked() }
        free[capacity, default: []].append(p)
        cachedBytes += capacity * 4
        lock.unlock()
    }

    /// Returns every cached buffer to the system.
    public func drain() {
        lock.lock(); drainLocked(); lock.unlock()
    }

    private func drainLocked() {
        for (_, list) in free { for p in list { Foundation.free(p) } }
        free.removeAll(keepingCapacity: true)
        cachedBytes = 0
    }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        var raw: UnsafeMutableRawPointer?
        let rc = posix_memalign(&raw, 64, max(count, 1) * MemoryLayout<Float>.stride)
        guard rc == 0, let raw else { fatalError("out of memory allocating \(count) floats") }
        return raw.bindMemory(to: Float.self, capacity: count)
    }
}
