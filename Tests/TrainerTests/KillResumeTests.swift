import Foundation
import Models
import Tensor
import TestSupport
import XCTest
import DataPipeline

/// SIGKILL `zoo train` at random steps (seeded) several times, resume each time, and compare the final
/// checkpoint byte for byte with an uninterrupted run's (docs/training.md §9).
final class KillResumeTests: XCTestCase {
    func testKilledAndResumedRunEqualsUninterruptedRun() throws {
        guard let zoo = BuiltExecutables.zoo else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("the zoo executable was not built beside the tests") }
            throw XCTSkip("the zoo executable is not beside the test bundle; build it first")
        }
        let folder = try DataTempFolder("kill-resume")
        defer { folder.cleanup() }
        try TinyTraining.makeFolder(folder)
        let recipe = folder.path + "/recipe.yaml"
        try Data(TinyTraining.yaml.utf8).write(to: URL(fileURLWithPath: recipe))
        func train(_ dir: String, resume: Bool, killAtStep: Int? = nil) throws -> (status: Int32, lastStep: Int) {
            var args = ["train", "--config", recipe, "--data_dir", folder.path, "--ckpt_save_dir", folder.path + "/" + dir,
                        "--recovery_interval", "2", "--log_interval", "1", "--val_while_train", "False", "--epoch_size", "2"]
            if resume { args += ["--resume", folder.path + "/" + dir] }
            return try runZoo(zoo, args, killAtStep: killAtStep, errors: folder.path + "/stderr.txt")
        }
        let reference = try train("straight", resume: false)
        XCTAssertEqual(reference.status, 0, (try? String(contentsOfFile: folder.path + "/stderr.txt", encoding: .utf8)) ?? "")
        XCTAssertEqual(reference.lastStep, 12, "2 epochs of 6 steps")

        // Kill points over the 12 steps, drawn from a fixed seed; each run resumes the last.
        var rng = RandomGenerator(seed: 2024)
        var kills = 0
        var resume = false
        var history: [String] = []
        for _ in 0..<3 {
            let target = 1 + rng.nextInt(below: 11)
            let r = try train("killed", resume: resume, killAtStep: target)
            history.append("kill at step \(target): status \(r.status), last step logged \(r.lastStep)")
            if r.status == -SIGKILL { kills += 1 }
            resume = FileManager.default.fileExists(atPath: folder.path + "/killed") &&
                ((try? FileManager.default.contentsOfDirectory(atPath: folder.path + "/killed"))?.contains { $0.hasSuffix(".json") } ?? false)
        }
        // A kill lands within a step of its target; only a reader stalled for the rest of the run misses.
        XCTAssertGreaterThanOrEqual(kills, 1, "the runs were killed mid-training: \(history)")
        let last = try train("killed", resume: resume)
        XCTAssertEqual(last.status, 0, (try? String(contentsOfFile: folder.path + "/stderr.txt", encoding: .utf8)) ?? "")
        for file in ["pit_ti-1.safetensors", "pit_ti-1.state.safetensors", "pit_ti-1.json"] {
            let a = try Data(contentsOf: URL(fileURLWithPath: folder.path + "/straight/" + file))
            let b = try Data(contentsOf: URL(fileURLWithPath: folder.path + "/killed/" + file))
            XCTAssertEqual(a, b, "\(file) differs after \(kills) kills and resumes: \(history)")
        }
        let metrics = try String(contentsOfFile: folder.path + "/killed/metrics.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(metrics.dropFirst().map { $0.prefix { $0 != "," } }, ["1", "2"], "each epoch once")
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path + "/killed")
        XCTAssertFalse(left.contains { $0.contains(".tmp-") || $0.contains("_recovery_") }, "\(left)")
    }

    /// Runs `zoo`, reading its step lines; with `killAtStep` sends SIGKILL once that global step is
    /// logged; its standard error goes to the file `errors`. Returns the exit status (negative signal number when killed) and the last step seen.
    func runZoo(_ zoo: String, _ args: [String], killAtStep: Int?, errors: String) throws -> (status: Int32, lastStep: Int) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: zoo)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        _ = FileManager.default.createFile(atPath: errors, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: errors)
        try p.run()
        var buffer = "", lastStep = 0, killed = false
        while true {
            let data = out.fileHandleForReading.availableData
            if data.isEmpty { break }
            buffer += String(decoding: data, as: UTF8.self)
            while let nl = buffer.firstIndex(of: "\n") {
                let line = String(buffer[..<nl])
                buffer = String(buffer[buffer.index(after: nl)...])
                guard let step = Self.globalStep(line) else { continue }
                lastStep = step
                if let k = killAtStep, step >= k, !killed {
                    kill(p.processIdentifier, SIGKILL)
                    killed = true
                }
            }
        }
        p.waitUntilExit()
        let status = p.terminationReason == .uncaughtSignal ? -p.terminationStatus : p.terminationStatus
        return (status, lastStep)
    }

    /// "epoch 2/2 step 3/6 ..." → 9.
    static func globalStep(_ line: String) -> Int? {
        let words = line.split(separator: " ")
        guard words.count >= 4, words[0] == "epoch", words[2] == "step" else { return nil }
        let e = words[1].split(separator: "/"), s = words[3].split(separator: "/")
        guard e.count == 2, s.count == 2, let epoch = Int(e[0]), let step = Int(s[0]), let per = Int(s[1]) else { return nil }
        return (epoch - 1) * per + step
    }
}
