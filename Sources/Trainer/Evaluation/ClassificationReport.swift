import Foundation
import Models
import Tensor

/// Per-class accuracy and the confusion matrix of an evaluation, accumulated batch by batch.
/// A reference type so that an evaluation loop's observer can add to it.
public final class ConfusionAccumulator: @unchecked Sendable {
    public let classCount: Int
    /// `matrix[actual][predicted]`: images of class `actual` whose top-1 prediction was `predicted`.
    public private(set) var matrix: [[Int]]
    /// Per actual class: images whose label is among the five highest logits.
    public private(set) var top5Correct: [Int]
    /// Per actual class: summed cross-entropy.
    public private(set) var lossSum: [Double]

    public init(classCount: Int) {
        self.classCount = classCount
        matrix = Array(repeating: Array(repeating: 0, count: classCount), count: classCount)
        top5Correct = Array(repeating: 0, count: classCount)
        lossSum = Array(repeating: 0, count: classCount)
    }

    /// Adds a batch: `logits: [B, K]` (K ≥ classCount; predictions beyond the known classes are
    /// counted as the last column only when they are known) and the labels.
    public func add(logits: Tensor, labels: [Int]) {
        let top = Metrics.topK(logits, k: 5)
        let k = logits.shape[1]
        let p = logits.storage.pointer
        for (r, y) in labels.enumerated() where y >= 0 && y < classCount {
            if let first = top[r].first, first < classCount { matrix[y][first] += 1 }
            if top[r].contains(y) { top5Correct[y] += 1 }
            let row = p + r * k
            var m = -Float.infinity
            for c in 0..<k { m = max(m, row[c]) }
            var s = 0.0
            for c in 0..<k { s += Foundation.exp(Double(row[c] - m)) }
            lossSum[y] += Double(m) + Foundation.log(s) - Double(row[y])
        }
    }
}

/// One class's line of an evaluation report.
public struct ClassResult: Codable, Sendable, Equatable {
    public var name: String
    public var images: Int
    public var top1Correct: Int
    public var top5Correct: Int
    /// Percent of this class's images classified correctly (0 when it has none).
    public var top1: Double
    public var top5: Double
    public var loss: Double
    /// The class most often predicted instead of this one, with its count (nil when none).
    public var mostConfusedWith: String?
    public var mostConfusedCount: Int
}

/// An image left out of an evaluation or prediction, and why.
public struct SkippedImage: Codable, Sendable, Equatable {
    public var path: String
    public var reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
}

/// Everything `zoo validate --results_file` writes: totals, per-class results, the confusion matrix
/// (rows: actual class, columns: predicted class) and the skipped images.
public struct ClassificationReport: ResultsFile, Sendable {
    public var model: String
    public var checkpoint: String?
    public var dataDir: String
    public var split: String
    public var ema: Bool
    public var images: Int
    public var top1: Double
    public var top5: Double
    public var loss: Double
    public var imagesPerSecond: Double
    public var classes: [String]
    public var perClass: [ClassResult]
    public var confusionMatrix: [[Int]]
    public var skippedImages: [SkippedImage]

    public init(model: String, checkpoint: String?, dataDir: String, split: String, ema: Bool,
                counts: EvaluationCounts, classes: [String], confusion: ConfusionAccumulator, skipped: [SkippedImage]) {
        self.model = model; self.checkpoint = checkpoint; self.dataDir = dataDir; self.split = split; self.ema = ema
        images = counts.images; top1 = counts.top1; top5 = counts.top5; loss = counts.loss
        imagesPerSecond = counts.imagesPerSecond
        self.classes = classes
        confusionMatrix = confusion.matrix
        skippedImages = skipped
        perClass = classes.indices.map { c in
            let row = confusion.matrix[c]
            let n = row.reduce(0, +)
            let correct = row[c]
            var worst: Int? = nil
            for j in row.indices where j != c && row[j] > 0 && (worst == nil || row[j] > row[worst!]) { worst = j }
            func pct(_ x: Int) -> Double { n > 0 ? 100 * Double(x) / Double(n) : 0 }
            return ClassResult(name: classes[c], images: n, top1Correct: correct, top5Correct: confusion.top5Correct[c],
                               top1: pct(correct), top5: pct(confusion.top5Correct[c]),
                               loss: n > 0 ? confusion.lossSum[c] / Double(n) : 0,
                               mostConfusedWith: worst.map { classes[$0] }, mostConfusedCount: worst.map { row[$0] } ?? 0)
        }
    }

