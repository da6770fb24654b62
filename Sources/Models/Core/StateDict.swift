import Tensor

/// What did not fit when loading a state dict.
public struct StateDictMismatch: Error, CustomStringConvertible, Sendable {
    public var missing: [String] = []
    public var unexpected: [String] = []
    public var shapeMismatches: [(name: String, expected: [Int], found: [Int])] = []
    public var source: String = "state dict"

    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && shapeMismatches.isEmpty }

    public var description: String {
        var lines = ["\(source) does not fit the model:"]
        for (n, e, f) in shapeMismatches { lines.append("  shape mismatch: \(n): model \(e), checkpoint \(f)") }
        if !missing.isEmpty { lines.append("  missing (\(missing.count)): " + missing.prefix(20).joined(separator: ", ") + (missing.count > 20 ? ", …" : "")) }
        if !unexpected.isEmpty { lines.append("  unexpected (\(unexpected.count)): " + unexpected.prefix(20).joined(separator: ", ") + (unexpected.count > 20 ? ", …" : "")) }
        return lines.joined(separator: "\n")
    }
}

extension Module {
    /// Copies tensors into the parameters and buffers with the same canonical names. Strict by
    /// default: any missing, unexpected or shape-mismatched key throws, naming each one with both
    /// shapes, and nothing is written. Not strict: matching keys load, and the mismatch is returned.
    @discardableResult
    public func load(stateDict: [String: Tensor], strict: Bool = true, source: String = "state dict") throws -> StateDictMismatch {
        var report = StateDictMismatch(source: source)
        var targets: [(String, Tensor)] = namedParameters().map { ($0.name, $0.parameter.value) }
        targets += namedBuffers().map { ($0.name, $0.buffer.value) }
        let known = Set(targets.map { $0.0 })
        var plan: [(Tensor, Tensor)] = []
        for (name, dst) in targets {
            guard let src = stateDict[name] else { report.missing.append(name); continue }
            if src.shape != dst.shape { report.shapeMismatches.append((name, dst.shape, src.shape)); continue }
            plan.append((dst, src))
        }
        report.unexpected = stateDict.keys.filter { !known.contains($0) }.sorted()
        if strict && !report.isEmpty { throw report }
        withNoGrad { for (dst, src) in plan { dst.assign(src) } }
        return report
    }
}
