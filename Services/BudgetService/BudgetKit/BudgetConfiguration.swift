import Foundation
import KBRuntime

/// The budget service's own configuration keys (README, "Configuration").
public enum BudgetConfiguration {
    /// Every key, with its default and meaning.
    public static let documentedKeys: [(key: String, defaultValue: String, meaning: String)] = [
        ("KB_BUDGET_MONTHLY_LIMIT_USD", "8.33", "the monthly limit until an operator sets one with 'kb budget set-limit' (which is kept in the database and wins)"),
        ("KB_BUDGET_PRICES_FILE", "(unset)", "a JSON price table laid over the built-in one: {\"prices\": [{\"provider\", \"model\", \"input_per_million\", \"output_per_million\"}], \"local_providers\": [...]}"),
        ("KB_BUDGET_RESERVATION_TTL_SECONDS", "300", "how long an admission reservation holds when the caller names no time"),
        ("KB_BUDGET_BUSY_TIMEOUT_MS", "5000", "how long a write waits for another process's lock on the database before failing with UNAVAILABLE"),
    ]

    /// The database file inside the service's data folder.
    public static let databaseFileName = "knowledge.db"

    /// Reads the ledger options from `source`; the error names the bad key.
    public static func options(from source: ConfigSource) throws -> BudgetLedger.Options {
        var options = BudgetLedger.Options()
        if let raw = source.string("KB_BUDGET_MONTHLY_LIMIT_USD") {
            guard let value = Double(raw.trimmingCharacters(in: .whitespaces)), value.isFinite, value > 0, value <= BudgetLedger.maximumUSD else {
                throw ConfigError(key: "KB_BUDGET_MONTHLY_LIMIT_USD", "'\(raw)' is not an amount of dollars above 0 and at most \(Int(BudgetLedger.maximumUSD))")
            }
            options.defaultLimitUSD = value
        }
        if let file = source.string("KB_BUDGET_PRICES_FILE") {
            do {
                options.prices = try PriceTable.loading(file: URL(fileURLWithPath: file))
            } catch {
                throw ConfigError(key: "KB_BUDGET_PRICES_FILE", "\(error)")
            }
        }
        options.reservationTTL = .seconds(try source.integer("KB_BUDGET_RESERVATION_TTL_SECONDS", default: 300, range: 1...86_400))
        options.busyTimeout = .milliseconds(try source.integer("KB_BUDGET_BUSY_TIMEOUT_MS", default: 5000, range: 0...600_000))
        return options
    }
}
