import Foundation
import Synchronization
import XCTest
@testable import Tensor

/// The engine's worker pool (Sources/Tensor/Core/WorkerPool.swift): every iteration runs exactly
/// once, iterations run at the same time on different threads, sleeping workers wake, and nested or
/// concurrent calls (which fall back to libdispatch) complete.
final class WorkerPoolTests: XCTestCase {
    func testEveryIterationRunsOnce() {
        for iterations in [2, 3, 7, 64, 1000] {
            let counts = Locked(Array(repeating: 0, count: iterations))
            Parallel.forEach(iterations) { i in counts.update { $0[i] += 1 } }
            XCTAssertEqual(counts.value, Array(repeating: 1, count: iterations), "\(iterations) iterations")
        }
        // forRange hands out disjoint ranges that cover 0..<count.
        let covered = Locked(Array(repeating: 0, count: 100_000))
        Parallel.forRange(100_000, grain: 1000) { r in covered.update { for i in r { $0[i] += 1 } } }
        XCTAssertEqual(covered.value, Array(repeating: 1, count: 100_000))
    }

    /// Two iterations that each wait for the other to start can only finish if they run on two
    /// threads at once: the caller and a worker. Run after a pause longer than the workers' polling
    /// time, so the worker is asleep and must be woken.
    func testIterationsRunConcurrentlyAndSleepingWorkersWake() throws {
        guard Parallel.threads >= 2 else { throw XCTSkip("one engine thread") }
        for round in 0..<3 {
            usleep(useconds_t(WorkerPool.spinNanoseconds / 1000 + 3000))
            let started = Atomic<Int>(0), timedOut = Atomic<Bool>(false)
            let threads = Locked(Set<UInt>())
            Parallel.forEach(2) { _ in
                threads.update { _ = $0.insert(UInt(pthread_self())) }
                started.add(1, ordering: .sequentiallyConsistent)
                let deadline = Date().addingTimeInterval(10)
                while started.load(ordering: .sequentiallyConsistent) < 2 {
                    if Date() > deadline { timedOut.store(true, ordering: .relaxed); return }
                }
            }
            XCTAssertFalse(timedOut.load(ordering: .relaxed), "round \(round): the second iteration never started beside the first")
            XCTAssertEqual(threads.value.count, 2, "round \(round)")
        }
    }

    /// An iteration much longer than the polling time: the caller, done with its own, sleeps and
    /// must be woken by the worker that finishes last.
    func testCallerSleepsUntilALongIterationEnds() throws {
        guard Parallel.threads >= 2 else { throw XCTSkip("one engine thread") }
        let pause = useconds_t(WorkerPool.spinNanoseconds / 1000 * 5 + 2000)
        for _ in 0..<3 {
            let done = Locked([false, false])
            let t0 = Date()
            Parallel.forEach(2) { i in
                if i == 1 { usleep(pause) }
                done.update { $0[i] = true }
            }
            XCTAssertEqual(done.value, [true, true])
            XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(t0), Double(pause) / 1e6 * 0.9)
        }
    }

    func testNestedAndConcurrentCallsComplete() {
        let total = Atomic<Int>(0)
        Parallel.forEach(4) { _ in
            Parallel.forEach(3) { _ in total.add(1, ordering: .relaxed) }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), 12)
        let concurrent = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<200 { Parallel.forRange(64, grain: 1) { r in concurrent.add(r.count, ordering: .relaxed) } }
        }
        XCTAssertEqual(concurrent.load(ordering: .relaxed), 4 * 200 * 64)
    }
}

/// A value behind a lock, for tallies made from several threads.
private final class Locked<T>: @unchecked Sendable {
    private var stored: T
    private let lock = NSLock()
    init(_ value: T) { stored = value }
    func update(_ body: (inout T) -> Void) { lock.lock(); body(&stored); lock.unlock() }
    var value: T { lock.lock(); defer { lock.unlock() }; return stored }
}
