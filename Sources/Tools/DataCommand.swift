import ArgumentParser

/// `zoo data ...` — dataset preparation (owned by the data pipeline work).
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Prepare data sets.")
}
