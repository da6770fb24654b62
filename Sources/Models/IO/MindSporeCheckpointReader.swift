import Foundation
import Tensor

/// A MindSpore `.ckpt` file read into memory (format: docs/checkpoints.md §1).
///
/// This is a hand-written streaming parser of the protobuf wire format rather than the generated
/// `MindSporeCheckpoint` decoder: it walks the file entry by entry, so a truncated or corrupt file
/// gives an error naming the entry and byte offset where it broke, and tensor contents stay byte
/// ranges into the file until a caller asks for one (training checkpoints carry optimizer slots and
/// string entries nobody needs decoded). Writing goes through the generated code
/// (`MindSporeCheckpointWriter`), so the round-trip tests check two independent implementations.
public struct MindSporeCheckpointFile {
    /// One named entry. A tensor split over consecutive entries with the same tag is one `Entry`
    /// whose `chunks` are concatenated.
    public struct Entry {
        public var tag: String
        public var dtype: String
        public var dims: [Int]
        /// Byte ranges of `tensor_content` in the file, in order.
        var chunks: [Range<Int>]
        /// The entry is a map tensor (never used by vision models).
        public var isMapTensor = false
        public var byteCount: Int { chunks.reduce(0) { $0 + $1.count } }
    }

    public let path: String
    /// Entries in file order.
    public private(set) var entries: [Entry] = []
    /// Whether the file carried MindSpore's `crc_num` trailer.
    public private(set) var hasCRCTrailer = false
    let data: Data
    private var index: [String: Int] = [:]

    /// Element sizes of the dtypes vitzoo converts (floating point to Float32, integers to Int).
    static let elementSize: [String: Int] = ["Float32": 4, "Float16": 2, "BFloat16": 2, "Float64": 8,
                                             "Int8": 1, "Int16": 2, "Int32": 4, "Int64": 8,
                                             "UInt8": 1, "UInt16": 2, "UInt32": 4, "UInt64": 8, "Bool": 1]
    static let floatTypes: Set<String> = ["Float32", "Float16", "BFloat16", "Float64"]

    /// The leading little-endian magics of MindSpore's encrypted checkpoints.
    static let encryptionMagics: [(bytes: [UInt8], cipher: String)] = [
        ([0xD8, 0x5E, 0x3A, 0x7F], "AES-GCM"), ([0xD9, 0x5E, 0x3A, 0x7F], "AES-CBC"), ([0xDA, 0x5E, 0x3A, 0x7F], "SM4-CBC")]
    static let crcMarker = Array("crc_num".utf8)
    static let crcTrailerLength = 17

