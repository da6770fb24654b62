import Tensor

/// Whose numerical definitions a model follows (docs/numerics.md). The presets are MindCV's; a
/// family config's `with(numerics:)` switches the definitions that differ, and the registry applies
/// `ModelOptions.numerics` when it builds a model.
public enum Numerics: String, Sendable, Codable, CaseIterable {
    /// MindCV's, the reference of the fixtures: tanh GELU, per-family LayerNorm epsilons, Visformer
    /// v2's 1/d attention scale.
    case mindcv
    /// timm's (PVT: the original code's): exact GELU, LayerNorm eps 1e-6, Visformer scale d^-0.5,
    /// and timm's evaluation data config.
    case timm

    /// Parses a recipe or command-line value, naming the valid ones when it is not one of them.
    public init(parsing text: String) throws {
        guard let n = Numerics(rawValue: text.lowercased()) else {
            throw ModelRegistryError.unknownNumerics(text)
        }
        self = n
    }
}

/// A config whose numerics differ only in the GELU and the one LayerNorm epsilon of every norm (PiT,
/// ViT, ConViT).
public protocol SingleEpsilonNumerics {
    var gelu: GELUApproximation { get set }
    var layerNormEps: Float { get set }
}

extension SingleEpsilonNumerics {
    /// This architecture with `numerics`' definitions (docs/numerics.md §1): MindCV's are the
    /// presets' own; timm's use the exact GELU and LayerNorm eps 1e-6.
    public func with(numerics: Numerics) -> Self {
        guard numerics == .timm else { return self }
        var c = self
        c.gelu = .none
        c.layerNormEps = 1e-6
        return c
    }
}
