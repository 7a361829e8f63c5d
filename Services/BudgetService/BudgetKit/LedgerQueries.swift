import Foundation
import GRDB

/// The ledger's read queries: events by request id, event listing with filters and cursors, and
/// the aggregate rows reports are built from.
enum LedgerQueries {
    static let eventColumns = "id, request_id, created_at_ms, provider, model, operation, project, input_tokens, output_tokens, cost_nanos, latency_ms"

    static func event(_ row: Row) -> LedgerEvent {
        LedgerEvent(
            id: row[0], requestId: row[1], createdAtMs: row[2], provider: row[3], model: row[4],
            operation: row[5], project: row[6], inputTokens: row[7], outputTokens: row[8],
            costNanos: row[9], latencyMs: row[10]
        )
    }

    static func event(_ db: Database, requestId: String) throws -> LedgerEvent? {
        for table in ["cost_events", "cost_archive"] {
            if let row = try Row.fetchOne(db, sql: "SELECT \(eventColumns) FROM \(table) WHERE request_id = ?", arguments: [requestId]) {
                return event(row)
            }
        }
        return nil
    }

    /// Filters of an event listing.
    struct EventFilter {
        var fromMs: Int64?
        var toMs: Int64?
        var provider: String?
        var model: String?
        var operation: String?
        var project: String?
        /// Rows strictly after this (created_at_ms, id) in newest-first order.
        var after: (ms: Int64, id: Int64)?
    }

    /// Newest first, from both tables, at most `limit`.
    static func events(_ db: Database, filter: EventFilter, limit: Int) throws -> [LedgerEvent] {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        if let from = filter.fromMs { clauses.append("created_at_ms >= ?"); arguments += [from] }
        if let to = filter.toMs { clauses.append("created_at_ms < ?"); arguments += [to] }
        for (column, value) in [("provider", filter.provider), ("model", filter.model), ("operation", filter.operation), ("project", filter.project)] {
            if let value { clauses.append("\(column) = ?"); arguments += [value] }
        }
        if let after = filter.after {
            clauses.append("(created_at_ms < ? OR (created_at_ms = ? AND id < ?))")
            arguments += [after.ms, after.ms, after.id]
        }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        var merged: [LedgerEvent] = []
        for table in ["cost_events", "cost_archive"] {
            let rows = try Row.fetchAll(db, sql: "SELECT \(eventColumns) FROM \(table) \(whereClause) ORDER BY created_at_ms DESC, id DESC LIMIT ?", arguments: arguments + [limit])
            merged += rows.map(event)
        }
        merged.sort { ($0.createdAtMs, $0.id) > ($1.createdAtMs, $1.id) }
        return Array(merged.prefix(limit))
    }

    /// One aggregate row: a day and the four dimensions, with their sums.
    struct AggregateRow {
        var day: Int64
        var provider: String
        var model: String
        var operation: String
        var project: String
        var requests: Int64
        var inputTokens: Int64
        var outputTokens: Int64
        var costNanos: Int64
    }

    /// Aggregates of whole days `[fromDay, toDay)` from the daily totals.
    static func dailyRows(_ db: Database, fromDay: Int64, toDay: Int64, project: String?) throws -> [AggregateRow] {
        guard fromDay < toDay else { return [] }
        var sql = "SELECT day, provider, model, operation, project, requests, input_tokens, output_tokens, cost_nanos FROM cost_daily WHERE day >= ? AND day < ?"
        var arguments: StatementArguments = [fromDay, toDay]
        if let project { sql += " AND project = ?"; arguments += [project] }
        return try Row.fetchAll(db, sql: sql, arguments: arguments).map(aggregate)
    }

    /// Aggregates of whole hours `[fromHour, toHour)` from the hourly totals (`day` is the hour's day).
    static func hourlyRows(_ db: Database, fromHour: Int64, toHour: Int64, project: String?) throws -> [AggregateRow] {
        guard fromHour < toHour else { return [] }
        var sql = "SELECT hour / 24, provider, model, operation, project, requests, input_tokens, output_tokens, cost_nanos FROM cost_hourly WHERE hour >= ? AND hour < ?"
        var arguments: StatementArguments = [fromHour, toHour]
        if let project { sql += " AND project = ?"; arguments += [project] }
        return try Row.fetchAll(db, sql: sql, arguments: arguments).map(aggregate)
    }

