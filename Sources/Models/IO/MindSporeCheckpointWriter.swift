import Foundation
import Protos
import SwiftProtobuf
import Tensor

/// Writes MindSpore `.ckpt` files through the generated `MindSporeCheckpoint` message
/// (Sources/Protos), so the bytes follow the schema independently of the hand-written reader.
public enum MindSporeCheckpointWriter {
    /// One entry to write: Float32 values stored as `dtype` ("Float32" or "Float16").
    public struct Entry {
        public var tag: String
        public var tensor: Tensor
        public var dtype: String
        public init(tag: String, tensor: Tensor, dtype: String = "Float32") { self.tag = tag; self.tensor = tensor; self.dtype = dtype }
    }

    /// The serialized checkpoint; with `crcTrailer`, MindSpore's `crc_num` trailer (CRC-32 of the
    /// entries, as 10 big-endian bytes) follows.
    public static func serialize(_ entries: [Entry], crcTrailer: Bool = false) throws -> Data {
        var checkpoint = MindSporeCheckpoint()
        for e in entries {
            var t = MindSporeTensorProto()
            t.dims = e.tensor.shape.map(Int64.init)
            t.tensorType = e.dtype
            t.tensorContent = try content(e)
            var v = MindSporeCheckpoint.Value()
            v.tag = e.tag
            v.tensor = t
            checkpoint.value.append(v)
        }
        var data: Data = try checkpoint.serializedBytes()
        if crcTrailer {
            let crc = data.withUnsafeBytes { crc32($0) }
            data.append(contentsOf: MindSporeCheckpointFile.crcMarker)
            data.append(contentsOf: [UInt8](repeating: 0, count: 6))
            data.append(contentsOf: [UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)])
        }
        return data
    }

    /// Writes atomically (temporary file, then rename).
    public static func write(_ entries: [Entry], to path: String, crcTrailer: Bool = false) throws {
        try writeAtomically(try serialize(entries, crcTrailer: crcTrailer), to: path)
    }

    static func content(_ e: Entry) throws -> Data {
        switch e.dtype {
        case "Float32":
            return e.tensor.withUnsafeBuffer { b in
                var d = Data(capacity: 4 * b.count)
                for x in b { withUnsafeBytes(of: x.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
                return d
            }
        case "Float16":
            return e.tensor.withUnsafeBuffer { b in
                var d = Data(capacity: 2 * b.count)
                for x in b { withUnsafeBytes(of: floatToHalf(x).littleEndian) { d.append(contentsOf: $0) } }
                return d
            }
        default:
            throw WeightsError.writeFailed(path: e.tag, reason: "cannot write dtype \(e.dtype)")
        }
    }
}

/// float → IEEE half, rounding to nearest even; overflow gives ±inf.
@inline(__always)
func floatToHalf(_ f: Float) -> UInt16 {
    let bits = f.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exp = Int((bits >> 23) & 0xFF)
    var mant = bits & 0x7F_FFFF
    if exp == 0xFF { return sign | 0x7C00 | (mant != 0 ? 0x200 : 0) }
    let e = exp - 127 + 15
    if e >= 31 { return sign | 0x7C00 }
    if e <= 0 {
        // Subnormal half (or zero): shift the full significand into place, rounding to nearest even.
        if e < -10 { return sign }
        mant |= 0x80_0000
        let shift = UInt32(14 - e)
        let half = mant >> shift
        let rest = mant & ((1 << shift) - 1), midpoint = UInt32(1) << (shift - 1)
        let rounded = half + ((rest > midpoint || (rest == midpoint && half & 1 == 1)) ? 1 : 0)
        return sign | UInt16(rounded)
    }
    var h = UInt32(e) << 10 | (mant >> 13)
    let rest = mant & 0x1FFF
    if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) { h += 1 }  // may carry into the exponent: still right
    return sign | UInt16(h)
}
