#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import Tensor
import TestSupport
@testable import DataPipeline

/// Issue 12 rows 5, 6 and 13: evaluation never substitutes an image, non-regular files are refused
/// without blocking, and file names are bytes.
final class HostileFileTests: XCTestCase {
    var folder: DataTempFolder!

    override func setUpWithError() throws {
        folder = try DataTempFolder("hostile")
        try makeImageFolder(folder, split: "val", classes: ["a", "b"], perClass: 3, size: (20, 20))
    }

    override func tearDown() { folder.cleanup() }

    /// A file whose name is not UTF-8 (Latin-1 `é`, 0xE9).
    func writeNonUTF8(_ classFolder: String) throws -> [UInt8] {
        let name: [UInt8] = Array("caf".utf8) + [0xE9] + Array(".png".utf8)
        let path = RawPath(folder.path + "/val/" + classFolder).appending(name)
        let bytes = try ImageEncoder.png(syntheticImage(width: 20, height: 20, seed: 99))
        let fd = path.withCString { open($0!, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return name
    }

    func evaluationBatches(_ set: ImageFolder, workers: Int = 2, batchSize: Int = 4) throws -> (labels: [Int], paths: [String], summary: EpochSummary) {
        let transform = try EvalTransform(imageSize: 16, cropPct: 1, interpolation: .bilinear,
                                          mean: [0, 0, 0], std: [255, 255, 255])
        let loader = try DataLoader(dataset: set, transform: transform,
                                    options: .evaluation(batchSize: batchSize, numParallelWorkers: workers))
        let epoch = loader.epoch(0)
        var labels: [Int] = [], paths: [String] = []
        while let b = try epoch.next() {
            XCTAssertEqual(b.images.shape[0], b.count)
            labels += b.labels; paths += b.paths
        }
        return (labels, paths, epoch.summary)
    }

    /// Row 13: a valid image whose name is not UTF-8 is found and read.
    func testNonUTF8FileNameIsRead() throws {
        let name = try writeNonUTF8("a")
        let set = try ImageFolder(root: folder.path, split: "val")
        XCTAssertEqual(set.count, 7)
        let index = try XCTUnwrap((0..<set.count).first { set.rawPath(at: $0).bytes.suffix(name.count) == name[...] })
        XCTAssertTrue(set.path(at: index).hasSuffix("caf\\xE9.png"), set.path(at: index))
        let image = try set.image(at: index, decoder: ImageDecoder())
        XCTAssertEqual(image.width, 20)
        let r = try evaluationBatches(set)
        XCTAssertEqual(r.labels.count, 7)
        XCTAssertEqual(r.summary.skippedCount, 0)
        // predict's file collection finds it too.
        let found = try ImageFiles.collect([folder.path + "/val"])
        XCTAssertEqual(found.count, 7)
        XCTAssertTrue(found.contains { $0.bytes.suffix(name.count) == name[...] })
    }

    /// Rows 5 and 6: a truncated PNG, a FIFO and a link to /dev/zero among the val images are left
    /// out and listed; the metric covers the 6 readable images and nothing blocks.
    func testEvaluationLeavesOutUnreadableFilesAndNeverBlocks() throws {
        let good = try ImageEncoder.png(syntheticImage(width: 20, height: 20, seed: 5))
        try folder.write("val/a/truncated.png", Array(good.prefix(good.count / 2)))
        XCTAssertEqual(mkfifo(folder.path + "/val/b/fifo.png", 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: folder.path + "/val/b/zero.jpg", withDestinationPath: "/dev/zero")
        let set = try ImageFolder(root: folder.path, split: "val")
        XCTAssertEqual(set.count, 9)
        for workers in [0, 2] {
            let r = try evaluationBatches(set, workers: workers)
            XCTAssertEqual(r.labels.count, 6, "workers \(workers)")
            XCTAssertEqual(r.labels, [0, 0, 0, 1, 1, 1])
            XCTAssertTrue(r.summary.droppedFailures)
            XCTAssertEqual(r.summary.samples, 6)
            XCTAssertEqual(r.summary.skippedPaths.map { ($0 as NSString).lastPathComponent }, ["truncated.png", "fifo.png", "zero.jpg"], "sorted by full path: class a, then b")
            XCTAssertTrue(r.summary.skipped.contains { $0.path.hasSuffix("fifo.png") && $0.reason.contains("FIFO") }, "\(r.summary.skipped)")
            XCTAssertTrue(r.summary.skipped.contains { $0.path.hasSuffix("zero.jpg") && $0.reason.contains("character device") }, "\(r.summary.skipped)")
        }
        // A batch whose every sample fails is not delivered at all.
        let r = try evaluationBatches(set, workers: 1, batchSize: 1)
        XCTAssertEqual(r.labels.count, 6)
    }

    /// Training keeps replacing (and says so in the summary).
    func testTrainingStillReplacesFailures() throws {
        XCTAssertEqual(mkfifo(folder.path + "/val/a/fifo.png", 0o644), 0)
        let set = try ImageFolder(root: folder.path, split: "val")
        let transform = try EvalTransform(imageSize: 16, cropPct: 1, interpolation: .bilinear, mean: [0, 0, 0], std: [255, 255, 255])
        let loader = try DataLoader(dataset: set, transform: transform,
                                    options: LoaderOptions(batchSize: 7, shuffle: false, dropRemainder: false, numParallelWorkers: 2))
        let epoch = loader.epoch(0)
        var n = 0
        while let b = try epoch.next() { n += b.count }
        XCTAssertEqual(n, 7, "the FIFO is replaced by another sample")
        XCTAssertFalse(epoch.summary.droppedFailures)
        XCTAssertEqual(epoch.summary.skippedPaths.map { ($0 as NSString).lastPathComponent }, ["fifo.png"])
    }

    /// Row 6 for a single file: reading a FIFO or a device is refused at once.
    func testReadFileRefusesNonRegularFiles() throws {
        let fifo = folder.path + "/x.png"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        for path in [fifo, "/dev/zero", folder.path] {
            XCTAssertThrowsError(try ImageDecoder.readFile(path)) { e in
                guard case let .unreadable(p, reason) = e as? DataError else { return XCTFail("\(e)") }
                XCTAssertEqual(p, path)
                XCTAssertTrue(reason.contains("not a regular file"), reason)
            }
        }
        XCTAssertThrowsError(try ImageFiles.collect([folder.path + "/missing.png"]))
    }

    func testDisplayNamesEscapeInvalidBytes() {
        XCTAssertEqual(RawPath.displayName(Array("plain/é.png".utf8)), "plain/é.png")
        XCTAssertEqual(RawPath.displayName([0x61, 0xFF, 0x62, 0xC3]), "a\\xFFb\\xC3")
        XCTAssertEqual(RawPath("/a/").appending([0x62]).bytes, Array("/a/b".utf8))
    }
}
