import Foundation
import XCTest

/// Executables the end-to-end tests run: the `zoo` built beside the test bundle, and OpenMPI's `mpirun`.
public enum BuiltExecutables {
    /// The `zoo` executable beside this test bundle (same build products directory).
    public static var zoo: String? {
        var dirs: [URL] = [Bundle.main.bundleURL.deletingLastPathComponent()]
        if let arg0 = CommandLine.arguments.first { dirs.append(URL(fileURLWithPath: arg0).deletingLastPathComponent()) }
        for d in dirs {
            for candidate in [d, d.deletingLastPathComponent(), d.deletingLastPathComponent().deletingLastPathComponent()] {
                let p = candidate.appendingPathComponent("zoo").path
                if FileManager.default.isExecutableFile(atPath: p) { return p }
            }
        }
        return nil
    }

    public static var mpirun: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") + ["/usr/bin", "/usr/local/bin"] {
            let p = "\(dir)/mpirun"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Runs the built `zoo` with `arguments` (extra `environment` on top of this process's) and
    /// returns its exit status and combined standard output and error. Skips the test when `zoo` was
    /// not built beside the tests (fails under CI).
    public static func runZoo(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        guard let path = zoo else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("the zoo executable was not built beside the tests") }
            throw XCTSkip("the zoo executable is not beside the test bundle; build it first")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, new in new }
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

extension BuiltExecutables {
    /// Runs the built `zoo` with `arguments`, killing it after `timeout` seconds (a hang is then a
    /// failure, not a stuck suite). Skips the test when `zoo` is not built.
    public static func runZoo(_ arguments: [String], timeout: TimeInterval = 120) throws -> (status: Int32, output: String, timedOut: Bool) {
        guard let path = zoo else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("the zoo executable was not built beside the tests") }
            throw XCTSkip("the zoo executable is not beside the test bundle; build it first")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("zoo-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while p.isRunning {
            if Date() > deadline { timedOut = true; p.terminate(); break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        p.waitUntilExit()
        try? handle.close()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        return (p.terminationStatus, text, timedOut)
    }
}
