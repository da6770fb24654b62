import Foundation

extension TrainingState {
    /// Each field on its own: counts are not negative, metrics are percentages, a recovery position
    /// lies inside its epoch. Throws `CheckpointError.badField` naming `path` and the field.
    public func checkRanges(path: String) throws {
        func bad(_ field: String, _ reason: String) -> CheckpointError { .badField(path: path, field: field, reason: reason) }
        guard epoch >= 0 else { throw bad("epoch", "is \(epoch); it counts epochs from 0") }
        guard globalStep >= 0 else { throw bad("globalStep", "is \(globalStep); it counts data steps from 0") }
        guard optimizerSteps >= 0 else { throw bad("optimizerSteps", "is \(optimizerSteps); it counts updates from 0") }
        if let n = emaUpdates, n < 0 { throw bad("emaUpdates", "is \(n); it counts updates from 0") }
        for (field, value) in [("metric", metric), ("bestMetric", bestMetric), ("bestTop5", bestTop5)] {
            if let v = value, !(v >= 0 && v <= 100) { throw bad(field, "is \(v); an accuracy is a percentage in [0, 100]") }
        }
        if let b = bestEpoch, b < 1 { throw bad("bestEpoch", "is \(b); epochs are numbered from 1 here") }
        if let n = stepsPerEpoch, n < 1 { throw bad("stepsPerEpoch", "is \(n); an epoch has at least one step") }
        if let p = partialEpoch {
            guard p.steps >= 1 else { throw bad("partialEpoch.steps", "is \(p.steps); a recovery checkpoint is at least one step into its epoch") }
            guard p.samples >= 0 else { throw bad("partialEpoch.samples", "is \(p.samples)") }
            guard p.skipped >= 0 else { throw bad("partialEpoch.skipped", "is \(p.skipped)") }
            guard p.lossSum.isFinite, p.lossSum >= 0 else { throw bad("partialEpoch.lossSum", "is \(p.lossSum); a sum of losses is finite and not negative") }
        }
    }

    /// The fields against each other and against the run resuming from them (its model, class
    /// folders and steps per epoch). Throws `CheckpointError.badField` naming `path` and the field.
    public func checkConsistency(path: String, model: String, classNames: [String], stepsPerEpoch current: Int) throws {
        func bad(_ field: String, _ reason: String) -> CheckpointError { .badField(path: path, field: field, reason: reason) }
        guard self.model == model else { throw bad("model", "is '\(self.model)' but the recipe trains '\(model)'") }
        if !self.classNames.isEmpty && self.classNames != classNames {
            throw bad("classNames", "lists \(self.classNames.count) classes that differ from the \(classNames.count) class folders of the training data")
        }
        let stepsDone = epoch + (partialEpoch?.steps ?? 1)
        guard globalStep >= stepsDone else {
            throw bad("globalStep", "is \(globalStep), fewer than the \(stepsDone) data steps that epoch \(epoch) implies")
        }
        guard optimizerSteps <= globalStep else { throw bad("optimizerSteps", "is \(optimizerSteps), more than globalStep \(globalStep)") }
        if let n = emaUpdates, n > globalStep { throw bad("emaUpdates", "is \(n), more than globalStep \(globalStep)") }
        if let b = bestEpoch, b > epochsDone { throw bad("bestEpoch", "is \(b), after the \(epochsDone) epochs done") }
        if let p = partialEpoch {
            guard let recorded = stepsPerEpoch else { throw bad("stepsPerEpoch", "is missing; a recovery checkpoint needs it") }
            guard recorded == current else {
                throw bad("stepsPerEpoch", "is \(recorded) but this run has \(current) steps per epoch; resuming inside an epoch needs the same data, batch size and world size")
            }
            guard p.steps < current else { throw bad("partialEpoch.steps", "is \(p.steps), not inside an epoch of \(current) steps") }
            guard p.samples >= p.steps else { throw bad("partialEpoch.samples", "is \(p.samples), fewer than one per step after \(p.steps) steps") }
        }
    }
}
