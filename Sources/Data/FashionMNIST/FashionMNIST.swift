import Dispatch
import Foundation
import Tensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Converts Fashion-MNIST's IDX files (Debian's `dataset-fashion-mnist` package) into an ImageNet-layout
/// folder of grayscale PNGs: `<out>/train/<class>/NNNNN.png` (60,000) and `<out>/val/<class>/NNNNN.png`
/// (10,000, from the t10k files), where NNNNN is the index in the original file. Class folders are
/// prefixed by the label so that their sorted order gives label = index.
public enum FashionMNIST {
    /// Where Debian installs the data set.
    public static let defaultSource = "/usr/share/datasets/fashion-mnist"

    /// Class folder names, index = Fashion-MNIST label.
    public static let classFolders = ["0_tshirt_top", "1_trouser", "2_pullover", "3_dress", "4_coat",
                                      "5_sandal", "6_shirt", "7_sneaker", "8_bag", "9_ankle_boot"]

    /// One split of the data set in memory.
    public struct Split: Sendable {
        /// `count` images of `rows x columns` bytes, row-major.
        public var images: [UInt8]
        public var labels: [UInt8]
        public var count: Int
        public var rows: Int
        public var columns: Int
    }

    /// What a conversion did.
    public struct Summary: Sendable {
        public var output: String
        public var trainImages: Int
        public var valImages: Int
        public var seconds: Double
    }

    /// Reads and validates one split from `<source>/<prefix>-images-idx3-ubyte[.gz]` and
    /// `<source>/<prefix>-labels-idx1-ubyte[.gz]` (`prefix` is `train` or `t10k`).
    public static func readSplit(source: String, prefix: String) throws(DataError) -> Split {
        let imagesPath = try locate(source, "\(prefix)-images-idx3-ubyte")
        let labelsPath = try locate(source, "\(prefix)-labels-idx1-ubyte")
        let images = try IDXArray(parsing: try load(imagesPath), path: imagesPath)
        let labels = try IDXArray(parsing: try load(labelsPath), path: labelsPath)
        guard images.dimensions.count == 3 else {
            throw .malformedIDX(path: imagesPath, reason: "expected 3 dimensions [count, rows, columns], found \(images.dimensions)")
        }
        guard labels.dimensions.count == 1 else {
            throw .malformedIDX(path: labelsPath, reason: "expected 1 dimension [count], found \(labels.dimensions)")
        }
        let count = images.dimensions[0], rows = images.dimensions[1], columns = images.dimensions[2]
        guard rows > 0 && columns > 0 else { throw .malformedIDX(path: imagesPath, reason: "empty image size \(rows)x\(columns)") }
        guard labels.dimensions[0] == count else {
            throw .malformedIDX(path: labelsPath, reason: "\(labels.dimensions[0]) labels for \(count) images in \(imagesPath)")
        }
        if let bad = labels.values.firstIndex(where: { Int($0) >= classFolders.count }) {
            throw .malformedIDX(path: labelsPath, reason: "label \(labels.values[bad]) at index \(bad) is not in 0...9")
        }
        return Split(images: images.values, labels: labels.values, count: count, rows: rows, columns: columns)
    }

    /// Converts the data set at `source` into the folder `output`.
    ///
    /// All four input files are read and validated before anything is written. The folder is built as a
    /// hidden temporary sibling and renamed into place at the end, so a failure leaves nothing behind.
    /// - Parameters:
    ///   - overwrite: replace an existing `output` (otherwise `DataError.outputExists`).
    ///   - threads: PNG encoding/writing threads.
    ///   - progress: called with short status lines.
    ///   - onWritten: called from writer threads with the number of PNGs just written and the total to
    ///     write (for a progress display).
    public static func convert(source: String = defaultSource, output: String, overwrite: Bool = false,
                               threads: Int = Parallel.threads,
                               progress: ((String) -> Void)? = nil,
                               onWritten: (@Sendable (_ images: Int, _ total: Int) -> Void)? = nil) throws(DataError) -> Summary {
        let start = Date()
        let out = output.count > 1 && output.hasSuffix("/") ? String(output.dropLast()) : output
        let fm = FileManager.default
        if fm.fileExists(atPath: out) && !overwrite { throw .outputExists(path: out) }
        let train = try readSplit(source: source, prefix: "train")
        let val = try readSplit(source: source, prefix: "t10k")
        progress?("read \(train.count) training and \(val.count) validation images from \(source)")
        let total = train.count + val.count
        var written: (@Sendable (Int) -> Void)? = nil
        if let onWritten { written = { n in onWritten(n, total) } }
        let url = URL(fileURLWithPath: out)
        let parent = url.deletingLastPathComponent().path
        do {
            try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            throw .writeFailed(path: parent, reason: error.localizedDescription)
        }
        let pid = getpid()
        let temp = parent + "/." + url.lastPathComponent + ".partial-\(pid)"
        try? fm.removeItem(atPath: temp)
        do throws(DataError) {
            for split in ["train", "val"] {
                for name in classFolders {
                    try makeDirectory(temp + "/" + split + "/" + name)
                }
            }
            try writeSplit(train, to: temp + "/train", threads: threads, onWritten: written)
            progress?("wrote \(train.count) training PNGs")
            try writeSplit(val, to: temp + "/val", threads: threads, onWritten: written)
            progress?("wrote \(val.count) validation PNGs")
            if fm.fileExists(atPath: out) {
                let old = parent + "/." + url.lastPathComponent + ".old-\(pid)"
                guard rename(out, old) == 0 else { throw DataError.writeFailed(path: out, reason: errnoText()) }
                guard rename(temp, out) == 0 else {
                    let reason = errnoText()
                    _ = rename(old, out)
                    throw DataError.writeFailed(path: out, reason: reason)
                }
                try? fm.removeItem(atPath: old)
            } else {
                guard rename(temp, out) == 0 else { throw DataError.writeFailed(path: out, reason: errnoText()) }
            }
        } catch {
            try? fm.removeItem(atPath: temp)
            throw error
        }
        return Summary(output: out, trainImages: train.count, valImages: val.count,
                       seconds: Date().timeIntervalSince(start))
    }

