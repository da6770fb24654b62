import Foundation

/// TFRecord framing (docs/tensorboard.md): little-endian `UInt64` payload length, masked CRC-32C of
/// those 8 bytes, the payload, masked CRC-32C of the payload.
public enum TFRecord {
    /// One framed record.
    public static func frame(_ payload: Data) -> Data {
        var out = Data(capacity: payload.count + 16)
        let length = withUnsafeBytes(of: UInt64(payload.count).littleEndian) { Data($0) }
        out.append(length)
        out.append(littleEndian(CRC32C.masked(length)))
        out.append(payload)
        out.append(littleEndian(CRC32C.masked(payload)))
        return out
    }

    /// The payloads of a byte stream of records; a record whose length or payload checksum does not
    /// match, or that is cut short, is an error naming its offset.
    public static func records(_ data: Data, source: String = "records") throws -> [Data] {
        let bytes = [UInt8](data)
        var out: [Data] = []
        var at = 0
        func u32(_ i: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[i + $1]) << (8 * UInt32($1)) } }
        while at < bytes.count {
            guard at + 12 <= bytes.count else { throw TFRecordError.truncated(source: source, offset: at) }
            let lengthBytes = bytes[at..<at + 8]
            guard CRC32C.masked(lengthBytes) == u32(at + 8) else { throw TFRecordError.badChecksum(source: source, offset: at, what: "length") }
            let n = lengthBytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
            guard n <= UInt64(bytes.count - at - 16) else { throw TFRecordError.truncated(source: source, offset: at) }
            let start = at + 12, end = start + Int(n)
            let payload = bytes[start..<end]
            guard CRC32C.masked(payload) == u32(end) else { throw TFRecordError.badChecksum(source: source, offset: at, what: "payload") }
            out.append(Data(payload))
            at = end + 4
        }
        return out
    }

    static func littleEndian(_ x: UInt32) -> Data { withUnsafeBytes(of: x.littleEndian) { Data($0) } }
}

public enum TFRecordError: Error, CustomStringConvertible, Equatable {
    case truncated(source: String, offset: Int)
    case badChecksum(source: String, offset: Int, what: String)
    public var description: String {
        switch self {
        case let .truncated(s, o): return "\(s): record at byte \(o) is cut short"
        case let .badChecksum(s, o, w): return "\(s): record at byte \(o): \(w) checksum does not match"
        }
    }
}
