import KBTime

/// Days and months in UTC, the budget's clock: a period is a UTC calendar month ("2026-11"), a
/// day a UTC date. The dates are `CivilDate` (KBTime): integer arithmetic, no `Calendar`, so
/// exact and cheap on the recording path.
public enum BudgetCalendar {
    /// Milliseconds in a day.
    public static let dayMilliseconds: Int64 = CivilDate.dayMilliseconds

    /// A UTC calendar date.
    public typealias Date = CivilDate

    /// Days since 1970-01-01 of the instant `ms` (floor, also for instants before 1970).
    public static func dayNumber(ms: Int64) -> Int64 { CivilDate.dayNumber(ms: ms) }

    /// The date of day number `days`.
    public static func date(dayNumber days: Int64) -> Date { CivilDate(dayNumber: days) }

    /// The day number of a date.
    public static func dayNumber(year: Int, month: Int, day: Int) -> Int64 {
        CivilDate(year: year, month: month, day: day).dayNumber
    }

    /// The date of the instant `ms`.
    public static func date(ms: Int64) -> Date { CivilDate(ms: ms) }

    /// Days in the month of `year`/`month`.
    public static func daysInMonth(year: Int, month: Int) -> Int { CivilDate.daysInMonth(year: year, month: month) }

    /// A month: its name and its bounds as day numbers and milliseconds.
    public struct Period: Hashable, Sendable {
        public var year: Int
        public var month: Int

        /// The period containing the instant `ms`.
        public init(containing ms: Int64) {
            let date = BudgetCalendar.date(ms: ms)
            year = date.year
            month = date.month
        }

        /// A period from its parts.
        public init(year: Int, month: Int) {
            self.year = year
            self.month = month
        }

        /// Parses "YYYY-MM".
        public init?(_ text: String) {
            let parts = text.split(separator: "-")
            guard parts.count == 2, parts[0].count == 4, parts[1].count == 2,
                  let year = Int(parts[0]), let month = Int(parts[1]), (1...12).contains(month) else { return nil }
            self.init(year: year, month: month)
        }

        /// "YYYY-MM".
        public var name: String { "\(pad(year, 4))-\(pad(month, 2))" }
        /// The first day.
        public var firstDay: Int64 { BudgetCalendar.dayNumber(year: year, month: month, day: 1) }
        /// The number of days.
        public var dayCount: Int { BudgetCalendar.daysInMonth(year: year, month: month) }
        /// The first day after it.
        public var endDay: Int64 { firstDay + Int64(dayCount) }
        /// Its first millisecond.
        public var startMs: Int64 { firstDay * BudgetCalendar.dayMilliseconds }
        /// The first millisecond after it.
        public var endMs: Int64 { endDay * BudgetCalendar.dayMilliseconds }
        /// The month before.
        public var previous: Period { month == 1 ? Period(year: year - 1, month: 12) : Period(year: year, month: month - 1) }
    }

    /// "YYYY-MM-DD" of day number `days`.
    public static func dayName(_ days: Int64) -> String { CivilDate(dayNumber: days).description }

    static func pad(_ value: Int, _ width: Int) -> String { CivilDate.pad(value, width) }
}