    public init(path: String, verifyCRC: Bool = false) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw WeightsError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission or I/O error" : "no such file")
        }
        try self.init(data: data, path: path, verifyCRC: verifyCRC)
    }

    public init(data: Data, path: String = "<memory>", verifyCRC: Bool = false) throws {
        self.path = path
        self.data = data.startIndex == 0 ? data : Data(data)
        if let cipher = Self.encryptionCipher(self.data) { throw WeightsError.encrypted(path: path, cipher: cipher) }
        var end = self.data.count
        if end >= Self.crcTrailerLength, Array(self.data[(end - 17)..<(end - 10)]) == Self.crcMarker {
            end -= Self.crcTrailerLength
            hasCRCTrailer = true
            if verifyCRC {
                var stored: UInt64 = 0
                for b in self.data[(self.data.count - 10)...] { stored = stored << 8 | UInt64(b) }
                let computed = self.data.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[0..<end])) }
                if stored != UInt64(computed) { throw WeightsError.crcMismatch(path: path, stored: UInt32(truncatingIfNeeded: stored), computed: computed) }
            }
        }
        guard end > 0 else { throw WeightsError.corrupt(path: path, entry: "(none)", offset: 0, reason: "the file is empty") }
        try self.data.withUnsafeBytes { raw in try parse(raw, end: end) }
    }

    static func encryptionCipher(_ data: Data) -> String? {
        guard data.count >= 4 else { return nil }
        let head = Array(data.prefix(4))
        return encryptionMagics.first { $0.bytes == head }?.cipher
    }

    public func entry(_ tag: String) -> Entry? { index[tag].map { entries[$0] } }

    // MARK: Parsing

    private mutating func parse(_ raw: UnsafeRawBufferPointer, end: Int) throws {
        var r = WireReader(raw: raw, position: 0, end: end, path: path)
        var lastTag = "(start of file)"
        while r.position < end {
            r.context = "after '\(lastTag)'"
            let start = r.position
            let key = try r.varint()
            guard key == 0x0A else {
                let first = String(format: "0x%02x", raw[start])
                if start == 0 {
                    throw WeightsError.corrupt(path: path, entry: "(first entry)", offset: 0,
                                               reason: "a MindSpore checkpoint starts with 0x0a, this file with \(first) (zero-filled or not a checkpoint?)")
                }
                throw WeightsError.corrupt(path: path, entry: r.context, offset: start, reason: "unexpected field key \(key) where an entry should start")
            }
            let length: Int
            do { length = try r.length() } catch {
                throw Self.peekTag(raw, from: r.position, end: end).map {
                    WeightsError.corrupt(path: path, entry: $0, offset: start, reason: "the entry runs past the end of the file (truncated)")
                } ?? error
            }
            var v = r.sub(length: length)
            r.position += length
            let entry = try parseValue(&v, raw: raw)
            lastTag = entry.tag
            if let i = index[entry.tag] {
                // A split tensor: consecutive entries with one tag, each repeating the full dims.
                guard i == entries.count - 1 else {
                    throw WeightsError.badEntry(path: path, entry: entry.tag, reason: "appears twice, not in consecutive entries")
                }
                guard entries[i].dims == entry.dims, entries[i].dtype == entry.dtype else {
                    throw WeightsError.badEntry(path: path, entry: entry.tag, reason: "split parts disagree on shape or dtype")
                }
                entries[i].chunks += entry.chunks
            } else {
                index[entry.tag] = entries.count
                entries.append(entry)
            }
        }
        for e in entries where !e.isMapTensor {
            guard let size = Self.elementSize[e.dtype] else { continue }
            var n = 1
            for d in e.dims {
                let (p, o) = n.multipliedReportingOverflow(by: d)
                guard !o else { throw WeightsError.badEntry(path: path, entry: e.tag, reason: "shape \(e.dims) overflows") }
                n = p
            }
            guard n * size == e.byteCount else {
                throw WeightsError.badEntry(path: path, entry: e.tag, reason: "shape \(e.dims) of \(e.dtype) needs \(n * size) bytes, the file holds \(e.byteCount) (truncated or damaged)")
            }
        }
    }

    /// The tag of an entry whose bytes are cut short, if at least the tag survived.
    static func peekTag(_ raw: UnsafeRawBufferPointer, from position: Int, end: Int) -> String? {
        var r = WireReader(raw: raw, position: position, end: end, path: "")
        guard let _ = try? r.varint(), let key = try? r.varint(), key == 0x0A, let n = try? r.length() else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: raw[r.position..<(r.position + n)]), as: UTF8.self)
    }

    /// One `Checkpoint.Value`: tag = 1, tensor = 2, maptensor = 3.
    private func parseValue(_ v: inout WireReader, raw: UnsafeRawBufferPointer) throws -> Entry {
        var tag: String?
        var tensor: (dtype: String, dims: [Int], content: Range<Int>)?
        var isMap = false
        while v.position < v.end {
            let (field, wire) = try v.fieldKey()
            switch (field, wire) {
            case (1, 2):
                let n = try v.length()
                tag = String(decoding: UnsafeRawBufferPointer(rebasing: raw[v.position..<(v.position + n)]), as: UTF8.self)
                v.context = "'\(tag ?? "")'"
                v.position += n
            case (2, 2):
                let n = try v.length()
                var t = v.sub(length: n)
                v.position += n
                tensor = try parseTensor(&t, raw: raw)
            case (3, 2):
                let n = try v.length()
                v.position += n
                isMap = true
            default:
                try v.skip(wire: wire, field: field)
            }
        }
        guard let tag else { throw WeightsError.corrupt(path: path, entry: v.context, offset: v.start, reason: "an entry without a tag") }
        if isMap { return Entry(tag: tag, dtype: "MapTensor", dims: [], chunks: [], isMapTensor: true) }
        guard let tensor else { throw WeightsError.badEntry(path: path, entry: tag, reason: "holds no tensor") }
        return Entry(tag: tag, dtype: tensor.dtype, dims: tensor.dims, chunks: [tensor.content])
    }

    /// One `TensorProto`: dims = 1 (varint, or packed), tensor_type = 2, tensor_content = 3.
    private func parseTensor(_ t: inout WireReader, raw: UnsafeRawBufferPointer) throws -> (String, [Int], Range<Int>) {
        var dims: [Int] = []
        var dtype: String?
        var content: Range<Int>?
        while t.position < t.end {
            let (field, wire) = try t.fieldKey()
            switch (field, wire) {
            case (1, 0): dims.append(try t.dim())
            case (1, 2):
                let n = try t.length()
                var packed = t.sub(length: n)
                t.position += n
                while packed.position < packed.end { dims.append(try packed.dim()) }
            case (2, 2):
                let n = try t.length()
                dtype = String(decoding: UnsafeRawBufferPointer(rebasing: raw[t.position..<(t.position + n)]), as: UTF8.self)
                t.position += n
            case (3, 2):
                let n = try t.length()
                content = t.position..<(t.position + n)
                t.position += n
            default:
                try t.skip(wire: wire, field: field)
            }
        }
        guard let dtype else { throw WeightsError.badEntry(path: path, entry: t.context, reason: "tensor without tensor_type") }
        // MindSpore reads dims == [0] as a scalar.
        if dims == [0] { dims = [] }
        return (dtype, dims, content ?? t.position..<t.position)
    }

    // MARK: Decoding

    /// The entry's values as a Float32 tensor (Float16, BFloat16 and Float64 are converted).
    public func floatTensor(_ e: Entry) throws -> Tensor {
        guard Self.floatTypes.contains(e.dtype) else {
            if Self.elementSize[e.dtype] != nil {
                throw WeightsError.badEntry(path: path, entry: e.tag, reason: "is \(e.dtype), not a floating-point tensor")
            }
            throw WeightsError.unsupportedDType(path: path, entry: e.tag, dtype: e.dtype)
        }
        let t = Tensor(uninitializedShape: e.dims)
        var dst = t.storage.pointer
        data.withUnsafeBytes { raw in
            for c in e.chunks {
                let src = raw.baseAddress! + c.lowerBound
                switch e.dtype {
                case "Float32":
                    let n = c.count / 4
                    for i in 0..<n { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                    dst += n
                case "Float64":
                    let n = c.count / 8
                    for i in 0..<n { dst[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
                    dst += n
                case "Float16":
                    let n = c.count / 2
                    for i in 0..<n { dst[i] = halfToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
                    dst += n
                default: // BFloat16: the upper half of a Float32.
                    let n = c.count / 2
                    for i in 0..<n { dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
                    dst += n
                }
            }
        }
        return t
    }

    /// The entry's values as integers (Int*, UInt*, Bool).
    public func integers(_ e: Entry) throws -> [Int] {
        guard let size = Self.elementSize[e.dtype], !Self.floatTypes.contains(e.dtype) else {
            throw WeightsError.unsupportedDType(path: path, entry: e.tag, dtype: e.dtype)
        }
        var out: [Int] = []
        out.reserveCapacity(e.byteCount / size)
        data.withUnsafeBytes { raw in
            for c in e.chunks {
                let src = raw.baseAddress! + c.lowerBound
                for i in 0..<(c.count / size) {
                    switch e.dtype {
                    case "Int64": out.append(Int(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))))
                    case "UInt64": out.append(Int(truncatingIfNeeded: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                    case "Int32": out.append(Int(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))))
                    case "UInt32": out.append(Int(UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))))
                    case "Int16": out.append(Int(Int16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))))
                    case "UInt16": out.append(Int(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
                    case "Int8": out.append(Int(src.loadUnaligned(fromByteOffset: i, as: Int8.self)))
                    default: out.append(Int(src.loadUnaligned(fromByteOffset: i, as: UInt8.self)))
                    }
                }
            }
        }
        return out
    }
}

