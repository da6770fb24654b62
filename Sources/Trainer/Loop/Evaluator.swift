import Foundation
import DataPipeline
import Models
import Tensor

/// Counts from evaluating a model on a split. Kept as sums so ranks can add theirs together.
public struct EvaluationCounts: Sendable, Equatable {
    public var images: Int = 0
    public var correctTop1: Int = 0
    public var correctTop5: Int = 0
    /// Sum over images of the cross-entropy (no label smoothing).
    public var lossSum: Double = 0
    public var seconds: Double = 0
    /// Images that could not be read and are left out of every figure (never replaced).
    public var skippedImages: Int = 0
    /// Their paths (this process's; ranks add only the count), with the reason.
    public var skipped: [SkippedSample] = []

    public init() {}

    public mutating func add(_ o: EvaluationCounts) {
        images += o.images; correctTop1 += o.correctTop1; correctTop5 += o.correctTop5; lossSum += o.lossSum
        skippedImages += o.skippedImages; skipped += o.skipped
        seconds = max(seconds, o.seconds)
    }

    /// Top-1 accuracy in percent (MindCV's Top_1_Accuracy × 100).
    public var top1: Double { images > 0 ? 100 * Double(correctTop1) / Double(images) : 0 }
    /// Top-5 accuracy in percent (with fewer than 5 classes: all classes).
    public var top5: Double { images > 0 ? 100 * Double(correctTop5) / Double(images) : 0 }
    public var loss: Double { images > 0 ? lossSum / Double(images) : 0 }
    public var imagesPerSecond: Double { seconds > 0 ? Double(images) / seconds : 0 }
}

/// Top-k membership and cross-entropy for a batch of logits.
public enum Metrics {
    /// The `k` largest entries of each row of `logits: [B, K]`, best first.
    public static func topK(_ logits: Tensor, k: Int) -> [[Int]] {
        let b = logits.shape[0], classes = logits.shape[1], kk = min(k, classes)
        let p = logits.storage.pointer
        var out: [[Int]] = []
        out.reserveCapacity(b)
        for r in 0..<b {
            let row = p + r * classes
            var best: [Int] = []
            for c in 0..<classes {
                let v = row[c]
                guard v.isNaN == false else { continue }
                if best.count < kk {
                    best.append(c)
                    best.sort { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
                } else if v > row[best[kk - 1]] {
                    best[kk - 1] = c
                    best.sort { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
                }
            }
            out.append(best)
        }
        return out
    }

    /// Adds one batch's top-1/top-5 hits and summed cross-entropy to `counts`.
    public static func accumulate(logits: Tensor, labels: [Int], into counts: inout EvaluationCounts) {
        let top = topK(logits, k: 5)
        let classes = logits.shape[1]
        let p = logits.storage.pointer
        let lse = logits.rowLogSumExp()  // the training loss's kernel
        for (r, y) in labels.enumerated() {
            if top[r].first == y { counts.correctTop1 += 1 }
            if top[r].contains(y) { counts.correctTop5 += 1 }
            counts.lossSum += Double(lse[r]) - Double(p[r * classes + y])
        }
        counts.images += labels.count
    }
}

/// Runs a model in evaluation mode over every batch of a loader.
public enum Evaluator {
    /// Top-1/top-5 (percent), mean loss and throughput over the loader's split. The model is put in
    /// eval mode and returned to its previous mode afterwards.
    public static func evaluate(model: any Classifier, loader: DataLoader,
                                progress: ((_ batch: Int, _ of: Int) -> Void)? = nil,
                                observe: ((_ logits: Tensor, _ labels: [Int]) -> Void)? = nil) throws -> EvaluationCounts {
        let wasTraining = model.isTraining
        model.eval()
        defer { model.train(wasTraining) }
        var counts = EvaluationCounts()
        let start = Date()
        let epoch = loader.epoch(0)
        var i = 0
        while let batch = try epoch.next() {
            let logits = withNoGrad { model(batch.images) }
            try EvaluationError.checkLabels(batch, classes: logits.shape[1])
            Metrics.accumulate(logits: logits, labels: batch.labels, into: &counts)
            observe?(logits, batch.labels)
            i += 1
            progress?(i, loader.batchesPerEpoch)
        }
        counts.seconds = Date().timeIntervalSince(start)
        counts.skipped = epoch.summary.skipped
        counts.skippedImages = counts.skipped.count
        return counts
    }
}
