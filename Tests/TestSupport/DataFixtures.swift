import Foundation
import Tensor
import XCTest
import DataPipeline

/// A fresh temporary folder, removed by `cleanup()`.
public struct DataTempFolder {
    public let path: String

    public init(_ label: String = "data") throws {
        path = NSTemporaryDirectory() + "vitzoo-\(label)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func cleanup() { try? FileManager.default.removeItem(atPath: path) }

    public func makeDirectory(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: path + "/" + relative, withIntermediateDirectories: true)
    }

    public func write(_ relative: String, _ bytes: [UInt8]) throws {
        let url = URL(fileURLWithPath: path + "/" + relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
    }
}

/// Smooth gradients plus seeded noise: a stand-in for a natural image.
public func syntheticImage(width: Int, height: Int, seed: UInt64 = 1) -> RGBImage {
    var rng = RandomGenerator(seed: seed)
    return RGBImage(width: width, height: height) { p in
        for y in 0..<height {
            for x in 0..<width {
                let i = (y * width + x) * 3
                let n = Int(rng.next() % 32)
                p[i] = UInt8(min(255, x * 255 / max(width - 1, 1) / 2 + n + 40))
                p[i + 1] = UInt8(min(255, y * 255 / max(height - 1, 1) / 2 + n + 20))
                p[i + 2] = UInt8(min(255, ((x + y) * 7) % 200 + n / 2))
            }
        }
    }
}

/// A `[C, H, W]` or `[B, C, H, W]` tensor's bytes, for bit-exact comparisons.
public func tensorBits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

/// A small ImageNet-layout folder of JPEG and PNG files: `classes` folders × `perClass` images.
public func makeImageFolder(_ folder: DataTempFolder, split: String = "train", classes: [String] = ["cat", "dog", "eel"],
                     perClass: Int = 4, size: (Int, Int) = (40, 30)) throws {
    var seed: UInt64 = 10
    for cls in classes {
        for i in 0..<perClass {
            seed += 1
            let image = syntheticImage(width: size.0 + i, height: size.1, seed: seed)
            if i % 2 == 0 {
                try folder.write("\(split)/\(cls)/img\(i).jpg", try ImageEncoder.jpeg(image, quality: 92))
            } else {
                try folder.write("\(split)/\(cls)/img\(i).png", try ImageEncoder.png(image))
            }
        }
    }
}

/// A thread-safe counter for callbacks from worker threads.
public final class DataCallCounter: @unchecked Sendable {
    public init() {}
    private let lock = NSLock()
    private var count = 0
    public func increment() { lock.lock(); count += 1; lock.unlock() }
    public var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