    /// Writes one split's PNGs into `<dir>/<class>/NNNNN.png` in parallel.
    static func writeSplit(_ split: Split, to dir: String, threads: Int, onWritten: (@Sendable (Int) -> Void)? = nil) throws(DataError) {
        let failure = FirstError()
        let chunks = max(1, min(threads, split.count)) * 4
        let pixelsPerImage = split.rows * split.columns
        let digits = max(5, String(split.count - 1).count)
        split.images.withUnsafeBufferPointer { buffer in
            let images = UncheckedPointer(buffer)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let lo = split.count * chunk / chunks, hi = split.count * (chunk + 1) / chunks
                for i in lo..<hi {
                    if failure.isSet { return }
                    let start = images.buffer.baseAddress! + i * pixelsPerImage
                    let pixels = Array(UnsafeBufferPointer(start: start, count: pixelsPerImage))
                    let name = String(i).leftPadded(to: digits)
                    let path = dir + "/" + classFolders[Int(split.labels[i])] + "/" + name + ".png"
                    do throws(DataError) {
                        let png = try ImageEncoder.png(pixels: pixels, width: split.columns, height: split.rows, channels: 1)
                        try writeFile(path, png)
                    } catch {
                        failure.set(error)
                        return
                    }
                }
                onWritten?(hi - lo)
            }
        }
        if let error = failure.error { throw error }
    }

    private static func locate(_ source: String, _ name: String) throws(DataError) -> String {
        let base = source.hasSuffix("/") ? source + name : source + "/" + name
        for candidate in [base + ".gz", base] where FileManager.default.fileExists(atPath: candidate) {
            return candidate
        }
        throw .unreadable(path: base + ".gz", reason: "no such file (is the dataset-fashion-mnist package installed?)")
    }

    private static func load(_ path: String) throws(DataError) -> [UInt8] {
        let bytes = try ImageDecoder.readFile(path)
        return path.hasSuffix(".gz") ? try Gzip.decompress(bytes, path: path) : bytes
    }

    private static func makeDirectory(_ path: String) throws(DataError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .writeFailed(path: path, reason: error.localizedDescription)
        }
    }
}

/// Writes `bytes` to a new file at `path`.
func writeFile(_ path: String, _ bytes: [UInt8]) throws(DataError) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw .writeFailed(path: path, reason: errnoText()) }
    var done = 0
    var failure: String?
    bytes.withUnsafeBufferPointer { buffer in
        while done < buffer.count {
            let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                failure = errnoText()
                return
            }
            done += n
        }
    }
    if close(fd) != 0 && failure == nil { failure = errnoText() }
    if let failure { throw .writeFailed(path: path, reason: failure) }
}

/// The first error reported by any of several threads.
final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: DataError?
    var error: DataError? { lock.lock(); defer { lock.unlock() }; return stored }
    var isSet: Bool { error != nil }
    func set(_ e: DataError) {
        lock.lock()
        if stored == nil { stored = e }
        lock.unlock()
    }
}

/// A read-only buffer handed to worker threads that only read it.
struct UncheckedPointer<T>: @unchecked Sendable {
    let buffer: UnsafeBufferPointer<T>
    init(_ buffer: UnsafeBufferPointer<T>) { self.buffer = buffer }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
