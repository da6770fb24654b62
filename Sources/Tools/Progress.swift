import Foundation
import Trainer

/// Progress of one phase (training epoch, validation, conversion, benchmark) on standard error.
///
/// On a terminal: one line rewritten in place (`\r` + erase to end of line), at most ten times a
/// second: `validate  120/391 batches  31%  812.4 img/s  ETA 12s`. Otherwise plain lines, one per
/// tenth of the phase or every 30 s, so that log files stay readable.
final class ProgressLine: @unchecked Sendable {
    let phase: String
    let enabled: Bool
    let terminal: Bool
    let unit: String
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var lastPlainStep = 0
    private var drawn = false
    private let lock = NSLock()

    init(phase: String, unit: String = "batches", enabled: Bool = true, terminal: Bool = ProgressLine.stderrIsTerminal) {
        self.phase = phase; self.unit = unit; self.enabled = enabled; self.terminal = terminal
    }

    static var stderrIsTerminal: Bool {
        if ProcessInfo.processInfo.environment["ZOO_PROGRESS"] == "plain" { return false }
        if ProcessInfo.processInfo.environment["ZOO_PROGRESS"] == "terminal" { return true }
        return isatty(STDERR_FILENO) != 0
    }

    /// The text for `step` of `total` (`items` processed so far, for the rate; `extra` fields such as
    /// `loss 2.31`).
    /// `rate` (images/s) and `eta` (seconds) replace the ones estimated from this phase's elapsed time
    /// (training knows its whole-run ETA).
    func text(step: Int, of total: Int, items: Int?, extra: [String], elapsed: Double, rate: Double? = nil, eta: Double? = nil) -> String {
        var parts = ["\(phase)"] + extra + ["\(step)/\(total) \(unit)"]
        if total > 0 { parts.append(String(format: "%3.0f%%", 100 * Double(step) / Double(total))) }
        if let r = rate ?? items.flatMap({ elapsed > 0 ? Double($0) / elapsed : nil }) { parts.append(String(format: "%.1f img/s", r)) }
        if let eta { parts.append("ETA " + formatDuration(eta)) }
        else if step > 0, total > step { parts.append("ETA " + formatDuration(elapsed / Double(step) * Double(total - step))) }
        return parts.joined(separator: "  ")
    }

    func update(step: Int, of total: Int, items: Int? = nil, extra: [String] = [], rate: Double? = nil, eta: Double? = nil) {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        let elapsed = now.timeIntervalSince(start)
        if terminal {
            guard now.timeIntervalSince(lastDraw) >= 0.1 || step == total else { return }
            lastDraw = now
            write("\r\u{1B}[K" + text(step: step, of: total, items: items, extra: extra, elapsed: elapsed, rate: rate, eta: eta))
            drawn = true
        } else {
            let tenth = max(1, total / 10)
            guard step == total || step - lastPlainStep >= tenth || now.timeIntervalSince(lastDraw) >= 30 else { return }
            lastDraw = now; lastPlainStep = step
            write(text(step: step, of: total, items: items, extra: extra, elapsed: elapsed, rate: rate, eta: eta) + "\n")
        }
    }

    /// Ends the updating line (a newline on a terminal).
    func finish() {
        lock.lock(); defer { lock.unlock() }
        if terminal && drawn { write("\n") }
        drawn = false
    }

    /// Prints a whole line above the progress line (clearing it first on a terminal).
    func line(_ s: String) {
        lock.lock(); defer { lock.unlock() }
        if terminal && drawn { write("\r\u{1B}[K") ; drawn = false }
        print(s)
        fflush(nil)
    }

    private func write(_ s: String) {
        FileHandle.standardError.write(Data(s.utf8))
    }
}
