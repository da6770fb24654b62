#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The image files named on a command line (`zoo predict a.jpg photos/`).
public enum ImageFiles {
    /// Each input that is a file, as given (read later, so a FIFO or device is refused then, without
    /// blocking); each folder searched recursively for `.jpg`/`.jpeg`/`.png` names, sorted byte-wise.
    /// Names are bytes: files whose names are not UTF-8 are found and read.
    /// - Throws: `DataError.unreadable` for an input that does not exist or a folder that cannot be listed.
    public static func collect(_ inputs: [String]) throws(DataError) -> [RawPath] {
        var out: [RawPath] = []
        for input in inputs {
            let path = RawPath(input)
            switch ImageFolder.kind(of: path) {
            case .missing: throw .unreadable(path: input, reason: "no such file or folder")
            case .file: out.append(path)
            case .directory:
                var found: [[UInt8]] = []
                try walk(path, relative: [], into: &found, depth: 0)
                out += found.sorted { $0.lexicographicallyPrecedes($1) }.map { path.appending($0) }
            }
        }
        return out
    }

    /// Folders nested deeper than this are not searched (a link cycle would never end).
    static let maxDepth = 32

    private static func walk(_ dir: RawPath, relative: [UInt8], into found: inout [[UInt8]], depth: Int) throws(DataError) {
        guard depth < maxDepth else { return }
        for entry in try ImageFolder.list(dir) where entry.name.first != 0x2E {
            let name = relative.isEmpty ? entry.name : relative + [0x2F] + entry.name
            let isDirectory = entry.isDirectory ?? (ImageFolder.kind(of: dir.appending(entry.name)) == .directory)
            if isDirectory {
                try walk(dir.appending(entry.name), relative: name, into: &found, depth: depth + 1)
            } else if ImageFolder.isImageName(entry.name) {
                found.append(name)
            }
        }
    }
}
