import Foundation
import Models
import Tensor

/// Recovery checkpoints (`recovery_interval`): `<model>_recovery_<epoch>_<step>.*`, the same three
/// files as an epoch checkpoint, written inside an epoch after `step` of its data steps. Only the
/// newest is kept; it is removed as soon as a newer complete checkpoint exists.
extension CheckpointManager {
    public func recoveryPaths(epoch: Int, step: Int) -> CheckpointPaths {
        CheckpointPaths(directory: directory, stem: "\(modelName)_recovery_\(epoch)_\(step)")
    }

    /// Writes the recovery checkpoint of `state` (which has `partialEpoch` set), then removes the older ones.
    @discardableResult
    public func saveRecovery(model: any Module, optimizer: (any Optimizer)?, ema: ExponentialMovingAverage?,
                             state: TrainingState) throws -> CheckpointPaths {
        let step = state.partialEpoch?.steps ?? 0
        let p = recoveryPaths(epoch: state.epoch, step: step)
        try write(p, model: model, optimizer: optimizer, ema: ema, state: state)
        removeRecovery { ($0.epoch, $0.step) < (state.epoch, step) }
        return p
    }

    /// Removes the recovery checkpoints of epochs before `epochsDone` (after an epoch checkpoint).
    public func removeRecovery(before epochsDone: Int) {
        removeRecovery { $0.epoch < epochsDone }
    }

    func removeRecovery(where shouldRemove: ((epoch: Int, step: Int)) -> Bool) {
        for (position, paths) in Self.recoveryCheckpoints(directory: directory, modelName: modelName) where shouldRemove(position) {
            try? FileManager.default.removeItem(atPath: paths.meta)  // un-commit first
            try? FileManager.default.removeItem(atPath: paths.weights)
            try? FileManager.default.removeItem(atPath: paths.state)
        }
    }

    /// Recovery checkpoints of `modelName` in `directory` with all three files, by file name.
    static func recoveryCheckpoints(directory: String, modelName: String) -> [((epoch: Int, step: Int), CheckpointPaths)] {
        let prefix = "\(modelName)_recovery_"
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var out: [((epoch: Int, step: Int), CheckpointPaths)] = []
        for f in files where f.hasPrefix(prefix) && f.hasSuffix(".json") {
            let stem = String(f.dropLast(5))
            let numbers = stem.dropFirst(prefix.count).split(separator: "_", omittingEmptySubsequences: false)
            guard numbers.count == 2, let epoch = Int(numbers[0]), let step = Int(numbers[1]) else { continue }
            let p = CheckpointPaths(directory: directory, stem: stem)
            if p.isComplete { out.append(((epoch, step), p)) }
        }
        return out
    }

    /// The checkpoint `--resume DIR_OR_FILE` continues from. A directory gives its newest complete
    /// checkpoint of `modelName`, epoch or recovery, ordered by the position their file names state;
    /// its training state is not read here, so a damaged newest file is refused by the caller rather
    /// than passed over for an older one. A file is resolved as in `resolve`.
    public static func resumePoint(_ path: String, modelName: String) throws -> CheckpointPaths {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CheckpointError.notFound(path: path) }
        guard isDir.boolValue else { return try resolve(path, modelName: modelName) }
        var candidates: [((Int, Int), CheckpointPaths)] = recoveryCheckpoints(directory: path, modelName: modelName)
            .map { (($0.0.epoch, $0.0.step), $0.1) }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        for f in files where f.hasPrefix(modelName + "-") && f.hasSuffix(".json") {
            let stem = String(f.dropLast(5))
            guard let epoch = Int(stem.dropFirst(modelName.count + 1)) else { continue }
            let p = CheckpointPaths(directory: path, stem: stem)
            if p.isComplete { candidates.append(((epoch + 1, 0), p)) }
        }
        guard let newest = candidates.max(by: { $0.0 < $1.0 }) else { throw CheckpointError.noCheckpoint(directory: path) }
        return newest.1
    }

    /// Removes temporary files (`.<name>.tmp-<pid>`) that a killed writer left in the directory.
    /// Those of live processes are kept: another run may be writing.
    public func removeStaleTemporaries() {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for f in files where f.hasPrefix(".") {
            guard let r = f.range(of: ".tmp-", options: .backwards), let pid = Int32(f[r.upperBound...]), pid > 0 else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                try? FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(f))
            }
        }
    }
}