    /// CSV in two tables separated by a blank line: one row per class (then `all`) with its counts,
    /// accuracies, loss and its confusion-matrix row (`predicted:<class>` columns); then
    /// `skipped_image,reason`.
    public func csv() -> String {
        var out = "class,images,top1_correct,top1,top5_correct,top5,loss"
        out += classes.map { ",predicted:" + csvField($0) }.joined() + "\n"
        for (c, r) in perClass.enumerated() {
            out += "\(csvField(r.name)),\(r.images),\(r.top1Correct),\(fmt(r.top1)),\(r.top5Correct),\(fmt(r.top5)),\(fmt(r.loss))"
            out += confusionMatrix[c].map { ",\($0)" }.joined() + "\n"
        }
        let t1 = perClass.reduce(0) { $0 + $1.top1Correct }, t5 = perClass.reduce(0) { $0 + $1.top5Correct }
        out += "all,\(images),\(t1),\(fmt(top1)),\(t5),\(fmt(top5)),\(fmt(loss))"
        let totals = classes.indices.map { j in confusionMatrix.reduce(0) { $0 + $1[j] } }
        out += totals.map { ",\($0)" }.joined() + "\n"
        out += "\nskipped_image,reason\n"
        for s in skippedImages { out += "\(csvField(s.path)),\(csvField(s.reason))\n" }
        return out
    }

    /// The terminal table of `--per_class`.
    public func perClassTable() -> String {
        let nameWidth = max(5, perClass.map(\.name.count).max() ?? 5)
        func pad(_ s: String, _ w: Int, left: Bool = false) -> String {
            let p = String(repeating: " ", count: max(0, w - s.count))
            return left ? s + p : p + s
        }
        var lines = [pad("class", nameWidth, left: true) + "  images   top-1   top-5    loss  most confused with"]
        for r in perClass {
            let confused = r.mostConfusedWith.map { "\($0) (\(r.mostConfusedCount))" } ?? "-"
            lines.append(pad(r.name, nameWidth, left: true) + "  " + pad("\(r.images)", 6) + "  " + pad(String(format: "%.2f", r.top1), 6)
                         + "  " + pad(String(format: "%.2f", r.top5), 6) + "  " + pad(String(format: "%.4f", r.loss), 6) + "  " + confused)
        }
        return lines.joined(separator: "\n")
    }

    func fmt(_ x: Double) -> String { String(format: "%.4f", x) }
}

/// Why a report or prediction file could not be written.
public enum ReportError: Error, CustomStringConvertible, Equatable {
    case unknownFormat(path: String)
    case unreadableClassMap(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unknownFormat(p): return "\(p): unknown results format; name the file .json or .csv"
        case let .unreadableClassMap(p, r): return "class map \(p): \(r)"
        }
    }
}

/// A result that is written as `.json` or `.csv`, chosen by the file's extension.
public protocol ResultsFile: Encodable {
    func csv() -> String
}

extension ResultsFile {
    /// Pretty JSON with snake_case keys.
    public func json() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.keyEncodingStrategy = .convertToSnakeCase
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try enc.encode(self)
    }

    /// Writes `.json` or `.csv` by the file's extension, atomically.
    public func write(to path: String) throws {
        switch (path as NSString).pathExtension.lowercased() {
        case "json": try writeAtomically(try json(), to: path)
        case "csv": try writeAtomically(Data(csv().utf8), to: path)
        default: throw ReportError.unknownFormat(path: path)
        }
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break.
func csvField(_ s: String) -> String {
    guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
    return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}
