import Foundation
import Tensor

/// Errors reading or writing safetensors files; each names the file and, where it applies, the tensor.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case truncatedHeader(path: String, size: Int)
    case headerPastEnd(path: String, headerLength: UInt64, fileSize: Int)
    case badHeader(path: String, reason: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case badOffsets(path: String, tensor: String, begin: Int, end: Int, dataSize: Int)
    case lengthMismatch(path: String, tensor: String, shape: [Int], dtype: String, bytes: Int)
    case overlap(path: String, first: String, second: String)
    case notFloat(path: String, tensor: String, dtype: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(p, r): return "\(p): cannot read: \(r)"
        case let .truncatedHeader(p, s): return "\(p): \(s) bytes is too short for a safetensors header"
        case let .headerPastEnd(p, n, s): return "\(p): header length \(n) runs past the end of the \(s)-byte file"
        case let .badHeader(p, r): return "\(p): malformed safetensors header: \(r)"
        case let .unknownDType(p, t, d): return "\(p): tensor '\(t)' has unsupported dtype '\(d)'"
        case let .badOffsets(p, t, b, e, s): return "\(p): tensor '\(t)' has data offsets [\(b), \(e)] outside the \(s)-byte data section"
        case let .lengthMismatch(p, t, sh, d, b): return "\(p): tensor '\(t)' of shape \(sh) and dtype \(d) cannot occupy \(b) bytes"
        case let .overlap(p, a, b): return "\(p): the data of tensors '\(a)' and '\(b)' overlap"
        case let .notFloat(p, t, d): return "\(p): tensor '\(t)' is \(d), not a floating-point tensor"
        case let .writeFailed(p, r): return "\(p): cannot write: \(r)"
        }
    }
}

/// A safetensors file read into memory: F32, F16 and BF16 tensors become Float32 tensors; I64, I32,
/// I16, I8, U8 and BOOL tensors are kept as integers.
public struct SafeTensorsFile {
    public var tensors: [String: Tensor] = [:]
    public var integers: [String: (shape: [Int], values: [Int])] = [:]
    public var metadata: [String: String] = [:]
    /// Tensor names in file-offset order.
    public var names: [String] = []

