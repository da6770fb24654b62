import Foundation
import Models

/// `<ckpt_save_dir>/metrics.csv`: one line per finished epoch. Every change rewrites the whole (small)
/// file through a temporary sibling and a rename, so a kill never leaves half a line. A fresh run
/// starts the file anew; a resumed run first drops the lines of epochs its checkpoint does not cover
/// (a kill between this file's write and the checkpoint's would otherwise repeat an epoch's line).
public final class MetricsFile: TrainingObserver {
    public static let header = "epoch,train_loss,lr,val_top1,val_top5,val_loss,train_images_per_s,epoch_seconds,skipped_images,val_skipped_images"
    public let path: String

    public init(directory: String) {
        path = (directory as NSString).appendingPathComponent("metrics.csv")
    }

    /// Removes the file (a fresh run).
    public func reset() throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw CheckpointError.writeFailed(path: path, reason: "cannot remove the previous metrics file: \(error.localizedDescription)")
        }
    }

    /// Keeps only the lines of epochs 1...`epochsDone` (a resume), rewriting the file when it changes.
    public func keepEpochs(through epochsDone: Int) throws {
        let lines = try dataLines()
        let kept = lines.filter { line in (Int(line.prefix { $0 != "," }) ?? Int.max) <= epochsDone }
        if kept.count != lines.count { try write(kept) }
    }

    /// A run starting at epoch 0 starts the file anew; a resumed one keeps the epochs it continues from.
    public func runStarted(_ info: RunStartInfo) throws {
        if info.startEpoch == 0 { try reset() } else { try keepEpochs(through: info.startEpoch) }
    }

    public func epochFinished(_ r: EpochRecord) throws {
        try write(try dataLines() + [Self.line(r)])
    }

    static func line(_ r: EpochRecord) -> String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "" }
        return "\(r.epoch),\(String(format: "%.6f", r.trainLoss)),\(String(format: "%.8g", r.lr)),\(f(r.top1)),\(f(r.top5)),\(f(r.valLoss))," +
            "\(String(format: "%.2f", r.trainImagesPerSecond)),\(String(format: "%.2f", r.seconds)),\(r.skippedImages)," +
            (r.valSkippedImages.map(String.init) ?? "")
    }

    /// The lines after the header (none when the file does not exist).
    func dataLines() throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw CheckpointError.writeFailed(path: path, reason: "cannot read the metrics file to append to it")
        }
        return text.split(separator: "\n").dropFirst().map(String.init)
    }

    func write(_ lines: [String]) throws {
        let text = ([Self.header] + lines).joined(separator: "\n") + "\n"
        do { try writeAtomically(Data(text.utf8), to: path) } catch {
            throw CheckpointError.writeFailed(path: path, reason: "\(error)")
        }
    }
}
