import ArgumentParser
import Foundation
import DataPipeline
import Trainer
import DistributedMPI
import ZooBenchmark

/// `zoo data …` — dataset preparation.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Prepare data sets.",
        subcommands: [FashionMNISTCommand.self])
}

/// `zoo data fashion-mnist --out DIR [--source DIR] [--overwrite]`.
struct FashionMNISTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fashion-mnist",
        abstract: "Convert Fashion-MNIST's IDX files into an ImageNet-layout folder of PNGs.",
        discussion: """
            Writes OUT/train/<label>_<name>/NNNNN.png (60,000 images) and OUT/val/… (10,000), \
            class folders 0_tshirt_top … 9_ankle_boot. Nothing is left behind on failure.
            """)

    @Option(name: .long, help: "Folder with train-images-idx3-ubyte.gz etc. (Debian's dataset-fashion-mnist).")
    var source: String = FashionMNIST.defaultSource

    @Option(name: .long, help: "Output folder (must not exist unless --overwrite).")
    var out: String

    @Flag(name: .long, help: "Replace an existing output folder.")
    var overwrite = false

    func run() throws {
        let progress = ProgressLine(phase: "fashion-mnist", unit: "images")
        let written = WrittenCount()
        let summary = try FashionMNIST.convert(source: source, output: out, overwrite: overwrite,
                                               progress: { line in progress.line(line) },
                                               onWritten: { n, total in
                                                   let done = written.add(n)
                                                   progress.update(step: done, of: total, items: done)
                                               })
        progress.finish()
        print("wrote \(summary.trainImages) train + \(summary.valImages) val images to \(summary.output) "
              + "in \(String(format: "%.1f", summary.seconds)) s")
    }
}

/// Images written so far, counted from writer threads.
final class WrittenCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ n: Int) -> Int { lock.lock(); defer { lock.unlock() }; count += n; return count }
}
