/// An unsigned-byte IDX array (the MNIST file format): a big-endian header `00 00 08 <ndims>`,
/// `ndims` big-endian UInt32 sizes, then the bytes in row-major order.
public struct IDXArray: Sendable, Equatable {
    public var dimensions: [Int]
    public var values: [UInt8]

    /// Parses an IDX file's bytes. The data length must match the header exactly.
    /// `path` only labels errors.
    public init(parsing bytes: [UInt8], path: String) throws(DataError) {
        guard bytes.count >= 4 else { throw .malformedIDX(path: path, reason: "only \(bytes.count) bytes, too short for a header") }
        let magic = bytes[0..<4].map { String($0, radix: 16) }.joined(separator: " ")
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw .malformedIDX(path: path, reason: "bad magic number (\(magic)); expected 00 00 08 <ndims>")
        }
        guard bytes[2] == 0x08 else {
            throw .malformedIDX(path: path, reason: "element type 0x\(String(bytes[2], radix: 16)) is not unsigned byte (0x08)")
        }
        let ndims = Int(bytes[3])
        guard ndims >= 1 && ndims <= 4 else { throw .malformedIDX(path: path, reason: "\(ndims) dimensions (expected 1 to 4)") }
        let headerSize = 4 + 4 * ndims
        guard bytes.count >= headerSize else {
            throw .malformedIDX(path: path, reason: "header of \(ndims) dimensions needs \(headerSize) bytes, file has \(bytes.count)")
        }
        var dims: [Int] = []
        var total = 1
        for d in 0..<ndims {
            let o = 4 + 4 * d
            let size = Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
            dims.append(size)
            total = total.multipliedReportingOverflow(by: size).overflow ? Int.max : total * size
        }
        guard bytes.count - headerSize == total else {
            throw .malformedIDX(path: path, reason: "header \(dims) announces \(total) bytes of data, file has \(bytes.count - headerSize)")
        }
        dimensions = dims
        values = Array(bytes[headerSize...])
    }

    public init(dimensions: [Int], values: [UInt8]) {
        precondition(dimensions.reduce(1, *) == values.count, "IDX dimensions \(dimensions) do not match \(values.count) values")
        self.dimensions = dimensions
        self.values = values
    }

    /// The file bytes of this array.
    public var encoded: [UInt8] {
        var out: [UInt8] = [0, 0, 0x08, UInt8(dimensions.count)]
        for d in dimensions {
            out += [UInt8(truncatingIfNeeded: d >> 24), UInt8(truncatingIfNeeded: d >> 16),
                    UInt8(truncatingIfNeeded: d >> 8), UInt8(truncatingIfNeeded: d)]
        }
        return out + values
    }
}
