/// A labelled collection of images that the `DataLoader` can read from many threads at once.
public protocol ImageDataset: Sendable {
    /// Number of samples.
    var count: Int { get }
    /// Class names; label `k` is `classes[k]`.
    var classes: [String] { get }
    /// Class index of sample `index`.
    func label(at index: Int) -> Int
    /// A path (or other name) identifying sample `index` in messages and batch metadata.
    func path(at index: Int) -> String
    /// Loads and decodes sample `index`. `decoder` belongs to the calling thread and may be reused.
    func image(at index: Int, decoder: ImageDecoder) throws(DataError) -> RGBImage
}

/// A dataset of encoded images held in memory (JPEG/PNG bytes), e.g. for tests and benchmarks.
public struct InMemoryDataset: ImageDataset {
    /// Encoded image bytes, one entry per sample.
    public let encoded: [[UInt8]]
    public let labels: [Int]
    public let classes: [String]
    /// Names reported for the samples (default `memory:<index>`).
    public let names: [String]

    public init(encoded: [[UInt8]], labels: [Int], classes: [String], names: [String]? = nil) {
        precondition(encoded.count == labels.count, "one label per image")
        self.encoded = encoded
        self.labels = labels
        self.classes = classes
        self.names = names ?? encoded.indices.map { "memory:\($0)" }
    }

    public var count: Int { encoded.count }
    public func label(at index: Int) -> Int { labels[index] }
    public func path(at index: Int) -> String { names[index] }
    public func image(at index: Int, decoder: ImageDecoder) throws(DataError) -> RGBImage {
        try decoder.decode(encoded[index], path: names[index])
    }
}