    static let elementSize: [String: Int] = ["F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                                             "I8": 1, "U8": 1, "BOOL": 1]

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SafeTensorsError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission or I/O error" : "no such file")
        }
        try self.init(data: data, path: path)
    }

    public init(data: Data, path: String = "<memory>") throws {
        guard data.count >= 8 else { throw SafeTensorsError.truncatedHeader(path: path, size: data.count) }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw SafeTensorsError.headerPastEnd(path: path, headerLength: headerLength, fileSize: data.count)
        }
        let hl = Int(headerLength)
        let headerData = data.subdata(in: data.startIndex + 8 ..< data.startIndex + 8 + hl)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: headerData) } catch {
            throw SafeTensorsError.badHeader(path: path, reason: "not JSON (\(error.localizedDescription))")
        }
        guard let header = json as? [String: Any] else { throw SafeTensorsError.badHeader(path: path, reason: "not a JSON object") }
        let dataStart = 8 + hl, dataSize = data.count - dataStart
        var spans: [(begin: Int, end: Int, name: String)] = []
        var entries: [(String, String, [Int], Int, Int)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw SafeTensorsError.badHeader(path: path, reason: "__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw SafeTensorsError.badHeader(path: path, reason: "__metadata__ value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let e = value as? [String: Any], let dtype = e["dtype"] as? String,
                  let shapeAny = e["shape"] as? [Any], let offsAny = e["data_offsets"] as? [Any], offsAny.count == 2 else {
                throw SafeTensorsError.badHeader(path: path, reason: "entry '\(name)' needs dtype, shape and two data_offsets")
            }
            guard let shape = Self.integers(shapeAny), shape.allSatisfy({ $0 >= 0 }),
                  let offs = Self.integers(offsAny) else {
                throw SafeTensorsError.badHeader(path: path, reason: "entry '\(name)' has a non-integer or negative shape or offset")
            }
            guard let size = Self.elementSize[dtype] else { throw SafeTensorsError.unknownDType(path: path, tensor: name, dtype: dtype) }
            let (begin, end) = (offs[0], offs[1])
            guard begin >= 0, end >= begin, end <= dataSize else {
                throw SafeTensorsError.badOffsets(path: path, tensor: name, begin: begin, end: end, dataSize: dataSize)
            }
            var elements = 1
            for d in shape {
                let (r, o) = elements.multipliedReportingOverflow(by: d)
                guard !o else { throw SafeTensorsError.lengthMismatch(path: path, tensor: name, shape: shape, dtype: dtype, bytes: end - begin) }
                elements = r
            }
            let (bytes, o) = elements.multipliedReportingOverflow(by: size)
            guard !o, bytes == end - begin else {
                throw SafeTensorsError.lengthMismatch(path: path, tensor: name, shape: shape, dtype: dtype, bytes: end - begin)
            }
            spans.append((begin, end, name))
            entries.append((name, dtype, shape, begin, elements))
        }
        spans.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        for i in 1..<max(spans.count, 1) where spans[i].begin < spans[i - 1].end && spans[i].end > spans[i].begin {
            throw SafeTensorsError.overlap(path: path, first: spans[i - 1].name, second: spans[i].name)
        }
        names = spans.map { $0.name }
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let base = raw.baseAddress! + dataStart
            for (name, dtype, shape, begin, n) in entries {
                let src = base + begin
                switch dtype {
                case "F32", "F64", "F16", "BF16":
                    let t = Tensor(uninitializedShape: shape)
                    let dst = t.storage.pointer
                    switch dtype {
                    case "F32": for i in 0..<n { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                    case "F64": for i in 0..<n { dst[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
                    case "F16": for i in 0..<n { dst[i] = halfToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
                    default: for i in 0..<n { dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
                    }
                    tensors[name] = t
                default:
                    var values = [Int](repeating: 0, count: n)
                    for i in 0..<n {
                        switch dtype {
                        case "I64": values[i] = Int(Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                        case "I32": values[i] = Int(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                        case "I16": values[i] = Int(Int16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
                        case "I8": values[i] = Int(src.loadUnaligned(fromByteOffset: i, as: Int8.self))
                        default: values[i] = Int(src.loadUnaligned(fromByteOffset: i, as: UInt8.self))
                        }
                    }
                    integers[name] = (shape, values)
                }
            }
        }
    }

    static func integers(_ xs: [Any]) -> [Int]? {
        var out: [Int] = []
        for x in xs {
            guard let n = x as? NSNumber, n.doubleValue == n.doubleValue.rounded(), abs(n.doubleValue) < 9e15 else { return nil }
            out.append(n.intValue)
        }
        return out
    }

    /// A floating-point tensor by name.
    public func tensor(_ name: String, path: String = "<file>") throws -> Tensor {
        if let t = tensors[name] { return t }
        throw SafeTensorsError.badHeader(path: path, reason: "no tensor named '\(name)'")
    }

    /// Writes F32 tensors (sorted by name) and string metadata, atomically: to a temporary file in
    /// the same folder, then renamed over `path`.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        let names = tensors.keys.sorted()
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for n in names {
            let t = tensors[n]!
            header[n] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]] as [String: Any]
            offset += 4 * t.count
        }
        var headerData: Data
        do { headerData = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]) } catch {
            throw SafeTensorsError.writeFailed(path: path, reason: "header: \(error.localizedDescription)")
        }
        while (8 + headerData.count) % 8 != 0 { headerData.append(0x20) }
        var out = Data(capacity: 8 + headerData.count + offset)
        withUnsafeBytes(of: UInt64(headerData.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(headerData)
        for n in names {
            let t = tensors[n]!
            t.withUnsafeBuffer { b in out.append(UnsafeBufferPointer(start: b.baseAddress, count: b.count)) }
        }
        try writeAtomically(out, to: path)
    }
}

/// Writes `data` to a temporary sibling of `path` and renames it into place, so a reader (or a crash)
/// never sees a half-written file.
public func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    do {
        try data.write(to: tmp)
        if rename(tmp.path, url.path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw SafeTensorsError.writeFailed(path: path, reason: reason)
        }
    } catch let e as SafeTensorsError {
        throw e
    } catch {
        try? FileManager.default.removeItem(at: tmp)
        throw SafeTensorsError.writeFailed(path: path, reason: error.localizedDescription)
    }
}

/// IEEE half → float.
@inline(__always)
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1F), mant = UInt32(h & 0x3FF)
    if exp == 0 {
        if mant == 0 { return Float(bitPattern: sign) }
        let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
}
