import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The engine's worker threads: `Parallel.threads − 1` threads that run the pieces of every
/// parallel kernel beside the calling thread.
///
/// Why not `DispatchQueue.concurrentPerform`: libdispatch parks its workers as soon as they are
/// idle and wakes them through the kernel for every call, which costs 20–40 µs per call on this
/// project's 2-core hosts (measured: two 20 µs halves took 60 µs). A forward pass of pit_ti at
/// batch 1 makes ~150 parallel calls of tens of µs each, a training step thousands. Here an idle
/// worker keeps polling for the next job for `spinNanoseconds` (as OpenMP runtimes do between
/// parallel regions) and only then sleeps on a condition variable; a call that finds it polling
/// costs well under a µs.
///
/// Iterations are claimed one at a time from a shared counter, so the caller takes over pieces a
/// worker has not started (a worker descheduled by another process delays nothing); a caller left
/// waiting for a worker's last piece polls as long, then sleeps until that piece ends. A call made
/// while the pool runs another job (a nested parallel loop, or another thread's) falls back to
/// libdispatch.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// How long an idle worker polls before it sleeps: `VITZOO_SPIN_US` microseconds (default 200).
    static let spinNanoseconds: UInt64 = {
        if let v = ProcessInfo.processInfo.environment["VITZOO_SPIN_US"], let us = UInt64(v) { return us * 1000 }
        return 200_000
    }()

    /// The job word: generation (bits 40…63), iteration count (bits 20…39), next unclaimed
    /// iteration (bits 0…19). One atomic word, so a claim is valid only for the job it was read from.
    private let state = Atomic<UInt64>(0)
    /// Iterations of the current job not yet finished.
    private let remaining = Atomic<Int>(0)
    /// Whether a caller owns the pool.
    private let busy = Atomic<Bool>(false)
    /// Workers sleeping (or about to) on `condition`.
    private let sleepers = Atomic<Int>(0)
    /// Whether the caller sleeps (or is about to) on `finished` until the last iteration ends.
    private let callerWaits = Atomic<Bool>(false)
    private let workerCount = Atomic<Int>(0)
    /// The current job's body; valid while `remaining > 0`.
    private nonisolated(unsafe) var body: ((Int) -> Void)?
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let finished = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let growLock = NSLock()

    static let maxIterations = (1 << 20) - 1
    private static let countShift: UInt64 = 20, generationShift: UInt64 = 40, fieldMask: UInt64 = (1 << 20) - 1

    private init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        pthread_cond_init(finished, nil)
    }

    /// Runs `body(i)` for i in 0..<iterations on the caller and the workers; returns when all have run.
    func run(_ iterations: Int, _ body: (Int) -> Void) {
        guard iterations <= Self.maxIterations, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            withoutActuallyEscaping(body) { body in
                let box = UncheckedBox(body)
                DispatchQueue.concurrentPerform(iterations: iterations) { box.value($0) }
            }
            return
        }
        ensureWorkers(Parallel.threads - 1)
        withoutActuallyEscaping(body) { body in
            self.body = body
            remaining.store(iterations, ordering: .relaxed)
            let generation = (state.load(ordering: .relaxed) >> Self.generationShift) &+ 1
            state.store((generation << Self.generationShift) | (UInt64(iterations) << Self.countShift), ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(condition)
                pthread_mutex_unlock(mutex)
            }
            while claimAndRun() {}
            // the workers' last iterations (a worker descheduled by another process must not cost
            // this core too)
            wait(until: { remaining.load(ordering: .sequentiallyConsistent) == 0 }, on: finished) {
                callerWaits.store($0, ordering: .sequentiallyConsistent)
            }
            self.body = nil
        }
        busy.store(false, ordering: .releasing)
    }

    /// Claims the next iteration of the current job and runs it; false when none is left.
    @inline(__always)
    private func claimAndRun() -> Bool {
        while true {
            let s = state.load(ordering: .acquiring)
            let next = s & Self.fieldMask, count = (s >> Self.countShift) & Self.fieldMask
            guard next < count else { return false }
            if state.compareExchange(expected: s, desired: s + 1, ordering: .acquiringAndReleasing).exchanged {
                body.unsafelyUnwrapped(Int(next))
                if remaining.subtract(1, ordering: .sequentiallyConsistent).newValue == 0 && callerWaits.load(ordering: .sequentiallyConsistent) {
                    pthread_mutex_lock(mutex)
                    pthread_cond_signal(finished)
                    pthread_mutex_unlock(mutex)
                }
                return true
            }
        }
    }

    private func ensureWorkers(_ n: Int) {
        guard workerCount.load(ordering: .acquiring) < n else { return }
        growLock.lock()
        defer { growLock.unlock() }
        while workerCount.load(ordering: .relaxed) < n {
            var thread = pthread_t()
            let unmanaged = Unmanaged.passRetained(self)
            let rc = pthread_create(&thread, nil, { arg in
                Unmanaged<WorkerPool>.fromOpaque(arg!).takeRetainedValue().workerLoop()
            }, unmanaged.toOpaque())
            guard rc == 0 else { unmanaged.release(); return }
            pthread_detach(thread)
            workerCount.add(1, ordering: .releasing)
        }
    }

    private func workerLoop() -> Never {
        while true {
            while claimAndRun() {}
            let seen = state.load(ordering: .acquiring)
            if seen & Self.fieldMask < (seen >> Self.countShift) & Self.fieldMask { continue }
            // the next job
            wait(until: { state.load(ordering: .sequentiallyConsistent) != seen }, on: condition) {
                sleepers.add($0 ? 1 : -1, ordering: .sequentiallyConsistent)
            }
        }
    }

    /// Polls `done` for `spinNanoseconds`, then sleeps on `cond` until it holds. `announce(true)`
    /// and `announce(false)` (under the mutex, sequentially consistent) tell whoever makes `done`
    /// true that someone sleeps: that side changes its state first and checks the announcement
    /// after, so one of the two always sees the other and no wake-up is lost.
    @inline(__always)
    private func wait(until done: () -> Bool, on cond: UnsafeMutablePointer<pthread_cond_t>, announce: (Bool) -> Void) {
        let start = DispatchTime.now().uptimeNanoseconds
        var polls = 0
        while !done() {
            polls &+= 1
            if polls & 255 == 0 && DispatchTime.now().uptimeNanoseconds &- start > Self.spinNanoseconds {
                pthread_mutex_lock(mutex)
                announce(true)
                while !done() { pthread_cond_wait(cond, mutex) }
                announce(false)
                pthread_mutex_unlock(mutex)
            }
        }
    }
}
