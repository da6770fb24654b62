import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The model cards' published weights (docs/checkpoints.md §6): where they are, and a local cache
/// that downloads a file the first time it is asked for.
public enum PretrainedWeights {
    /// MindCV's download host; `VITZOO_WEIGHTS_URL` replaces it (a mirror, or `file:///folder/`).
    public static let defaultBaseURL = "https://download.mindspore.cn/toolkits/mindcv/"

    /// Model name → `<family>/<file>` under the base URL (the 8 hex digits are part of the published name).
    public static let files: [String: String] = [
        "pit_ti": "pit/pit_ti-e647a593.ckpt", "pit_xs": "pit/pit_xs-fea0d37e.ckpt",
        "pit_s": "pit/pit_s-3c1ba36f.ckpt", "pit_b": "pit/pit_b-2411c9b6.ckpt",
        "vit_b_32_224": "vit/vit_b_32_224-4a1c9d8e.ckpt", "vit_l_16_224": "vit/vit_l_16_224-d2635f8b.ckpt",
        "vit_l_32_224": "vit/vit_l_32_224-8c8ea164.ckpt",
        "pvt_tiny": "pvt/pvt_tiny-6abb953d.ckpt", "pvt_small": "pvt/pvt_small-213c2ed1.ckpt",
        "pvt_medium": "pvt/pvt_medium-469e6802.ckpt", "pvt_large": "pvt/pvt_large-bb6895d7.ckpt",
        "convit_tiny": "convit/convit_tiny-e31023f2.ckpt", "convit_tiny_plus": "convit/convit_tiny_plus-e9d7fb92.ckpt",
        "convit_small": "convit/convit_small-ba858604.ckpt", "convit_small_plus": "convit/convit_small_plus-2352b9f7.ckpt",
        "convit_base": "convit/convit_base-c61b808c.ckpt", "convit_base_plus": "convit/convit_base_plus-5c61c9ce.ckpt",
        "visformer_tiny": "visformer/visformer_tiny-daee0322.ckpt", "visformer_tiny_v2": "visformer/visformer_tiny_v2-6711a758.ckpt",
        "visformer_small": "visformer/visformer_small-6c83b6db.ckpt", "visformer_small_v2": "visformer/visformer_small_v2-63674ade.ckpt",
    ]

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case noPublishedWeights(model: String)
        case downloadFailed(url: String, destination: String, reason: String)
        case badDownload(url: String, reason: String)

        public var description: String {
            switch self {
            case let .noPublishedWeights(m):
                return "\(m) has no published MindCV weights (vit_b_16_224 and the 384-pixel ViTs have none); pass --ckpt_path instead"
            case let .downloadFailed(u, d, r):
                return "cannot download \(u): \(r). Without internet access, fetch that file elsewhere and put it at \(d) (or set VITZOO_HOME / VITZOO_WEIGHTS_URL)"
            case let .badDownload(u, r): return "the download of \(u) is not a usable checkpoint: \(r); nothing was cached"
            }
        }
    }

    /// The cache folder: `$VITZOO_HOME/weights`, by default `~/.cache/vitzoo/weights`.
    public static func cacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let home = environment["VITZOO_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache/vitzoo")
        return (home as NSString).appendingPathComponent("weights")
    }

    /// The URL the model's weights are downloaded from.
    public static func url(for model: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        guard let file = files[model] else { throw Failure.noPublishedWeights(model: model) }
        var base = environment["VITZOO_WEIGHTS_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? defaultBaseURL
        if !base.hasSuffix("/") { base += "/" }
        return base + file
    }

    /// The local path of the model's published weights, downloading them into the cache when
    /// missing: to a temporary file, checked (complete, a MindSpore checkpoint), then renamed.
    /// `progress(bytes, total)` is called while downloading (total 0 when unknown).
    public static func localFile(for model: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                                 progress: ((Int64, Int64) -> Void)? = nil) throws -> String {
        let url = try url(for: model, environment: environment)
        let destination = (cacheDirectory(environment: environment) as NSString).appendingPathComponent((url as NSString).lastPathComponent)
        if FileManager.default.fileExists(atPath: destination) { return destination }
        do {
            try FileManager.default.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        } catch {
            throw Failure.downloadFailed(url: url, destination: destination, reason: "cannot create the cache folder: \(error.localizedDescription)")
        }
        let temporary = destination + ".part-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        try fetch(url, to: temporary, destination: destination, progress: progress)
        // Format check: a MindSpore checkpoint (an error page or a truncated file is not cached).
        do {
            guard try WeightsFormat.detect(path: temporary) == .mindsporeCheckpoint else {
                throw Failure.badDownload(url: url, reason: "it is not a MindSpore .ckpt")
            }
            _ = try MindSporeCheckpointFile(path: temporary)
        } catch let e as Failure {
            throw e
        } catch {
            throw Failure.badDownload(url: url, reason: "\(error)")
        }
        guard rename(temporary, destination) == 0 else {
            throw Failure.downloadFailed(url: url, destination: destination, reason: "cannot move it into the cache: \(String(cString: strerror(errno)))")
        }
        return destination
    }

    /// Copies `url` (file://, http://, https://) to `path`, checking the byte count against the
    /// server's Content-Length.
    static func fetch(_ url: String, to path: String, destination: String, progress: ((Int64, Int64) -> Void)?) throws {
        guard let u = URL(string: url) else { throw Failure.downloadFailed(url: url, destination: destination, reason: "not a URL") }
        if u.isFileURL {
            do { try FileManager.default.copyItem(atPath: u.path, toPath: path) } catch {
                throw Failure.downloadFailed(url: url, destination: destination, reason: error.localizedDescription)
            }
            return
        }
        let box = DownloadBox()
        let delegate = DownloadDelegate(box: box, target: path, progress: progress)
        let session = URLSession(configuration: .ephemeral, delegate: delegate, delegateQueue: nil)
        session.downloadTask(with: u).resume()
        box.done.wait()
        session.finishTasksAndInvalidate()
        if let reason = box.failure { throw Failure.downloadFailed(url: url, destination: destination, reason: reason) }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? nil
        if box.expected > 0, size != box.expected {
            throw Failure.badDownload(url: url, reason: "received \(size ?? 0) of \(box.expected) bytes")
        }
    }
}

/// The outcome of one download, filled in by the delegate.
private final class DownloadBox: @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    var failure: String?
    var expected: Int64 = 0
}

private final class DownloadDelegate: NSObject, URLSessionDownloadDelegate, @unchecked Sendable {
    let box: DownloadBox
    let target: String
    let progress: ((Int64, Int64) -> Void)?

    init(box: DownloadBox, target: String, progress: ((Int64, Int64) -> Void)?) {
        self.box = box; self.target = target; self.progress = progress
    }

    func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask, didWriteData bytesWritten: Int64,
                    totalBytesWritten: Int64, totalBytesExpectedToWrite: Int64) {
        progress?(totalBytesWritten, max(totalBytesExpectedToWrite, 0))
    }

    func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask, didFinishDownloadingTo location: URL) {
        if let http = downloadTask.response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
            box.failure = "HTTP status \(http.statusCode)"
            return
        }
        box.expected = downloadTask.response?.expectedContentLength ?? 0
        do { try FileManager.default.moveItem(at: location, to: URL(fileURLWithPath: target)) } catch {
            box.failure = "cannot keep the downloaded file: \(error.localizedDescription)"
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error, box.failure == nil { box.failure = error.localizedDescription }
        box.done.signal()
    }
}
