import CZlib

/// In-memory gzip / zlib decompression through zlib.
public enum Gzip {
    /// Decompresses a gzip (or zlib) stream, including concatenated gzip members. A truncated or
    /// corrupt stream is an error; trailing zero padding is ignored, other trailing bytes are an error.
    /// `path` only labels errors.
    public static func decompress(_ input: [UInt8], path: String) throws(DataError) -> [UInt8] {
        guard !input.isEmpty else { throw .corruptArchive(path: path, reason: "empty file") }
        // The gzip trailer holds the uncompressed size modulo 2³²: a good first capacity.
        var capacity = max(input.count * 4, 1 << 16)
        if input.count >= 18, input[0] == 0x1F, input[1] == 0x8B {
            let n = input.count
            let hint = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
            if hint > 0 && hint < (1 << 31) { capacity = hint + 1 }
        }
        var output = [UInt8](repeating: 0, count: capacity)
        var produced = 0
        var stream = z_stream()
        // windowBits 15 + 32: accept gzip and zlib headers.
        guard inflateInit2_(&stream, 15 + 32, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .corruptArchive(path: path, reason: "cannot initialise zlib")
        }
        defer { inflateEnd(&stream) }
        var consumed = 0
        var failure: String?
        input.withUnsafeBufferPointer { inBuffer in
            let inBase = UnsafeMutablePointer(mutating: inBuffer.baseAddress!)
            while true {
                if produced == output.count { output.append(contentsOf: [UInt8](repeating: 0, count: max(output.count, 1 << 16))) }
                let status: Int32 = output.withUnsafeMutableBufferPointer { outBuffer in
                    stream.next_in = inBase + consumed
                    stream.avail_in = UInt32(min(inBuffer.count - consumed, Int(UInt32.max)))
                    stream.next_out = outBuffer.baseAddress! + produced
                    stream.avail_out = UInt32(min(outBuffer.count - produced, Int(UInt32.max)))
                    let inBefore = stream.avail_in, outBefore = stream.avail_out
                    let s = inflate(&stream, Z_NO_FLUSH)
                    consumed += Int(inBefore - stream.avail_in)
                    produced += Int(outBefore - stream.avail_out)
                    return s
                }
                if status == Z_STREAM_END {
                    // Another gzip member follows?
                    let rest = input[consumed...]
                    if rest.isEmpty || rest.allSatisfy({ $0 == 0 }) { return }
                    if rest.count >= 2, rest[rest.startIndex] == 0x1F, rest[rest.startIndex + 1] == 0x8B {
                        inflateReset(&stream)
                        continue
                    }
                    failure = "\(rest.count) unexpected bytes after the end of the compressed stream"
                    return
                }
                if status == Z_OK { continue }
                if status == Z_BUF_ERROR {
                    if stream.avail_out == 0 { continue }  // needs more output space
                    failure = "the compressed stream is truncated"
                    return
                }
                if let msg = stream.msg {
                    failure = String(cString: msg)
                } else {
                    failure = status == Z_DATA_ERROR ? "invalid compressed data" : "zlib error \(status)"
                }
                return
            }
        }
        if let failure { throw .corruptArchive(path: path, reason: failure) }
        output.removeSubrange(produced...)
        return output
    }
}
