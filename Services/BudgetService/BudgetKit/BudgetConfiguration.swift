import Foundation
import KBRuntime

/// The budget service's own configuration (README, "Configuration"): each key declared once, its
/// default taken from `BudgetLedger.Options`.
public struct BudgetConfiguration: ServiceOwnConfiguration {
    /// The budget service's keys.
    public enum Keys {
        private static let defaults = BudgetLedger.Options()

        public static let monthlyLimitUSD = ConfigKey.number(
            "KB_BUDGET_MONTHLY_LIMIT_USD", default: defaults.defaultLimitUSD, above: 0, atMost: BudgetLedger.maximumUSD, unit: "an amount of dollars",
            meaning: "the monthly limit until an operator sets one with `kb budget set-limit` (kept in the database, and it wins)"
        )
        public static let pricesFile = ConfigKey<PriceTable?>(
            "KB_BUDGET_PRICES_FILE", default: nil, documentedDefault: "unset",
            meaning: #"a JSON price table laid over the built-in one: `{"prices": [{"provider", "model", "input_per_million", "output_per_million"}], "local_providers": [...]}`; `"model": "*"` covers a provider's every model"#
        ) { path in
            do {
                return try PriceTable.loading(file: URL(fileURLWithPath: path))
            } catch {
                throw InvalidConfigValue("\(error)")
            }
        }
        public static let reservationTTLSeconds = ConfigKey.integer(
            "KB_BUDGET_RESERVATION_TTL_SECONDS", default: Int(defaults.reservationTTL.components.seconds), range: 1...Int(defaults.maximumReservationTTL.components.seconds),
            meaning: "how long an admission reservation holds when the caller names no time (a caller may ask for up to one hour; longer is refused)"
        )
        public static let maximumOpenReservationsPerCaller = ConfigKey.integer(
            "KB_BUDGET_MAX_OPEN_RESERVATIONS_PER_CALLER", default: defaults.maximumOpenReservationsPerCaller, range: 1...1_000_000,
            meaning: "how many unexpired admission reservations one client address may hold; past it `Admit` answers `RESOURCE_EXHAUSTED`"
        )
        public static let busyTimeoutMilliseconds = ConfigKey.integer(
            "KB_BUDGET_BUSY_TIMEOUT_MS", default: Int(defaults.busyTimeout.components.seconds * 1000 + defaults.busyTimeout.components.attoseconds / 1_000_000_000_000_000), range: 0...600_000,
            meaning: "how long a write waits for another process's lock on the database before failing with `UNAVAILABLE`"
        )
    }

    /// Every key in the README's order.
    public static let keys: [ConfigKeyDocumentation] = [
        Keys.monthlyLimitUSD.documentation,
        Keys.pricesFile.documentation,
        Keys.reservationTTLSeconds.documentation,
        Keys.maximumOpenReservationsPerCaller.documentation,
        Keys.busyTimeoutMilliseconds.documentation,
    ]

    /// The database file inside the service's data folder.
    public static let databaseFileName = "knowledge.db"

    /// The ledger's options as configured.
    public var options: BudgetLedger.Options

    /// Reads the keys from `source`; the error names the bad key.
    public init(source: ConfigSource, shared: ServiceConfiguration) throws {
        var options = BudgetLedger.Options()
        options.defaultLimitUSD = try source.value(of: Keys.monthlyLimitUSD)
        if let prices = try source.value(of: Keys.pricesFile) { options.prices = prices }
        options.reservationTTL = .seconds(try source.value(of: Keys.reservationTTLSeconds))
        options.maximumOpenReservationsPerCaller = try source.value(of: Keys.maximumOpenReservationsPerCaller)
        options.busyTimeout = .milliseconds(try source.value(of: Keys.busyTimeoutMilliseconds))
        self.options = options
    }
}
