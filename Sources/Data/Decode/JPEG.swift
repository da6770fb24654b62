import CTurboJPEG

/// libjpeg-turbo (TurboJPEG API) decoding and encoding. A codec owns its TurboJPEG handles, so it is
/// not thread-safe: give each thread its own (the loader does).
final class TurboJPEG {
    private var decompressor: tjhandle?
    private var compressor: tjhandle?

    init() {}

    deinit {
        if let d = decompressor { tjDestroy(d) }
        if let c = compressor { tjDestroy(c) }
    }

    /// Warnings that libjpeg emits for files that still decode completely and correctly.
    /// Anything else (premature end of file or data segment, bad Huffman code, resync) means
    /// the pixels are partly made up, so the image counts as corrupt.
    private static let benignWarnings = ["extraneous bytes", "jfif", "icc", "adobe", "progression", "sequential"]

    /// Decodes a JPEG to RGB. Grayscale is replicated to three channels; CMYK/YCCK (Adobe, inverted)
    /// are converted with `R = C'·K'/255` on the stored (inverted) values, as OpenCV does.
    func decode(_ bytes: UnsafeBufferPointer<UInt8>, path: String, maxPixels: Int) throws(DataError) -> RGBImage {
        guard let base = bytes.baseAddress, bytes.count > 2 else {
            throw .corruptImage(path: path, reason: "empty JPEG stream")
        }
        if decompressor == nil { decompressor = tjInitDecompress() }
        guard let handle = decompressor else {
            throw .corruptImage(path: path, reason: "cannot initialise libjpeg-turbo")
        }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        if tjDecompressHeader3(handle, base, UInt(bytes.count), &width, &height, &subsampling, &colorspace) != 0 {
            throw .corruptImage(path: path, reason: Self.message(handle))
        }
        guard width > 0, height > 0 else { throw .corruptImage(path: path, reason: "zero image size") }
        let w = Int(width), h = Int(height)
        guard w * h <= maxPixels else { throw .imageTooLarge(path: path, width: w, height: h) }

        let isCMYK = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let flags = TJFLAG_LIMITSCANS
        if !isCMYK {
            var failure: String?
            let image = RGBImage(width: w, height: h) { out in
                if tjDecompress2(handle, base, UInt(bytes.count), out, width, 0, height,
                                 Int32(TJPF_RGB.rawValue), flags) != 0 {
                    failure = Self.fatalMessage(handle)
                }
            }
            if let failure { throw .corruptImage(path: path, reason: failure) }
            return image
        }
        // CMYK: decode the four channels, then convert.
        let cmyk = UnsafeMutablePointer<UInt8>.allocate(capacity: w * h * 4)
        defer { cmyk.deallocate() }
        if tjDecompress2(handle, base, UInt(bytes.count), cmyk, width, 0, height, Int32(TJPF_CMYK.rawValue), flags) != 0,
           let failure = Self.fatalMessage(handle) {
            throw .corruptImage(path: path, reason: failure)
        }
        return RGBImage(width: w, height: h) { out in
            for i in 0..<(w * h) {
                let k = UInt32(cmyk[4 * i + 3])
                out[3 * i] = UInt8((UInt32(cmyk[4 * i]) * k + 127) / 255)
                out[3 * i + 1] = UInt8((UInt32(cmyk[4 * i + 1]) * k + 127) / 255)
                out[3 * i + 2] = UInt8((UInt32(cmyk[4 * i + 2]) * k + 127) / 255)
            }
        }
    }

    /// Pixel layouts the encoder accepts.
    enum InputFormat { case rgb, gray, cmyk }

    /// Encodes interleaved pixels (3, 1 or 4 bytes per pixel) to JPEG with 4:2:0 chroma subsampling
    /// (grayscale input: a one-component JPEG; CMYK input: an Adobe YCCK JPEG).
    func encode(_ pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int, format: InputFormat,
                quality: Int) throws(DataError) -> [UInt8] {
        let channels: Int
        let pixelFormat: TJPF
        let subsampling: TJSAMP
        switch format {
        case .rgb: channels = 3; pixelFormat = TJPF_RGB; subsampling = TJSAMP_420
        case .gray: channels = 1; pixelFormat = TJPF_GRAY; subsampling = TJSAMP_GRAY
        case .cmyk: channels = 4; pixelFormat = TJPF_CMYK; subsampling = TJSAMP_420
        }
        guard width > 0, height > 0, pixels.count >= width * height * channels, let base = pixels.baseAddress else {
            throw .writeFailed(path: "<jpeg>", reason: "\(pixels.count) bytes do not hold a \(width)x\(height)x\(channels) image")
        }
        if compressor == nil { compressor = tjInitCompress() }
        guard let handle = compressor else { throw .writeFailed(path: "<jpeg>", reason: "cannot initialise libjpeg-turbo") }
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let status = tjCompress2(handle, base, Int32(width), 0, Int32(height), Int32(pixelFormat.rawValue),
                                 &output, &size, Int32(subsampling.rawValue), Int32(min(max(quality, 1), 100)), 0)
        defer { if let output { tjFree(output) } }
        guard status == 0, let output else { throw .writeFailed(path: "<jpeg>", reason: Self.message(handle)) }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }

    private static func message(_ handle: tjhandle) -> String {
        guard let cString = tjGetErrorStr2(handle) else { return "unknown libjpeg-turbo error" }
        return String(cString: cString)
    }

    /// nil when the last failure was only a benign warning (the image decoded completely).
    private static func fatalMessage(_ handle: tjhandle) -> String? {
        let text = message(handle)
        if tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue) {
            let lower = text.lowercased()
            if benignWarnings.contains(where: { lower.contains($0) }) { return nil }
        }
        return text
    }
}
