import Foundation
import XCTest
import TestSupport
@testable import Trainer

/// TensorBoard event files: CRC-32C, TFRecord framing, and scalars written then read back with
/// every checksum verified; a file written by TensorBoard's own Python writer reads the same way.
final class TensorBoardTests: XCTestCase {
    func testCRC32CKnownValues() {
        // The standard check value of CRC-32C, and RFC 3720's 32 zero bytes / 32 0xFF bytes.
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        // Masking: rotate right 15, add 0xa282ead8.
        let c = CRC32C.checksum(Array("123456789".utf8))
        XCTAssertEqual(CRC32C.masked(Array("123456789".utf8)), ((c >> 15) | (c << 17)) &+ 0xA282_EAD8)
    }

    func testFrameLayout() throws {
        let payload = Data("hello".utf8)
        let framed = TFRecord.frame(payload)
        XCTAssertEqual(framed.count, 8 + 4 + 5 + 4)
        XCTAssertEqual(Array(framed.prefix(8)), [5, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(Array(framed[12..<17]), Array(payload))
        XCTAssertEqual(try TFRecord.records(framed), [payload])
    }

    func testScalarsRoundTripWithVerifiedChecksums() throws {
        let folder = try DataTempFolder("tb")
        defer { folder.cleanup() }
        let writer = try TensorBoardWriter(directory: folder.path + "/tb")
        try writer.scalars([("train/loss", 2.5), ("train/lr", 0.001)], step: 1)
        try writer.scalars([("train/loss", 1.25), ("train/images_per_s", 812.5)], step: 2)
        try writer.scalars([("val/top1", 66.75)], step: 2)
        try writer.flush()
        XCTAssertTrue((writer.path as NSString).lastPathComponent.hasPrefix("events.out.tfevents."))
        let (version, scalars) = try TensorBoardReader.read(writer.path)
        XCTAssertEqual(version, "brain.Event:2")
        XCTAssertEqual(scalars, [
            .init(tag: "train/loss", step: 1, value: 2.5), .init(tag: "train/lr", step: 1, value: 0.001),
            .init(tag: "train/loss", step: 2, value: 1.25), .init(tag: "train/images_per_s", step: 2, value: 812.5),
            .init(tag: "val/top1", step: 2, value: 66.75),
        ])
        // A flipped byte in the last payload is caught by its checksum.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: writer.path)))
        bytes[bytes.count - 6] ^= 0x40
        XCTAssertThrowsError(try TFRecord.records(Data(bytes))) { e in
            guard case TFRecordError.badChecksum(_, _, "payload") = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try TFRecord.records(Data(bytes.dropLast(3)))) { e in
            guard case TFRecordError.truncated = e else { return XCTFail("\(e)") }
        }
    }

    /// Tests/Fixtures/tensorboard/events.out.tfevents.python was written by TensorBoard's own
    /// `EventFileWriter` (see Tests/Fixtures/tensorboard/README.md): scalars `a` = 0.5 × step and
    /// `b` = 10 + step for steps 0...2.
    func testReadsAnEventFileWrittenByTensorBoard() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tensorboard/events.out.tfevents.python").path
        let (version, scalars) = try TensorBoardReader.read(path)
        XCTAssertEqual(version, "brain.Event:2")
        var expected: [TensorBoardReader.Scalar] = []
        for s in 0...2 {
            expected.append(.init(tag: "a", step: s, value: 0.5 * Float(s)))
            expected.append(.init(tag: "b", step: s, value: 10 + Float(s)))
        }
        XCTAssertEqual(scalars, expected)
    }
}
