/// Days and months in UTC, the budget's clock: a period is a UTC calendar month ("2026-11"), a
/// day a UTC date. Pure integer arithmetic (Howard Hinnant's civil-date algorithms), no
/// `Calendar`, so it is exact and cheap on the recording path.
public enum BudgetCalendar {
    /// Milliseconds in a day.
    public static let dayMilliseconds: Int64 = 86_400_000

    /// A UTC calendar date.
    public struct Date: Hashable, Sendable, Comparable {
        public var year: Int
        public var month: Int
        public var day: Int

        public static func < (lhs: Date, rhs: Date) -> Bool {
            (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
        }
    }

    /// Days since 1970-01-01 of the instant `ms` (floor, also for instants before 1970).
    public static func dayNumber(ms: Int64) -> Int64 {
        ms >= 0 ? ms / dayMilliseconds : -((-ms + dayMilliseconds - 1) / dayMilliseconds)
    }

    /// The date of day number `days`.
    public static func date(dayNumber days: Int64) -> Date {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return Date(year: Int(year), month: Int(month), day: Int(day))
    }

    /// The day number of a date.
    public static func dayNumber(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date of the instant `ms`.
    public static func date(ms: Int64) -> Date { date(dayNumber: dayNumber(ms: ms)) }

    /// Days in the month of `year`/`month`.
    public static func daysInMonth(year: Int, month: Int) -> Int {
        let next = month == 12 ? (year + 1, 1) : (year, month + 1)
        return Int(dayNumber(year: next.0, month: next.1, day: 1) - dayNumber(year: year, month: month, day: 1))
    }

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
    public static func dayName(_ days: Int64) -> String {
        let date = date(dayNumber: days)
        return "\(pad(date.year, 4))-\(pad(date.month, 2))-\(pad(date.day, 2))"
    }

    static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}
