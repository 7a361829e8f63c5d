import Foundation
import KBProto

/// The budget service's answers as readable text for `kb budget`.
public enum BudgetText {
    /// "$1.23", with more decimals for small amounts.
    public static func dollars(_ usd: Double) -> String {
        let magnitude = abs(usd)
        if magnitude == 0 { return "$0.00" }
        if magnitude >= 1 { return String(format: "$%.2f", usd) }
        if magnitude >= 0.01 { return String(format: "$%.4f", usd) }
        return String(format: "$%.6f", usd)
    }

    /// A whole number with thousands separators.
    public static func count(_ value: Int64) -> String {
        let digits = String(abs(value))
        var out = ""
        for (index, character) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return (value < 0 ? "-" : "") + out
    }

    /// The status block.
    public static func status(_ status: Kb_Budget_V1_BudgetStatus) -> String {
        var lines: [(String, String)] = [
            ("Period", "\(status.period) (\(status.daysRemaining) days remaining after today)"),
            ("Limit", dollars(status.limitUsd)),
            ("Spend", "\(dollars(status.spendUsd)) (\(String(format: "%.1f", status.percentage))%)"),
            ("Reserved", dollars(status.reservedUsd)),
            ("Remaining", dollars(status.remainingUsd)),
            ("Projected", "\(dollars(status.projectedSpendUsd)) by the end of the month" + (status.projectedOverageUsd > 0 ? " (overage \(dollars(status.projectedOverageUsd)))" : "")),
            ("Mode", status.mode.name),
            ("Frozen", status.frozen ? "yes" + (status.freezeReason.isEmpty ? "" : " — \(status.freezeReason)") : "no"),
        ]
        if status.mode == .blocked { lines.append(("", "paid providers are refused; local providers still run")) }
        return lines.map { $0.0.padding(toLength: 11, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n")
    }

    /// A table: a header row and rows, columns padded, numbers right-aligned.
    public static func table(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let pad = String(repeating: " ", count: max(0, widths[index] - cell.count))
                return rightAligned.contains(index) ? pad + cell : cell + pad
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        return ([line(header), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line)).joined(separator: "\n")
    }

    /// The report: totals, the four breakdowns and the daily trend with bars.
    public static func report(_ report: Kb_Budget_V1_Report, title: String) -> String {
        let from = day(report.fromMs), to = day(report.toMs - 1)
        var parts: [String] = [
            "\(title): \(from) to \(to) (UTC)",
            "Total \(dollars(report.totalCostUsd)) in \(count(report.totalRequests)) requests, \(dollars(report.averageCostUsd)) per request on average",
        ]
        for (name, rows) in [("Provider", report.byProvider), ("Model", report.byModel), ("Operation", report.byOperation), ("Project", report.byProject)] where !rows.isEmpty {
            let body = rows.map { row in
                [row.key.isEmpty ? "(none)" : row.key, dollars(row.costUsd), count(row.requests), count(row.inputTokens), count(row.outputTokens),
                 report.totalCostUsd > 0 ? String(format: "%.1f%%", row.costUsd / report.totalCostUsd * 100) : "-"]
            }
            parts.append(table([name, "Cost", "Requests", "Input tokens", "Output tokens", "Share"], body, rightAligned: [1, 2, 3, 4, 5]))
        }
        if !report.daily.isEmpty {
            let peak = report.daily.map(\.costUsd).max() ?? 0
            let body = report.daily.map { entry -> [String] in
                let bar = peak > 0 ? String(repeating: "#", count: Int((entry.costUsd / peak * 30).rounded())) : ""
                return [entry.day, dollars(entry.costUsd), count(entry.requests), bar]
            }
            parts.append(table(["Day", "Cost", "Requests", ""], body, rightAligned: [1, 2]))
        }
        return parts.joined(separator: "\n\n")
    }

    /// Events, newest first.
    public static func events(_ events: [Kb_Budget_V1_CostEvent]) -> String {
        table(["Time (UTC)", "Provider", "Model", "Operation", "Project", "In", "Out", "Cost", "Request id"], events.map { event in
            [time(event.timestampMs), event.provider, event.model, event.operation, event.project,
             count(event.inputTokens), count(event.outputTokens), dollars(event.costUsd.value), event.requestID]
        }, rightAligned: [5, 6, 7])
    }

    /// "YYYY-MM-DD" of Unix milliseconds, UTC.
    public static func day(_ ms: Int64) -> String {
        String(time(ms).prefix(10))
    }

    /// "YYYY-MM-DD HH:MM:SS" of Unix milliseconds, UTC.
    public static func time(_ ms: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// Unix milliseconds of the UTC midnight starting "YYYY-MM-DD", nil if malformed.
    public static func parseDay(_ text: String) -> Int64? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        formatter.isLenient = false
        guard text.count == 10, let date = formatter.date(from: text) else { return nil }
        return Int64(date.timeIntervalSince1970 * 1000)
    }
}
