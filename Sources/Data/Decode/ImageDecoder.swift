#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads and decodes JPEG and PNG images to `RGBImage`.
///
/// The format is recognised from the first bytes, not from the file name. A decoder keeps its
/// libjpeg-turbo handles between calls, so it is cheap to reuse but must not be shared between
/// threads: create one per thread. No byte sequence makes it crash; every failure is a `DataError`
/// naming the path.
public final class ImageDecoder {
    /// Images with more pixels than this are refused before any pixel memory is allocated
    /// (decompression-bomb guard; PIL's limit is the same).
    public static let defaultMaxPixels = 178_956_970
    /// Files larger than this are refused before being read.
    public static let maxFileBytes = 1 << 30

    /// The pixel limit of this decoder.
    public let maxPixels: Int
    private let jpeg = TurboJPEG()

    public init(maxPixels: Int = ImageDecoder.defaultMaxPixels) {
        self.maxPixels = maxPixels
    }

    /// The encoded formats the decoder understands.
    public enum Format: Sendable {
        case jpeg, png

        /// Recognises the format from the signature bytes (JPEG `FF D8 FF`, PNG `89 50 4E 47 0D 0A 1A 0A`).
        public init?<C: Collection>(signature bytes: C) where C.Element == UInt8 {
            let head = Array(bytes.prefix(8))
            if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF {
                self = .jpeg
            } else if head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] {
                self = .png
            } else {
                return nil
            }
        }
    }

    /// Decodes an encoded image held in memory. `path` only labels errors.
    public func decode(_ bytes: [UInt8], path: String = "<memory>") throws(DataError) -> RGBImage {
        guard let format = Format(signature: bytes) else { throw .unsupportedFormat(path: path) }
        do {
            return try bytes.withUnsafeBufferPointer { buffer throws(DataError) in
                switch format {
                case .jpeg: return try jpeg.decode(buffer, path: path, maxPixels: maxPixels)
                case .png: return try LibPNG.decode(buffer, path: path, maxPixels: maxPixels)
                }
            }
        }
    }

    /// Reads and decodes the image file at `path`.
    public func decode(contentsOf path: String) throws(DataError) -> RGBImage {
        try decode(contentsOf: RawPath(path))
    }

    /// Reads and decodes the image file at `path` (bytes, not necessarily UTF-8).
    public func decode(contentsOf path: RawPath) throws(DataError) -> RGBImage {
        try decode(try Self.readFile(path), path: path.description)
    }

    /// Reads a whole file (refusing files over `maxFileBytes`).
    public static func readFile(_ path: String) throws(DataError) -> [UInt8] {
        try readFile(RawPath(path))
    }

    /// Reads a whole regular file (refusing files over `maxFileBytes`). Anything else — a FIFO, a
    /// device such as `/dev/zero`, a folder, directly or through a link — is refused without
    /// blocking: the file is opened non-blocking and checked before a byte is read.
    public static func readFile(_ rawPath: RawPath) throws(DataError) -> [UInt8] {
        let path = rawPath.description
        let fd = rawPath.withCString { p in p.map { open($0, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) } ?? -2 }
        guard fd != -2 else { throw .unreadable(path: path, reason: "the path contains a NUL byte") }
        guard fd >= 0 else { throw .unreadable(path: path, reason: errnoText()) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(path: path, reason: errnoText()) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw .unreadable(path: path, reason: "not a regular file (\(fileKind(info.st_mode)))")
        }
        let size = Int(info.st_size)
        guard size <= maxFileBytes else { throw .unreadable(path: path, reason: "file is larger than \(maxFileBytes) bytes") }
        var failure: String?
        let bytes = [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buffer, count in
            var done = 0
            guard let base = buffer.baseAddress else { count = 0; return }
            while done < size {
                let n = read(fd, base + done, size - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errnoText()
                    break
                }
                if n == 0 { break }  // the file shrank while being read
                done += n
            }
            count = done
        }
        if let failure { throw .unreadable(path: path, reason: failure) }
        return bytes
    }
}

/// What kind of file `mode` describes, for messages.
func fileKind(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFIFO: return "a FIFO"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFDIR: return "a folder"
    case S_IFSOCK: return "a socket"
    default: return "not a regular file"
    }
}

/// The text of the current `errno`.
func errnoText() -> String {
    String(cString: strerror(errno))
}

/// Encoders for tests, benchmarks and dataset conversion.
public enum ImageEncoder {
    /// Encodes an RGB image as a baseline JPEG (4:2:0) through libjpeg-turbo.
    public static func jpeg(_ image: RGBImage, quality: Int = 90) throws(DataError) -> [UInt8] {
        try jpeg(pixels: image.pixels, width: image.width, height: image.height, channels: 3, quality: quality)
    }

    /// Encodes interleaved pixels as JPEG: `channels` 1 (grayscale JPEG), 3 (RGB) or 4 (CMYK, written as
    /// an Adobe YCCK JPEG; values are stored as given, i.e. in the inverted Adobe convention).
    public static func jpeg(pixels: [UInt8], width: Int, height: Int, channels: Int, quality: Int = 90) throws(DataError) -> [UInt8] {
        let format: TurboJPEG.InputFormat
        switch channels {
        case 1: format = .gray
        case 3: format = .rgb
        case 4: format = .cmyk
        default: throw .writeFailed(path: "<jpeg>", reason: "unsupported channel count \(channels)")
        }
        let codec = TurboJPEG()
        return try pixels.withUnsafeBufferPointer { buffer throws(DataError) in
            try codec.encode(buffer, width: width, height: height, format: format, quality: quality)
        }
    }

    /// Encodes an RGB image as PNG through libpng.
    public static func png(_ image: RGBImage) throws(DataError) -> [UInt8] {
        try png(pixels: image.pixels, width: image.width, height: image.height, channels: 3)
    }

    /// Encodes interleaved 8-bit pixels as PNG: `channels` 1 (gray), 2 (gray+alpha), 3 (RGB), 4 (RGBA).
    public static func png(pixels: [UInt8], width: Int, height: Int, channels: Int) throws(DataError) -> [UInt8] {
        try pixels.withUnsafeBufferPointer { buffer throws(DataError) in
            try LibPNG.encode(buffer, width: width, height: height, channels: channels)
        }
    }
}
