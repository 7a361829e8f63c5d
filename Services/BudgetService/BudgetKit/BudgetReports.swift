import Foundation
import GRDB
import KBProto
import KBRPC

extension BudgetLedger {
    /// The longest custom report range.
    static let maximumReportDays: Int64 = 3700

    /// The cost dashboard's figures for a day, a week (the last seven days), the current month or
    /// a custom range `[from_ms, to_ms)`: totals, by provider / model / operation / project, the
    /// daily trend (every day of the range, zeros included) and the average cost per request.
    /// Whole days come from the daily totals, whole hours from the hourly ones; only the partial
    /// hours at the ends of a custom range read events.
    public func report(_ request: Kb_Budget_V1_GetReportRequest) throws -> Kb_Budget_V1_Report {
        let now = options.clock()
        let day = BudgetCalendar.dayMilliseconds
        let today = BudgetCalendar.dayNumber(ms: now)
        let from: Int64, to: Int64
        switch request.period {
        case .day:
            (from, to) = (today * day, (today + 1) * day)
        case .week:
            (from, to) = ((today - 6) * day, (today + 1) * day)
        case .month:
            let period = BudgetCalendar.Period(containing: now)
            (from, to) = (period.startMs, period.endMs)
        case .custom:
            guard request.fromMs > 0 else { throw RPCError.invalidArgument(field: "from_ms", reason: .required, "is required for a custom range") }
            guard request.toMs > request.fromMs else {
                throw RPCError.invalidArgument(field: "to_ms", reason: .inconsistent, "must be after from_ms (found \(request.toMs) ≤ \(request.fromMs))")
            }
            guard (request.toMs - request.fromMs) / day <= Self.maximumReportDays else {
                throw RPCError.invalidArgument(field: "to_ms", reason: .outOfRange, "a range may span at most \(Self.maximumReportDays) days")
            }
            (from, to) = (request.fromMs, request.toMs)
        case .UNRECOGNIZED(let value):
            throw RPCError.invalidArgument(field: "period", reason: .unknownValue, "unknown period \(value)")
        }
        let project = request.project.isEmpty ? nil : request.project
        let rows = try store.read { db in try Self.rows(db, from: from, to: to, project: project) }
        return Self.report(rows: rows, from: from, to: to)
    }

    /// The aggregate rows of `[from, to)`: whole days from the daily totals, whole hours of the
    /// partial days from the hourly totals, and only the partial hours at the ends from events.
    static func rows(_ db: GRDB.Database, from: Int64, to: Int64, project: String?) throws -> [LedgerQueries.AggregateRow] {
        let hour: Int64 = 3_600_000, day = BudgetCalendar.dayMilliseconds
        let firstHour = (from + hour - 1) / hour, endHour = to / hour
        guard firstHour < endHour else {
            return try LedgerQueries.eventRows(db, fromMs: from, toMs: to, project: project)
        }
        var rows = try LedgerQueries.eventRows(db, fromMs: from, toMs: firstHour * hour, project: project)
            + LedgerQueries.eventRows(db, fromMs: endHour * hour, toMs: to, project: project)
        let firstDay = (firstHour * hour + day - 1) / day, endDay = endHour * hour / day
        if firstDay < endDay {
            rows += try LedgerQueries.hourlyRows(db, fromHour: firstHour, toHour: firstDay * 24, project: project)
                + LedgerQueries.dailyRows(db, fromDay: firstDay, toDay: endDay, project: project)
                + LedgerQueries.hourlyRows(db, fromHour: endDay * 24, toHour: endHour, project: project)
        } else {
            rows += try LedgerQueries.hourlyRows(db, fromHour: firstHour, toHour: endHour, project: project)
        }
        return rows
    }

    /// Folds aggregate rows into a report.
    static func report(rows: [LedgerQueries.AggregateRow], from: Int64, to: Int64) -> Kb_Budget_V1_Report {
        struct Sum { var cost: Int64 = 0; var requests: Int64 = 0; var input: Int64 = 0; var output: Int64 = 0 }
        var total = Sum()
        var byProvider: [String: Sum] = [:], byModel: [String: Sum] = [:], byOperation: [String: Sum] = [:], byProject: [String: Sum] = [:]
        var byDay: [Int64: Sum] = [:]
        func add(_ sum: inout Sum, _ row: LedgerQueries.AggregateRow) {
            sum.cost += row.costNanos
            sum.requests += row.requests
            sum.input += row.inputTokens
            sum.output += row.outputTokens
        }
        for row in rows {
            add(&total, row)
            add(&byProvider[row.provider, default: Sum()], row)
            add(&byModel[row.provider + "/" + row.model, default: Sum()], row)
            add(&byOperation[row.operation, default: Sum()], row)
            add(&byProject[row.project, default: Sum()], row)
            add(&byDay[row.day, default: Sum()], row)
        }
        func breakdown(_ sums: [String: Sum]) -> [Kb_Budget_V1_Breakdown] {
            sums.sorted { ($0.value.cost, $1.key) > ($1.value.cost, $0.key) }.map { key, sum in
                var entry = Kb_Budget_V1_Breakdown()
                entry.key = key
                entry.costUsd = Nanos.usd(sum.cost)
                entry.requests = sum.requests
                entry.inputTokens = sum.input
                entry.outputTokens = sum.output
                return entry
            }
        }
        var report = Kb_Budget_V1_Report()
        report.fromMs = from
        report.toMs = to
        report.totalCostUsd = Nanos.usd(total.cost)
        report.totalRequests = total.requests
        report.averageCostUsd = total.requests > 0 ? Nanos.usd(total.cost) / Double(total.requests) : 0
        report.byProvider = breakdown(byProvider)
        report.byModel = breakdown(byModel)
        report.byOperation = breakdown(byOperation)
        report.byProject = breakdown(byProject)
        let firstDay = BudgetCalendar.dayNumber(ms: from)
        let lastDay = BudgetCalendar.dayNumber(ms: to - 1)
        if firstDay <= lastDay {
            report.daily = (firstDay...lastDay).map { day in
                var entry = Kb_Budget_V1_DailyCost()
                entry.day = BudgetCalendar.dayName(day)
                entry.costUsd = Nanos.usd(byDay[day]?.cost ?? 0)
                entry.requests = byDay[day]?.requests ?? 0
                return entry
            }
        }
        return report
    }
}
