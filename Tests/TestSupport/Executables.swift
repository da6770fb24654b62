import Foundation

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
}
