#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file path as the file system stores it: bytes, not necessarily UTF-8.
///
/// A Swift `String` cannot hold a name that is not valid UTF-8 (decoding replaces the bad bytes, and
/// the repaired name then names no file), so folder scans keep the bytes and open files by them;
/// `description` is only for messages, with each invalid byte written as `\xNN`.
public struct RawPath: Sendable, Hashable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }
    public init(_ string: String) { bytes = Array(string.utf8) }

    /// `self/component` (no separator doubled).
    public func appending(_ component: [UInt8]) -> RawPath {
        if bytes.isEmpty { return RawPath(bytes: component) }
        return RawPath(bytes: bytes.last == 0x2F ? bytes + component : bytes + [0x2F] + component)
    }

    /// Calls `body` with the path as a NUL-terminated C string; nil when the path holds a NUL byte
    /// (no file has such a name).
    public func withCString<R>(_ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
        if bytes.contains(0) { return try body(nil) }
        return try (bytes + [0]).withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress) }
        }
    }

    /// The path for messages: valid UTF-8 as is, other bytes as `\xNN`.
    public var description: String { Self.displayName(bytes) }

    /// Whether the bytes are valid UTF-8 (the path round-trips through `String`).
    public var isValidUTF8: Bool { String(validating: bytes, as: UTF8.self) != nil }

    /// `name` as text: valid UTF-8 as is, other bytes as `\xNN`.
    public static func displayName<C: Collection>(_ name: C) -> String where C.Element == UInt8 {
        if let s = String(validating: name, as: UTF8.self) { return s }
        var out = ""
        var pending = Array(name)
        // The longest valid prefix as text, else one byte as \xNN; again on the rest.
        while !pending.isEmpty {
            var n = pending.count
            while n > 0, String(validating: pending[..<n], as: UTF8.self) == nil { n -= 1 }
            if n > 0 {
                out += String(decoding: pending[..<n], as: UTF8.self)
                pending.removeFirst(n)
            } else {
                out += "\\x" + String(pending[0], radix: 16, uppercase: true).leftPadded(to: 2)
                pending.removeFirst()
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
