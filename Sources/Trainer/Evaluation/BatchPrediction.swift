import Foundation
import Models
import Tensor
import DataPipeline

/// The outcome of `zoo predict`: a prediction per readable image, and the inputs that could not be read.
public struct PredictionResults: Codable, ResultsFile, Sendable {
    public var predictions: [Prediction]
    public var unreadable: [SkippedImage]

    // JSON: `{"predictions": [...], "unreadable": [...]}` (ResultsFile.json).

    /// One row per image: `path,rank,class_index,class,probability` for each of its top-k, then one
    /// `path,,,,,error` row per unreadable input (the last column says why).
    public func csv() -> String {
        var out = "path,rank,class_index,class,probability,error\n"
        for p in predictions {
            for (i, c) in p.topk.enumerated() {
                let name = p.classNames.map { $0[i] } ?? "\(c)"
                out += "\(csvField(p.path)),\(i + 1),\(c),\(csvField(name)),\(String(format: "%.6f", p.probs[i])),\n"
            }
        }
        for u in unreadable { out += "\(csvField(u.path)),,,,,\(csvField(u.reason))\n" }
        return out
    }
}

/// Class names for predictions from a file: one name per line (line i names class i, timm's
/// `--class-map` text format), or JSON: an array of names or an object `{"0": "name", ...}`.
public enum ClassMap {
    public static func load(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ReportError.unreadableClassMap(path: path, reason: "no such file or unreadable")
        }
        if path.lowercased().hasSuffix(".json") {
            let obj: Any
            do { obj = try JSONSerialization.jsonObject(with: data) } catch {
                throw ReportError.unreadableClassMap(path: path, reason: "not JSON: \(error.localizedDescription)")
            }
            if let names = obj as? [String] { return names }
            if let dict = obj as? [String: String] {
                var names = Array(repeating: "", count: dict.count)
                for (k, v) in dict {
                    guard let i = Int(k), i >= 0, i < dict.count else {
                        throw ReportError.unreadableClassMap(path: path, reason: "key '\(k)' is not a class index in 0..<\(dict.count)")
                    }
                    names[i] = v
                }
                return names
            }
            throw ReportError.unreadableClassMap(path: path, reason: "expected an array of names or an object {\"0\": \"name\", ...}")
        }
        let text = String(decoding: data, as: UTF8.self)
        let names = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        let trimmed = Array(names.reversed().drop { $0.isEmpty }.reversed())
        if trimmed.isEmpty { throw ReportError.unreadableClassMap(path: path, reason: "the file names no classes") }
        return trimmed
    }
}

extension InferenceSession {
    /// Image files named by `inputs` (folders searched for .jpg/.jpeg/.png, names as bytes, through
    /// `ImageFiles`), and the inputs that do not exist or cannot be listed.
    public static func imagePaths(_ inputs: [String]) -> (paths: [RawPath], missing: [SkippedImage]) {
        var paths: [RawPath] = [], missing: [SkippedImage] = []
        for p in inputs {
            do { paths += try ImageFiles.collect([p]) } catch {
                missing.append(SkippedImage(path: p, reason: Self.reason(error)))
            }
        }
        return (paths, missing)
    }

    /// An error's reason without the path (the report names the path beside it).
    static func reason(_ error: any Error) -> String {
        if case let DataError.unreadable(_, reason) = error { return reason }
        return "\(error)"
    }

    /// Predictions in batches of `batchSize`: images are decoded and transformed in parallel, then
    /// each batch is one forward pass. Unreadable inputs are reported and skipped, never fatal.
    /// `classNames` overrides the checkpoint's run (e.g. from `--class_map`).
    public func predictBatched(_ inputs: [String], topk: Int = 5, batchSize: Int = 32, classNames names: [String]? = nil,
                               progress: ((_ done: Int, _ of: Int) -> Void)? = nil) -> PredictionResults {
        let (paths, missing) = Self.imagePaths(inputs)
        var results = PredictionResults(predictions: [], unreadable: missing)
        let labels = names ?? classNames
        let h = transform.outputHeight, w = transform.outputWidth, plane = 3 * h * w
        let batch = max(1, batchSize)
        var start = 0
        while start < paths.count {
            let chunk = Array(paths[start..<min(start + batch, paths.count)])
            let x = Tensor(uninitializedShape: [chunk.count, 3, h, w])
            let base = UnsafeSendable(x.storage.pointer)
            let failures = FailureList(count: chunk.count)
            let transform = self.transform
            DispatchQueue.concurrentPerform(iterations: chunk.count) { i in
                do {
                    let image = try ImageDecoder().decode(contentsOf: chunk[i])
                    var rng = RandomGenerator(seed: 0)
                    transform.apply(image, rng: &rng, into: base.value + i * plane)
                } catch {
                    failures.set(i, Self.reason(error))
                }
            }
            let ok = chunk.indices.filter { failures.reasons[$0] == nil }
            for i in chunk.indices where failures.reasons[i] != nil {
                results.unreadable.append(SkippedImage(path: chunk[i].description, reason: failures.reasons[i] ?? ""))
            }
            if !ok.isEmpty {
                let input = ok.count == chunk.count ? x : Self.rows(of: x, ok, plane: plane, shape: [ok.count, 3, h, w])
                let logits = withNoGrad { model(input) }
                let probs = logits.softmax(axis: -1)
                let top = Metrics.topK(logits, k: topk)
                let k = logits.shape[1]
                let lp = logits.storage.pointer, pp = probs.storage.pointer
                for (r, i) in ok.enumerated() {
                    let t = top[r]
                    results.predictions.append(Prediction(
                        path: chunk[i].description, topk: t,
                        classNames: labels.map { n in t.map { $0 < n.count ? n[$0] : "\($0)" } },
                        probs: t.map { Double(pp[r * k + $0]) },
                        logits: (0..<k).map { Double(lp[r * k + $0]) }))
                }
            }
            start += chunk.count
            progress?(start, paths.count)
        }
        return results
    }

    /// A new tensor with the given rows of `x`.
    static func rows(of x: Tensor, _ rows: [Int], plane: Int, shape: [Int]) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        for (j, i) in rows.enumerated() { (out.storage.pointer + j * plane).update(from: x.storage.pointer + i * plane, count: plane) }
        return out
    }
}

/// Failure reasons written from concurrent iterations, one slot per iteration.
final class FailureList: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var reasons: [String?]
    init(count: Int) { reasons = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ reason: String) { lock.lock(); reasons[i] = reason; lock.unlock() }
}

/// A pointer handed to concurrent iterations that write disjoint ranges.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
