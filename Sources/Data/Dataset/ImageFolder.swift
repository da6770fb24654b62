#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An ImageNet-layout folder split: `<root>/<split>/<class>/<image>`.
///
/// Classes are the sub-folders of the split sorted by byte-wise name order and numbered 0…C−1;
/// images inside a class are sorted by byte-wise file name; the unshuffled sample order is class by
/// class (MindCV's `ImageFolderDataset` order).
///
/// Differences from MindCV, all deliberate: only files ending in `.jpg`, `.jpeg` or `.png` (any case)
/// are samples and other files are ignored (MindCV reads every file); names starting with `.` are
/// ignored; a missing split, a split without images and an empty class folder are errors raised here,
/// before any work starts (MindCV gives an empty class an index and fails later or never).
/// Pass the training classes as `expectedClasses` when scanning the validation split so that a
/// mismatch is reported instead of silently shifting labels.
public struct ImageFolder: ImageDataset {
    /// `<root>/<split>`.
    public let directory: String
    /// Class folder names, sorted; label `k` is `classes[k]`.
    public let classes: [String]
    /// File names relative to their class folder, in sample order.
    private let fileNames: [String]
    private let labels: [Int32]

    /// Extensions (lower-cased) that are read as images.
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

    /// Scans `<root>/<split>`.
    /// - Throws: `DataError.missingSplit`, `.notADirectory`, `.noClasses`, `.emptyClass`, `.noImages`,
    ///   `.unreadable`, and `.classMismatch` when `expectedClasses` is given and differs.
    public init(root: String, split: String, expectedClasses: [String]? = nil) throws(DataError) {
        let dir = Self.join(root, split)
        try self.init(directory: dir, expectedClasses: expectedClasses)
    }

    /// Scans a split folder given directly (`directory/<class>/<image>`).
    public init(directory dir: String, expectedClasses: [String]? = nil) throws(DataError) {
        switch Self.kind(of: dir) {
        case .missing: throw .missingSplit(path: dir)
        case .file: throw .notADirectory(path: dir)
        case .directory: break
        }
        let entries = try Self.list(dir)
        var classNames: [String] = []
        for entry in entries where !entry.name.hasPrefix(".") {
            if entry.isDirectory ?? (Self.kind(of: Self.join(dir, entry.name)) == .directory) {
                classNames.append(entry.name)
            }
        }
        classNames.sort(by: Self.byteOrder)
        guard !classNames.isEmpty else { throw .noClasses(path: dir) }
        if let expected = expectedClasses, expected != classNames {
            let have = Set(classNames), want = Set(expected)
            throw .classMismatch(path: dir,
                                 missing: expected.filter { !have.contains($0) },
                                 unexpected: classNames.filter { !want.contains($0) })
        }
        var names: [String] = []
        var labels: [Int32] = []
        var empty: [String] = []
        for (label, cls) in classNames.enumerated() {
            let classDir = Self.join(dir, cls)
            var files: [String] = []
            for entry in try Self.list(classDir) where !entry.name.hasPrefix(".") && Self.isImageName(entry.name) {
                let isFile = entry.isDirectory.map { !$0 } ?? (Self.kind(of: Self.join(classDir, entry.name)) == .file)
                if isFile { files.append(entry.name) }
            }
            if files.isEmpty { empty.append(classDir); continue }
            files.sort(by: Self.byteOrder)
            names.append(contentsOf: files)
            labels.append(contentsOf: repeatElement(Int32(label), count: files.count))
        }
        if names.isEmpty { throw .noImages(path: dir) }
        if let first = empty.first { throw .emptyClass(path: first) }
        directory = dir
        classes = classNames
        fileNames = names
        self.labels = labels
    }

    public var count: Int { fileNames.count }
    public func label(at index: Int) -> Int { Int(labels[index]) }
    public func path(at index: Int) -> String {
        Self.join(Self.join(directory, classes[Int(labels[index])]), fileNames[index])
    }
    public func image(at index: Int, decoder: ImageDecoder) throws(DataError) -> RGBImage {
        try decoder.decode(contentsOf: path(at: index))
    }

    /// All samples as (path, label), in sample order.
    public var samples: [(path: String, label: Int)] {
        (0..<count).map { (path(at: $0), label(at: $0)) }
    }

    /// Number of samples of each class.
    public var classCounts: [Int] {
        var counts = [Int](repeating: 0, count: classes.count)
        for l in labels { counts[Int(l)] += 1 }
        return counts
    }

    // MARK: - File system helpers

    static func isImageName(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
        return imageExtensions.contains(name[name.index(after: dot)...].lowercased())
    }

    static func byteOrder(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    static func join(_ a: String, _ b: String) -> String {
        if a.isEmpty { return b }
        return a.hasSuffix("/") ? a + b : a + "/" + b
    }

    enum Kind { case missing, file, directory }

    /// What is at `path`, following symbolic links.
    static func kind(of path: String) -> Kind {
        var info = stat()
        guard stat(path, &info) == 0 else { return .missing }
        return (info.st_mode & S_IFMT) == S_IFDIR ? .directory : .file
    }

    struct Entry {
        let name: String
        /// From `d_type`; nil when the file system does not say (or for symbolic links).
        let isDirectory: Bool?
    }

    static func list(_ dir: String) throws(DataError) -> [Entry] {
        guard let handle = opendir(dir) else { throw .unreadable(path: dir, reason: errnoText()) }
        defer { closedir(handle) }
        var entries: [Entry] = []
        while let ent = readdir(handle) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw -> String in
                let bytes = raw.bindMemory(to: UInt8.self)
                let end = bytes.firstIndex(of: 0) ?? bytes.count
                return String(decoding: bytes[..<end], as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            let type = Int32(ent.pointee.d_type)
            let isDirectory: Bool?
            switch type {
            case Int32(DT_DIR): isDirectory = true
            case Int32(DT_REG): isDirectory = false
            default: isDirectory = nil
            }
            entries.append(Entry(name: name, isDirectory: isDirectory))
        }
        return entries
    }
}
