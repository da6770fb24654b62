import CZlib
import Foundation
import TestSupport
import XCTest
@testable import DataPipeline
import Trainer

final class DataFashionMNISTTests: XCTestCase {
    func gzipFile(_ path: String, _ bytes: [UInt8]) throws {
        guard let file = gzopen(path, "wb") else { throw DataError.writeFailed(path: path, reason: "gzopen") }
        let written = bytes.withUnsafeBytes { gzwrite(file, $0.baseAddress, UInt32($0.count)) }
        gzclose(file)
        XCTAssertEqual(Int(written), bytes.count)
    }

    /// A synthetic IDX data set: `train` 12 and `t10k` 5 images of 3x4 pixels.
    func makeSource(_ dir: DataTempFolder) throws -> (train: [UInt8], trainLabels: [UInt8]) {
        let rows = 3, cols = 4
        var train: [UInt8] = []
        var labels: [UInt8] = []
        for i in 0..<12 {
            train += (0..<(rows * cols)).map { UInt8((i * 20 + $0 * 7) % 256) }
            labels.append(UInt8(i % 10))
        }
        try gzipFile(dir.path + "/train-images-idx3-ubyte.gz", IDXArray(dimensions: [12, rows, cols], values: train).encoded)
        try gzipFile(dir.path + "/train-labels-idx1-ubyte.gz", IDXArray(dimensions: [12], values: labels).encoded)
        try gzipFile(dir.path + "/t10k-images-idx3-ubyte.gz",
                     IDXArray(dimensions: [5, rows, cols], values: [UInt8](repeating: 200, count: 5 * rows * cols)).encoded)
        try gzipFile(dir.path + "/t10k-labels-idx1-ubyte.gz", IDXArray(dimensions: [5], values: [9, 8, 7, 6, 5]).encoded)
        return (train, labels)
    }

    func testConvertsIDXToImageFolder() throws {
        let source = try DataTempFolder("idx")
        let outRoot = try DataTempFolder("out")
        defer { source.cleanup(); outRoot.cleanup() }
        let (train, labels) = try makeSource(source)
        let out = outRoot.path + "/fmnist"
        let summary = try FashionMNIST.convert(source: source.path, output: out, threads: 3)
        XCTAssertEqual(summary.trainImages, 12)
        XCTAssertEqual(summary.valImages, 5)

        let folder = try ImageFolder(root: out, split: "train")
        XCTAssertEqual(folder.classes, FashionMNIST.classFolders)
        XCTAssertEqual(folder.count, 12)
        let decoder = ImageDecoder()
        for k in 0..<folder.count {
            let path = folder.path(at: k)
            let index = Int(URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent)!
            XCTAssertEqual(folder.label(at: k), Int(labels[index]), "label = class folder index")
            let image = try decoder.decode(contentsOf: path)
            XCTAssertEqual(image.width, 4)
            XCTAssertEqual(image.height, 3)
            XCTAssertEqual(image.pixels, train[(index * 12)..<((index + 1) * 12)].flatMap { [$0, $0, $0] })
        }
        let val = try? ImageFolder(root: out, split: "val", expectedClasses: folder.classes)
        XCTAssertNil(val, "val has only 5 classes: the empty ones are reported")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out + "/val/9_ankle_boot"), ["00000.png"])

        XCTAssertThrowsError(try FashionMNIST.convert(source: source.path, output: out)) { error in
            XCTAssertEqual(error as? DataError, .outputExists(path: out))
        }
        XCTAssertNoThrow(try FashionMNIST.convert(source: source.path, output: out, overwrite: true))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outRoot.path), ["fmnist"], "no temporary siblings left")
    }

    func testMalformedInputLeavesNothingBehind() throws {
        let good = IDXArray(dimensions: [2, 2, 2], values: [1, 2, 3, 4, 5, 6, 7, 8]).encoded
        var badMagic = good
        badMagic[2] = 0x0D
        let cases: [(String, [UInt8]?, String)] = [
            ("bad magic", badMagic, "not unsigned byte"),
            ("short data", Array(good.dropLast()), "announces 8 bytes"),
            ("long data", good + [0], "announces 8 bytes"),
            ("truncated gzip", nil, "truncated"),
        ]
        for (name, imageBytes, message) in cases {
            let source = try DataTempFolder("bad-idx")
            let outRoot = try DataTempFolder("bad-out")
            defer { source.cleanup(); outRoot.cleanup() }
            _ = try makeSource(source)
            let target = source.path + "/train-images-idx3-ubyte.gz"
            if let imageBytes {
                try gzipFile(target, imageBytes)
            } else {
                let data = try Data(contentsOf: URL(fileURLWithPath: target))
                try data.prefix(data.count - 10).write(to: URL(fileURLWithPath: target))
            }
            XCTAssertThrowsError(try FashionMNIST.convert(source: source.path, output: outRoot.path + "/fm"), name) { error in
                XCTAssertTrue("\(error)".contains(target), "\(name): \(error)")
                XCTAssertTrue("\(error)".contains(message), "\(name): \(error)")
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outRoot.path), [], name)
        }
        // Label count differs from the image count.
        let source = try DataTempFolder("bad-count")
        let outRoot = try DataTempFolder("bad-count-out")
        defer { source.cleanup(); outRoot.cleanup() }
        _ = try makeSource(source)
        try gzipFile(source.path + "/t10k-labels-idx1-ubyte.gz", IDXArray(dimensions: [4], values: [1, 2, 3, 4]).encoded)
        XCTAssertThrowsError(try FashionMNIST.convert(source: source.path, output: outRoot.path + "/fm")) { error in
            XCTAssertTrue("\(error)".contains("4 labels for 5 images"), "\(error)")
        }
        XCTAssertThrowsError(try FashionMNIST.convert(source: outRoot.path + "/missing", output: outRoot.path + "/fm")) { error in
            guard case DataError.unreadable = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: outRoot.path), [])
    }

    func testGzipRejectsGarbage() {
        XCTAssertThrowsError(try Gzip.decompress([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3], path: "x.gz"))
        XCTAssertThrowsError(try Gzip.decompress(Array("plain text".utf8), path: "y.gz"))
        XCTAssertThrowsError(try Gzip.decompress([], path: "z.gz"))
    }
}
