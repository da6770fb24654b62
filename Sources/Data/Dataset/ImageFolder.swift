#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An ImageNet-layout folder split: `<root>/<split>/<class>/<image>`.
///
/// Classes are the sub-folders of the split sorted by byte-wise name order and numbered 0…C−1;
/// images inside a class are sorted by byte-wise file name (names are bytes, see `RawPath`); the unshuffled sample order is class by
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
    /// Class folder names, sorted; label `k` is `classes[k]` (bytes that are not UTF-8 as `\xNN`).
    public let classes: [String]
    /// Class folder names as stored, in label order.
    private let classBytes: [[UInt8]]
    /// File names relative to their class folder, as stored, in sample order.
    private let fileNames: [[UInt8]]
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

    /// Scans a split folder given directly (`directory/<class>/<image>`). Names are handled as bytes:
    /// a file whose name is not UTF-8 is read like any other. Entries that are not regular files
    /// (FIFOs, devices) are kept as samples and refused, without blocking, when read.
    public init(directory dir: String, expectedClasses: [String]? = nil) throws(DataError) {
        let root = RawPath(dir)
        switch Self.kind(of: root) {
        case .missing: throw .missingSplit(path: dir)
        case .file: throw .notADirectory(path: dir)
        case .directory: break
        }
        var classFolders: [[UInt8]] = []
        for entry in try Self.list(root) where entry.name.first != 0x2E {
            if entry.isDirectory ?? (Self.kind(of: root.appending(entry.name)) == .directory) {
                classFolders.append(entry.name)
            }
        }
        classFolders.sort { $0.lexicographicallyPrecedes($1) }
        let classNames = classFolders.map { RawPath.displayName($0) }
        guard !classNames.isEmpty else { throw .noClasses(path: dir) }
        if let expected = expectedClasses, expected != classNames {
            let have = Set(classNames), want = Set(expected)
            throw .classMismatch(path: dir,
                                 missing: expected.filter { !have.contains($0) },
                                 unexpected: classNames.filter { !want.contains($0) })
        }
        var names: [[UInt8]] = []
        var labels: [Int32] = []
        var empty: [String] = []
        for (label, cls) in classFolders.enumerated() {
            let classDir = root.appending(cls)
            var files: [[UInt8]] = []
            for entry in try Self.list(classDir) where entry.name.first != 0x2E && Self.isImageName(entry.name) {
                let isFile = entry.isDirectory.map { !$0 } ?? (Self.kind(of: classDir.appending(entry.name)) == .file)
                if isFile { files.append(entry.name) }
            }
            if files.isEmpty { empty.append(classDir.description); continue }
            files.sort { $0.lexicographicallyPrecedes($1) }
            names.append(contentsOf: files)
            labels.append(contentsOf: repeatElement(Int32(label), count: files.count))
        }
        if names.isEmpty { throw .noImages(path: dir) }
        if let first = empty.first { throw .emptyClass(path: first) }
        directory = dir
        classes = classNames
        classBytes = classFolders
        fileNames = names
        self.labels = labels
    }

    public var count: Int { fileNames.count }
    public func label(at index: Int) -> Int { Int(labels[index]) }
    /// The file of sample `index` as stored (open it by these bytes).
    public func rawPath(at index: Int) -> RawPath {
        RawPath(directory).appending(classBytes[Int(labels[index])]).appending(fileNames[index])
    }
    public func path(at index: Int) -> String { rawPath(at: index).description }
    public func image(at index: Int, decoder: ImageDecoder) throws(DataError) -> RGBImage {
        try decoder.decode(contentsOf: rawPath(at: index))
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

    static func isImageName(_ name: [UInt8]) -> Bool {
        guard let dot = name.lastIndex(of: 0x2E), dot != name.startIndex else { return false }
        let ext = String(decoding: name[(dot + 1)...], as: UTF8.self)
        return imageExtensions.contains(ext.lowercased())
    }

    static func isImageName(_ name: String) -> Bool { isImageName(Array(name.utf8)) }

    static func join(_ a: String, _ b: String) -> String {
        if a.isEmpty { return b }
        return a.hasSuffix("/") ? a + b : a + "/" + b
    }

    enum Kind { case missing, file, directory }

    /// What is at `path`, following symbolic links.
    static func kind(of path: RawPath) -> Kind {
        var info = stat()
        let found = path.withCString { p in p.map { stat($0, &info) == 0 } ?? false }
        guard found else { return .missing }
        return (info.st_mode & S_IFMT) == S_IFDIR ? .directory : .file
    }

    struct Entry {
        /// The name as stored (not necessarily UTF-8).
        let name: [UInt8]
        /// From `d_type`; nil when the file system does not say (or for symbolic links).
        let isDirectory: Bool?
    }

    static func list(_ dir: RawPath) throws(DataError) -> [Entry] {
        guard let handle = dir.withCString({ p in p.flatMap { opendir($0) } }) else {
            throw .unreadable(path: dir.description, reason: errnoText())
        }
        defer { closedir(handle) }
        var entries: [Entry] = []
        while let ent = readdir(handle) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw -> [UInt8] in
                let bytes = raw.bindMemory(to: UInt8.self)
                let end = bytes.firstIndex(of: 0) ?? bytes.count
                return Array(bytes[..<end])
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
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
