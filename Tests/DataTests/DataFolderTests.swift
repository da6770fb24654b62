import Foundation
import TestSupport
import XCTest
@testable import DataPipeline
import Trainer

final class DataFolderTests: XCTestCase {
    func testScansSortedClassesAndFiles() throws {
        let root = try DataTempFolder("folder")
        defer { root.cleanup() }
        let png = try ImageEncoder.png(syntheticImage(width: 4, height: 4))
        // Byte-wise order: "B" < "a" < "b"; files likewise.
        for (cls, files) in [("b", ["z.png", "a.PNG"]), ("a", ["x.jpeg", "X.JPG", "y.png"]), ("B", ["m.jpg"])] {
            for f in files { try root.write("train/\(cls)/\(f)", png) }
        }
        try root.write("train/a/notes.txt", Array("hi".utf8))
        try root.write("train/a/.hidden.png", png)
        try root.write("train/README.md", Array("x".utf8))
        try root.makeDirectory("train/.cache")

        let folder = try ImageFolder(root: root.path, split: "train")
        XCTAssertEqual(folder.classes, ["B", "a", "b"])
        XCTAssertEqual(folder.count, 6)
        XCTAssertEqual(folder.samples.map(\.label), [0, 1, 1, 1, 2, 2])
        XCTAssertEqual(folder.samples.map { URL(fileURLWithPath: $0.path).lastPathComponent },
                       ["m.jpg", "X.JPG", "x.jpeg", "y.png", "a.PNG", "z.png"])
        XCTAssertEqual(folder.path(at: 0), root.path + "/train/B/m.jpg")
        XCTAssertEqual(folder.classCounts, [1, 3, 2])
        // The image decodes through the dataset protocol.
        XCTAssertEqual(try folder.image(at: 3, decoder: ImageDecoder()).width, 4)
    }

    func testBadLayoutsFailNamingThePath() throws {
        let root = try DataTempFolder("bad")
        defer { root.cleanup() }
        let png = try ImageEncoder.png(syntheticImage(width: 4, height: 4))

        XCTAssertThrowsError(try ImageFolder(root: root.path, split: "train")) { error in
            XCTAssertEqual(error as? DataError, .missingSplit(path: root.path + "/train"))
            XCTAssertTrue("\(error)".contains(root.path + "/train"))
        }
        try root.write("train", Array("not a folder".utf8))
        XCTAssertThrowsError(try ImageFolder(root: root.path, split: "train")) { error in
            XCTAssertEqual(error as? DataError, .notADirectory(path: root.path + "/train"))
        }
        try FileManager.default.removeItem(atPath: root.path + "/train")

        try root.makeDirectory("val")
        try root.write("val/loose.png", png)
        XCTAssertThrowsError(try ImageFolder(root: root.path, split: "val")) { error in
            XCTAssertEqual(error as? DataError, .noClasses(path: root.path + "/val"))
        }

        try root.makeDirectory("train/a")
        try root.makeDirectory("train/b")
        try root.write("train/a/readme.txt", Array("x".utf8))
        XCTAssertThrowsError(try ImageFolder(root: root.path, split: "train")) { error in
            XCTAssertEqual(error as? DataError, .noImages(path: root.path + "/train"))
        }
        try root.write("train/a/1.png", png)
        XCTAssertThrowsError(try ImageFolder(root: root.path, split: "train")) { error in
            XCTAssertEqual(error as? DataError, .emptyClass(path: root.path + "/train/b"))
        }
        try root.write("train/b/1.png", png)
        let train = try ImageFolder(root: root.path, split: "train")
        XCTAssertEqual(train.classes, ["a", "b"])

        try root.write("val/a/1.png", png)
        try root.write("val/c/1.png", png)
        XCTAssertThrowsError(try ImageFolder(root: root.path, split: "val", expectedClasses: train.classes)) { error in
            XCTAssertEqual(error as? DataError, .classMismatch(path: root.path + "/val", missing: ["b"], unexpected: ["c"]))
        }
    }
}
