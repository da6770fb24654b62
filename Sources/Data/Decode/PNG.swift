import CPNG

/// libpng decoding and encoding through libpng's simplified API (which catches libpng's internal
/// longjmp errors itself, so no error can unwind through Swift frames).
enum LibPNG {
    /// Decodes a PNG to 8-bit RGB: grayscale and palette images are expanded, 16-bit samples are scaled
    /// (treated as sRGB-encoded, as PIL and OpenCV do), and an alpha channel is dropped without
    /// compositing (PIL `convert("RGB")`, OpenCV `IMREAD_COLOR`).
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, path: String, maxPixels: Int) throws(DataError) -> RGBImage {
        guard let base = bytes.baseAddress, bytes.count > 8 else {
            throw .corruptImage(path: path, reason: "empty PNG stream")
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_memory(&image, base, bytes.count) != 0 else {
            let reason = message(&image)
            png_image_free(&image)
            throw .corruptImage(path: path, reason: reason)
        }
        let w = Int(image.width), h = Int(image.height)
        guard w > 0, h > 0 else {
            png_image_free(&image)
            throw .corruptImage(path: path, reason: "zero image size")
        }
        guard w * h <= maxPixels else {
            png_image_free(&image)
            throw .imageTooLarge(path: path, width: w, height: h)
        }
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        let hasAlpha = image.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
        if !hasAlpha {
            image.format = UInt32(PNG_FORMAT_FLAG_COLOR)
            var failure: String?
            let result = RGBImage(width: w, height: h) { out in
                if png_image_finish_read(&image, nil, out, 0, nil) == 0 { failure = message(&image) }
            }
            png_image_free(&image)
            if let failure { throw .corruptImage(path: path, reason: failure) }
            return result
        }
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
        let rgba = UnsafeMutablePointer<UInt8>.allocate(capacity: w * h * 4)
        defer { rgba.deallocate() }
        let ok = png_image_finish_read(&image, nil, rgba, 0, nil) != 0
        let reason = ok ? "" : message(&image)
        png_image_free(&image)
        guard ok else { throw .corruptImage(path: path, reason: reason) }
        return RGBImage(width: w, height: h) { out in
            for i in 0..<(w * h) {
                out[3 * i] = rgba[4 * i]
                out[3 * i + 1] = rgba[4 * i + 1]
                out[3 * i + 2] = rgba[4 * i + 2]
            }
        }
    }

    /// Encodes 8-bit pixels with 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels to PNG.
    static func encode(_ pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int, channels: Int) throws(DataError) -> [UInt8] {
        let format: UInt32
        switch channels {
        case 1: format = 0
        case 2: format = UInt32(PNG_FORMAT_FLAG_ALPHA)
        case 3: format = UInt32(PNG_FORMAT_FLAG_COLOR)
        case 4: format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
        default: throw .writeFailed(path: "<png>", reason: "unsupported channel count \(channels)")
        }
        guard width > 0, height > 0, pixels.count >= width * height * channels, let base = pixels.baseAddress else {
            throw .writeFailed(path: "<png>", reason: "\(pixels.count) bytes do not hold a \(width)x\(height)x\(channels) image")
        }
        var capacity = height * (width * channels + 1) + height * 8 + 1024
        for _ in 0..<2 {
            var image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            image.width = UInt32(width)
            image.height = UInt32(height)
            image.format = format
            var out = [UInt8](repeating: 0, count: capacity)
            var size = capacity
            let ok = out.withUnsafeMutableBytes { buffer in
                png_image_write_to_memory(&image, buffer.baseAddress, &size, 0, base, 0, nil)
            }
            if ok != 0 {
                out.removeSubrange(size...)
                return out
            }
            let reason = message(&image)
            png_image_free(&image)
            if size > capacity { capacity = size; continue }  // buffer too small: retry at the reported size
            throw .writeFailed(path: "<png>", reason: reason)
        }
        throw .writeFailed(path: "<png>", reason: "encoder output size kept growing")
    }

    private static func message(_ image: inout png_image) -> String {
        let text = withUnsafeBytes(of: &image.message) { raw -> String in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
        return text.isEmpty ? "libpng error" : text
    }
}