    /// Aggregates of the events in `[fromMs, toMs)` read from the events themselves (for the
    /// partial hours at the ends of a custom range).
    static func eventRows(_ db: Database, fromMs: Int64, toMs: Int64, project: String?) throws -> [AggregateRow] {
        guard fromMs < toMs else { return [] }
        var rows: [AggregateRow] = []
        for table in ["cost_events", "cost_archive"] {
            var sql = """
                SELECT created_at_ms / 86400000, provider, model, operation, project, count(*), sum(input_tokens), sum(output_tokens), sum(cost_nanos)
                FROM \(table) WHERE created_at_ms >= ? AND created_at_ms < ?
                """
            var arguments: StatementArguments = [fromMs, toMs]
            if let project { sql += " AND project = ?"; arguments += [project] }
            sql += " GROUP BY 1, 2, 3, 4, 5"
            rows += try Row.fetchAll(db, sql: sql, arguments: arguments).map(aggregate)
        }
        return rows
    }

    private static func aggregate(_ row: Row) -> AggregateRow {
        AggregateRow(day: row[0], provider: row[1], model: row[2], operation: row[3], project: row[4],
                     requests: row[5], inputTokens: row[6], outputTokens: row[7], costNanos: row[8])
    }

    /// Problems where the daily or hourly totals disagree with the events they sum.
    static func totalProblems(_ db: Database) throws -> [String] {
        try totalProblems(db, table: "cost_daily", bucket: "day", milliseconds: BudgetCalendar.dayMilliseconds)
            + totalProblems(db, table: "cost_hourly", bucket: "hour", milliseconds: 3_600_000)
    }

    private static func totalProblems(_ db: Database, table: String, bucket: String, milliseconds: Int64) throws -> [String] {
        let sql = """
            WITH events AS (
                SELECT created_at_ms, provider, model, operation, project, input_tokens, output_tokens, cost_nanos FROM cost_events
                UNION ALL
                SELECT created_at_ms, provider, model, operation, project, input_tokens, output_tokens, cost_nanos FROM cost_archive
            ), sums AS (
                SELECT created_at_ms / \(milliseconds) AS \(bucket), provider, model, operation, project,
                       count(*) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cost_nanos) AS cost_nanos
                FROM events GROUP BY 1, 2, 3, 4, 5
            )
            SELECT s.\(bucket), s.provider, s.model, s.operation, s.project, s.requests, d.requests, s.cost_nanos, d.cost_nanos
            FROM sums s LEFT JOIN \(table) d USING (\(bucket), provider, model, operation, project)
            WHERE d.requests IS NULL OR d.requests != s.requests OR d.cost_nanos != s.cost_nanos
               OR d.input_tokens != s.input_tokens OR d.output_tokens != s.output_tokens
            UNION ALL
            SELECT d.\(bucket), d.provider, d.model, d.operation, d.project, NULL, d.requests, NULL, d.cost_nanos
            FROM \(table) d LEFT JOIN sums s USING (\(bucket), provider, model, operation, project)
            WHERE s.requests IS NULL
            LIMIT 20
            """
        return try Row.fetchAll(db, sql: sql).map { row in
            let value: Int64 = row[0]
            let day = value * milliseconds / BudgetCalendar.dayMilliseconds
            let hour = bucket == "hour" ? String(format: " %02d:00", Int(value % 24)) : ""
            let events: Int64? = row[5]
            let totals: Int64? = row[6]
            return "\(bucket == "hour" ? "hourly" : "daily") totals of \(BudgetCalendar.dayName(day))\(hour) \(row[1] as String)/\(row[2] as String)/\(row[3] as String)/\(row[4] as String): events say \(events.map(String.init) ?? "nothing") requests, totals say \(totals.map(String.init) ?? "nothing")"
        }
    }
}
