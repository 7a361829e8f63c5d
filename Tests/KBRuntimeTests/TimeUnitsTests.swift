import KBTime
import Testing

@Suite("Civil dates and duration units")
struct TimeUnitsTests {
    @Test("civil dates match known days, round-trip over four centuries, and floor instants before 1970")
    func civilDates() {
        #expect(CivilDate(dayNumber: 0) == CivilDate(year: 1970, month: 1, day: 1))
        #expect(CivilDate(year: 2000, month: 3, day: 1).dayNumber == 11_017)
        #expect(CivilDate(ms: 1_709_164_800_000).description == "2024-02-29")
        #expect(CivilDate(ms: -1) == CivilDate(year: 1969, month: 12, day: 31))
        #expect(CivilDate.dayNumber(ms: -CivilDate.dayMilliseconds) == -1)
        #expect(CivilDate.daysInMonth(year: 2024, month: 2) == 29 && CivilDate.daysInMonth(year: 2100, month: 2) == 28)
        var previous = CivilDate(dayNumber: -1)
        var broken: [Int64] = []
        for day in Int64(0)..<146_097 {
            let date = CivilDate(dayNumber: day)
            if date.dayNumber != day || !(previous < date) { broken.append(day) }
            previous = date
        }
        #expect(broken.isEmpty)
    }

    @Test("durations convert to whole nanoseconds and milliseconds and to seconds, saturating instead of trapping")
    func durations() {
        let duration = Duration.seconds(2) + .microseconds(1500)
        #expect(duration.inNanoseconds == 2_001_500_000)
        #expect(duration.inMilliseconds == 2001)
        #expect(abs(duration.inSeconds - 2.0015) < 1e-12)
        #expect(Duration.seconds(Int64.max).inNanoseconds == .max)
    }
}