/// A bounds-checked cursor over protobuf wire bytes; every failure is a `WeightsError.corrupt`
/// naming the file, the entry being read (`context`) and the byte offset.
struct WireReader {
    let raw: UnsafeRawBufferPointer
    var position: Int
    let end: Int
    let path: String
    var context = ""
    var start: Int

    init(raw: UnsafeRawBufferPointer, position: Int, end: Int, path: String, context: String = "") {
        self.raw = raw; self.position = position; self.end = end; self.path = path; self.context = context; start = position
    }

    func fail(_ reason: String) -> WeightsError {
        WeightsError.corrupt(path: path, entry: context, offset: position, reason: reason)
    }

    /// A reader over the next `length` bytes (the caller advances past them).
    func sub(length: Int) -> WireReader {
        WireReader(raw: raw, position: position, end: position + length, path: path, context: context)
    }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw fail("the file ends inside a number (truncated)") }
            let b = raw[position]
            position += 1
            guard shift < 64 else { throw fail("a number longer than 10 bytes") }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
    }

    mutating func fieldKey() throws -> (field: UInt64, wire: UInt64) {
        let k = try varint()
        return (k >> 3, k & 7)
    }

    /// A length prefix that must fit in what is left.
    mutating func length() throws -> Int {
        let at = position
        let n = try varint()
        guard n <= UInt64(end - position) else {
            position = at
            throw fail("a field of \(n) bytes runs past the end of its enclosing data (\(end - at) bytes left; truncated?)")
        }
        return Int(n)
    }

    mutating func dim() throws -> Int {
        let d = Int64(bitPattern: try varint())
        guard d >= 0, d < 1 << 40 else { throw fail("dimension \(d) is negative or absurd") }
        return Int(d)
    }

    mutating func skip(wire: UInt64, field: UInt64) throws {
        switch wire {
        case 0: _ = try varint()
        case 1, 5:
            let n = wire == 1 ? 8 : 4
            guard position + n <= end else { throw fail("the file ends inside field \(field) (truncated)") }
            position += n
        case 2: position += try length()
        default: throw fail("field \(field) has invalid wire type \(wire)")
        }
    }
}

/// CRC-32 (the zlib polynomial, reflected 0xEDB88320), as MindSpore's `crc_num` trailer holds it.
func crc32(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
    var crc = ~initial
    for b in bytes {
        crc = crc32Table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8)
    }
    return ~crc
}

let crc32Table: [UInt32] = (0..<256).map { i -> UInt32 in
    var c = UInt32(i)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}
