import Foundation
import Tensor
import XCTest

/// A seeded, time-boxed mutation fuzzer for the readers of untrusted bytes (docs/fuzzing.md).
///
/// Starting from a corpus (`Tests/Fixtures/fuzz/<target>/`, which also keeps the inputs that once
/// crashed) it applies random byte-level mutations — bit flips, byte and integer overwrites,
/// insertions, deletions, duplicated and spliced ranges, truncation — and hands each input to the
/// target. A crash, trap or hang fails the suite by itself; the target's closure checks that
/// everything else ends in a value or a named error. Same seed, same inputs: a failure names its
/// seed and iteration so it can be replayed. `VITZOO_FUZZ_SECONDS` sets the budget per target
/// (default 2 s: a few thousand inputs in CI).
public struct MutationFuzzer {
    public var seed: UInt64
    public var seconds: Double
    public var maxLength: Int

    public init(seed: UInt64 = 0x5eed, seconds: Double? = nil, maxLength: Int = 1 << 16) {
        self.seed = seed
        self.seconds = seconds ?? ProcessInfo.processInfo.environment["VITZOO_FUZZ_SECONDS"].flatMap(Double.init) ?? 2
        self.maxLength = maxLength
    }

    /// The corpus files of `Tests/Fixtures/fuzz/<target>/`, sorted by name.
    public static func corpus(_ target: String) throws -> [(name: String, bytes: [UInt8])] {
        let dir = Fixtures.directory.appendingPathComponent("fuzz/\(target)")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        return try names.map { ($0, [UInt8](try Data(contentsOf: dir.appendingPathComponent($0)))) }
    }

    /// Runs every corpus input once, then mutated inputs until the time is up. Returns the number
    /// of inputs run. `body` gets the input and a label ("seed 7 iteration 12") for messages.
    @discardableResult
    public func run(corpus: [[UInt8]], _ body: ([UInt8], String) throws -> Void) rethrows -> Int {
        precondition(!corpus.isEmpty, "a fuzzer needs at least one seed input")
        for (i, input) in corpus.enumerated() { try body(input, "corpus input \(i)") }
        var g = RandomGenerator(seed: seed)
        let deadline = Date().addingTimeInterval(seconds)
        var n = 0
        while Date() < deadline {
            var input = corpus[g.nextInt(below: corpus.count)]
            for _ in 0..<(1 + g.nextInt(below: 4)) { mutate(&input, with: corpus, rng: &g) }
            try body(input, "seed \(seed) iteration \(n)")
            n += 1
        }
        return corpus.count + n
    }

    /// Runs the fuzzer where every input must be accepted (`body` returns) or refused with an `E`
    /// (checked by `refused`); any other error fails the test. Returns the counts and inputs run.
    public func run<E: Error>(corpus: [[UInt8]], refusing: E.Type, _ body: ([UInt8], String) throws -> Void,
                              refused check: (E, String) -> Void, file: StaticString = #filePath, line: UInt = #line)
        -> (accepted: Int, refused: Int, inputs: Int) {
        var accepted = 0, refused = 0
        let inputs = run(corpus: corpus) { bytes, label in
            do {
                try body(bytes, label)
                accepted += 1
            } catch let error as E {
                check(error, label)
                refused += 1
            } catch {
                XCTFail("\(label): unexpected error type \(type(of: error)): \(error)", file: file, line: line)
            }
        }
        return (accepted, refused, inputs)
    }

    /// Values that sit on size and sign boundaries.
    static let interesting: [UInt64] = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 32,
                                        0x7FFF_FFFF_FFFF_FFFF, UInt64.max, 16, 64, 224, 1 << 20]

    func mutate(_ d: inout [UInt8], with corpus: [[UInt8]], rng g: inout RandomGenerator) {
        if d.isEmpty { d = [UInt8(truncatingIfNeeded: g.next())]; return }
        switch g.nextInt(below: 9) {
        case 0:  // flip one bit
            d[g.nextInt(below: d.count)] ^= UInt8(1 << g.nextInt(below: 8))
        case 1:  // random byte
            d[g.nextInt(below: d.count)] = UInt8(truncatingIfNeeded: g.next())
        case 2:  // interesting integer, little or big endian, 1-8 bytes
            let v = Self.interesting[g.nextInt(below: Self.interesting.count)]
            let width = [1, 2, 4, 8][g.nextInt(below: 4)], at = g.nextInt(below: d.count)
            let bigEndian = g.nextInt(below: 2) == 0
            for k in 0..<min(width, d.count - at) {
                let shift = bigEndian ? (width - 1 - k) * 8 : k * 8
                d[at + k] = UInt8(truncatingIfNeeded: v >> UInt64(shift))
            }
        case 3:  // ASCII digit run (sizes in JSON/YAML headers)
            let at = g.nextInt(below: d.count)
            for k in 0..<min(1 + g.nextInt(below: 20), d.count - at) { d[at + k] = UInt8(0x30 + g.nextInt(below: 10)) }
        case 4:  // insert random bytes
            let at = g.nextInt(below: d.count + 1)
            d.insert(contentsOf: (0..<(1 + g.nextInt(below: 16))).map { _ in UInt8(truncatingIfNeeded: g.next()) }, at: at)
        case 5:  // delete a range
            let at = g.nextInt(below: d.count), n = min(1 + g.nextInt(below: 32), d.count - at)
            d.removeSubrange(at..<(at + n))
        case 6:  // duplicate a range
            let at = g.nextInt(below: d.count), n = min(1 + g.nextInt(below: 64), d.count - at)
            d.insert(contentsOf: d[at..<(at + n)], at: g.nextInt(below: d.count + 1))
        case 7:  // splice in a piece of another corpus input
            let other = corpus[g.nextInt(below: corpus.count)]
            guard !other.isEmpty else { return }
            let from = g.nextInt(below: other.count), n = min(1 + g.nextInt(below: 64), other.count - from)
            let at = g.nextInt(below: d.count)
            d.replaceSubrange(at..<min(at + n, d.count), with: other[from..<(from + n)])
        default:  // truncate
            d.removeLast(g.nextInt(below: d.count))
        }
        if d.count > maxLength { d.removeLast(d.count - maxLength) }
    }
}
