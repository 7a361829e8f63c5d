/// A calendar date in UTC (proleptic Gregorian), converted to and from days since 1970-01-01
/// by pure integer arithmetic (Howard Hinnant's civil-date algorithms): no `Calendar`, no time
/// zone, so it is exact for every day and cheap enough for a hot path.
///
/// The one implementation of civil dates in the system: the budget's periods and days and the
/// shared-memory JSON's ISO timestamps both stand on it.
public struct CivilDate: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Milliseconds in a day.
    public static let dayMilliseconds: Int64 = 86_400_000

    public var year: Int
    /// 1 to 12.
    public var month: Int
    /// 1 to 31.
    public var day: Int

    /// A date from its parts (not checked: day 31 of a short month counts on into the next).
    public init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// The date of day number `days` (days since 1970-01-01, negative before).
    public init(dayNumber days: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        day = Int(dayOfYear - (153 * monthIndex + 2) / 5 + 1)
        month = Int(monthIndex < 10 ? monthIndex + 3 : monthIndex - 9)
        year = Int(yearOfEra + era * 400 + (month <= 2 ? 1 : 0))
    }

    /// The UTC date of the instant `ms` (Unix milliseconds).
    public init(ms: Int64) {
        self.init(dayNumber: Self.dayNumber(ms: ms))
    }

    /// Days since 1970-01-01 of this date.
    public var dayNumber: Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// Days since 1970-01-01 of the instant `ms` (floor, also for instants before 1970).
    public static func dayNumber(ms: Int64) -> Int64 {
        ms >= 0 ? ms / dayMilliseconds : -((-ms + dayMilliseconds - 1) / dayMilliseconds)
    }

    /// Days in the month of `year`/`month`.
    public static func daysInMonth(year: Int, month: Int) -> Int {
        let next = month == 12 ? CivilDate(year: year + 1, month: 1, day: 1) : CivilDate(year: year, month: month + 1, day: 1)
        return Int(next.dayNumber - CivilDate(year: year, month: month, day: 1).dayNumber)
    }

    /// "YYYY-MM-DD".
    public var description: String { "\(Self.pad(year, 4))-\(Self.pad(month, 2))-\(Self.pad(day, 2))" }

    public static func < (lhs: CivilDate, rhs: CivilDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// `value` in decimal, zero-padded to `width` digits.
    public static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}
