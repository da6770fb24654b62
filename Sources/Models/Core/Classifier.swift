import Tensor

/// How images are prepared for a model at evaluation, and where its first conv and classifier are.
public struct DataConfig: Sendable, Equatable, Codable {
    public var inputSize: [Int]  // [C, H, W]
    public var cropPct: Double
    public var interpolation: String  // "bicubic" or "bilinear"
    /// Mean and std on the 0–1 scale (MindCV's recipes multiply these by 255).
    public var mean: [Double]
    public var std: [Double]
    public var firstConv: String
    public var classifier: String

    public init(inputSize: [Int] = [3, 224, 224], cropPct: Double = 0.875, interpolation: String = "bicubic",
                mean: [Double] = [0.485, 0.456, 0.406], std: [Double] = [0.229, 0.224, 0.225],
                firstConv: String, classifier: String) {
        self.inputSize = inputSize; self.cropPct = cropPct; self.interpolation = interpolation
        self.mean = mean; self.std = std; self.firstConv = firstConv; self.classifier = classifier
    }
}

/// The one protocol tools and the trainer use for every model of the zoo.
public protocol Classifier: Module {
    var numClasses: Int { get }
    /// Train/eval flag and dropout generator shared by the model's layers.
    var state: ModelState { get }
    /// `x: [B, C, H, W]` → the pooled features before the head, `[B, F]`.
    func forwardFeatures(_ x: Tensor) -> Tensor
    /// Pooled features → logits `[B, numClasses]`, or the features themselves with `preLogits`.
    func forwardHead(_ features: Tensor, preLogits: Bool) -> Tensor
    /// Replaces the classifier with a freshly initialised one for `numClasses` (0 = identity).
    func resetClassifier(numClasses: Int)
    /// Canonical names of parameters exempt from weight decay by the model's own rule
    /// (position embeddings, class tokens, …), beyond the usual norm/bias filter.
    var noWeightDecay: Set<String> { get }
    /// The position embeddings by canonical name, with their layout, for resampling to another
    /// image size when fine-tuning (docs/finetuning.md).
    var positionEmbeddingLayouts: [String: PositionEmbeddingLayout] { get }
}

extension Classifier {
    public func callAsFunction(_ x: Tensor) -> Tensor { forwardHead(forwardFeatures(x), preLogits: false) }
    public func forward(_ x: Tensor) -> Tensor { self(x) }
    public func train(_ on: Bool = true) { state.training = on }
    public func eval() { state.training = false }
    public var isTraining: Bool { state.training }
    public var positionEmbeddingLayouts: [String: PositionEmbeddingLayout] { [:] }
}
