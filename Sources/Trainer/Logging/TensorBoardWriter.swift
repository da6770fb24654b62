import Foundation
import Protos
import SwiftProtobuf

/// Writes TensorBoard event files (`events.out.tfevents.<seconds>.<host>` in a folder): scalar
/// summaries as `Event { wall_time, step, summary { value { tag, simple_value } } }` records, the
/// first record carrying `file_version = "brain.Event:2"` (docs/tensorboard.md).
///
/// An event file is an append-only stream that TensorBoard reads while it grows, so records are
/// appended and flushed (`flush()`, after each epoch) rather than written to a temporary file.
public final class TensorBoardWriter {
    public let path: String
    private let handle: FileHandle
    private var pending = Data()

    /// Creates `directory` if needed and starts a new event file in it.
    public init(directory: String, now: Date = Date()) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw TensorBoardError.cannotWrite(path: directory, reason: error.localizedDescription)
        }
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        var name = "events.out.tfevents.\(Int(now.timeIntervalSince1970)).\(host)"
        var n = 1
        while FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(name)) {
            n += 1
            name = "events.out.tfevents.\(Int(now.timeIntervalSince1970)).\(host).\(n)"
        }
        path = (directory as NSString).appendingPathComponent(name)
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw TensorBoardError.cannotWrite(path: path, reason: "cannot create the event file")
        }
        handle = h
        var first = Tensorboard_Event()
        first.wallTime = now.timeIntervalSince1970
        first.fileVersion = "brain.Event:2"
        try append(first)
        try flush()
    }

    deinit { try? flush(); try? handle.close() }

    /// Adds scalars at `step` (one event per call; tags such as `train/loss`).
    public func scalars(_ values: [(tag: String, value: Double)], step: Int, wallTime: Date = Date()) throws {
        var summary = Tensorboard_Summary()
        summary.value = values.map { v in
            var s = Tensorboard_Summary.Value()
            s.tag = v.tag
            s.simpleValue = Float(v.value)
            return s
        }
        var event = Tensorboard_Event()
        event.wallTime = wallTime.timeIntervalSince1970
        event.step = Int64(step)
        event.summary = summary
        try append(event)
        if pending.count > 1 << 16 { try flush() }
    }

    /// Writes buffered records to the file.
    public func flush() throws {
        guard !pending.isEmpty else { return }
        do { try handle.write(contentsOf: pending) } catch {
            throw TensorBoardError.cannotWrite(path: path, reason: error.localizedDescription)
        }
        pending.removeAll(keepingCapacity: true)
    }

    private func append(_ event: Tensorboard_Event) throws {
        pending.append(TFRecord.frame(try event.serializedData()))
    }
}

/// Reads the scalars back from an event file, verifying every record's checksums (tests, `zoo`
/// tooling). Returns `(tag, step, value)` in file order and the file version.
public enum TensorBoardReader {
    public struct Scalar: Equatable, Sendable {
        public var tag: String
        public var step: Int
        public var value: Float
    }

    public static func read(_ path: String) throws -> (version: String, scalars: [Scalar]) {
        guard let data = FileManager.default.contents(atPath: path) else { throw TensorBoardError.cannotRead(path: path) }
        var version = ""
        var out: [Scalar] = []
        for payload in try TFRecord.records(data, source: path) {
            let event = try Tensorboard_Event(serializedBytes: payload)
            if case let .fileVersion(v)? = event.what { version = v }
            if case let .summary(s)? = event.what {
                for v in s.value {
                    if case let .simpleValue(x)? = v.value { out.append(Scalar(tag: v.tag, step: Int(event.step), value: x)) }
                }
            }
        }
        return (version, out)
    }
}

public enum TensorBoardError: Error, CustomStringConvertible, Equatable {
    case cannotWrite(path: String, reason: String)
    case cannotRead(path: String)
    public var description: String {
        switch self {
        case let .cannotWrite(p, r): return "TensorBoard event file \(p): \(r)"
        case let .cannotRead(p): return "TensorBoard event file \(p): cannot read"
        }
    }
}
