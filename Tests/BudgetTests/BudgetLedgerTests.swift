import BudgetKit
import Foundation
import GRDB
import KBProto
import KBRPC
import KBSQLite
import KBTestSupport
import Testing

@Suite("budget ledger on a real SQLite file")
struct BudgetLedgerTests {
    @Test("prices: computed per million tokens, local providers free, unknown paid models refused")
    func prices() async throws {
        try await withLedger { ledger, _ in
            // groq llama-3.3-70b: $0.59 in / $0.79 out per million tokens.
            let groq = try await ledger.record(costEvent("a", provider: "groq", model: "llama-3.3-70b-versatile", input: 1_000_000, output: 1_000_000))
            #expect(abs(groq.event.costUsd.value - 1.38) < 1e-9)
            let mini = try await ledger.record(costEvent("b", provider: "OpenAI", model: "gpt-4o-mini", input: 2000, output: 1000))
            #expect(abs(mini.event.costUsd.value - (2000 * 0.15 + 1000 * 0.60) / 1e6) < 1e-12)
            #expect(mini.event.provider == "openai")
            let local = try await ledger.record(costEvent("c", provider: "ollama", model: "llama3.2:3b", input: 50_000, output: 50_000))
            #expect(local.event.costUsd.value == 0)
            // An explicit cost wins over the table, and is needed for a model the table lacks.
            let given = try await ledger.record(costEvent("d", provider: "openai", model: "gpt-9-hypothetical", usd: 0.25))
            #expect(given.event.costUsd.value == 0.25)
            let unknown = await rpcError { try await ledger.record(costEvent("e", provider: "openai", model: "gpt-9-hypothetical")) }
            #expect(unknown?.code == .invalidArgument)
            #expect(unknown?.message.contains("event.model: no price for model 'gpt-9-hypothetical'") == true)
            #expect(Nanos.from(usd: ledger.status().spendUsd) == 1_380_000_000 + 900_000 + 250_000_000)
            #expect(try ledger.store.counts().events == 4)
        }
    }

    @Test("a price file adds models and local providers; a bad one is refused with its path")
    func priceFile() throws {
        let folder = temporaryDirectory("prices")
        let file = folder.appendingPathComponent("prices.json")
        try Data(#"{"prices": [{"provider": "acme", "model": "*", "input_per_million": 1, "output_per_million": 2}], "local_providers": ["gpu-box"]}"#.utf8).write(to: file)
        let table = try PriceTable.loading(file: file)
        #expect(table.costNanos(provider: "acme", model: "anything", inputTokens: 1_000_000, outputTokens: 1_000_000) == 3_000_000_000)
        #expect(table.isLocal(provider: "gpu-box"))
        #expect(table.costNanos(provider: "groq", model: "llama-3.1-8b-instant", inputTokens: 1_000_000, outputTokens: 0) == 50_000_000)
        try Data(#"{"prices": [{"provider": "acme", "model": "x", "input_per_million": -1, "output_per_million": 2}]}"#.utf8).write(to: file)
        #expect(throws: PriceTable.Error.self) { try PriceTable.loading(file: file) }
        try Data("not json".utf8).write(to: file)
        do {
            _ = try PriceTable.loading(file: file)
            Issue.record("a malformed price file was accepted")
        } catch {
            #expect("\(error)".contains(file.path))
        }
    }

    @Test("recording is idempotent by request id, batches are atomic and checked first")
    func idempotentRecording() async throws {
        try await withLedger { ledger, _ in
            let first = try await ledger.record(costEvent("req-1", usd: 0.5))
            #expect(!first.duplicate)
            let again = try await ledger.record(costEvent("req-1", usd: 0.9))
            #expect(again.duplicate)
            #expect(again.event.costUsd.value == 0.5, "the stored event is returned, not the retry")
            #expect(ledger.status().spendUsd == 0.5)

            let batch = try await ledger.recordCosts(.with {
                $0.events = [costEvent("req-1", usd: 0.5), costEvent("req-2", usd: 0.25), costEvent("req-2", usd: 0.25), costEvent("req-3", usd: 0.25)]
            })
            #expect(batch.recorded == 2)
            #expect(batch.duplicates == 2)
            #expect(ledger.status().spendUsd == 1.0)

            // One bad event: nothing of the batch is written.
            let bad = await rpcError {
                _ = try await ledger.recordCosts(.with { $0.events = [costEvent("req-4", usd: 1), costEvent("req-5", usd: .nan)] })
            }
            #expect(bad?.code == .invalidArgument)
            #expect(bad?.message.hasPrefix("events[1].cost_usd:") == true)
            #expect(bad?.field == "events[1].cost_usd" && bad?.reason == .outOfRange, "the field and reason travel structured too")
            for (event, field, reason) in [(costEvent("", usd: 1), "event.request_id", RPCError.Reason.required), (costEvent("x", provider: "", usd: 1), "event.provider", .required),
                                           (costEvent("x", usd: 1, input: -1), "event.input_tokens", .outOfRange), (costEvent("x", usd: -2), "event.cost_usd", .outOfRange),
                                           (costEvent("x", usd: .infinity), "event.cost_usd", .outOfRange), (costEvent("x", usd: 1, at: 5), "event.timestamp_ms", .outOfRange),
                                           (costEvent("x\u{0}y", usd: 1), "event.request_id", .invalidFormat)] {
                let error = await rpcError { try await ledger.record(event) }
                #expect(error?.code == .invalidArgument && error?.message.hasPrefix(field) == true, "\(field): \(String(describing: error))")
                #expect(error?.field == field && error?.reason == reason, "\(field): \(String(describing: error?.reason))")
            }
            let tooMany = await rpcError {
                _ = try await ledger.recordCosts(.with { $0.events = (0...BudgetLedger.maximumBatch).map { costEvent("many-\($0)", usd: 0.001) } })
            }
            #expect(tooMany?.code == .invalidArgument && tooMany?.message.hasPrefix("events: at most 10000") == true)
            #expect(tooMany?.field == "events" && tooMany?.reason == .tooMany)
            #expect(try ledger.store.counts().events == 3)
            #expect(ledger.status().spendUsd == 1.0)
        }
    }

    @Test("modes change exactly at 80%, 90% and 100%")
    func thresholds() async throws {
        try await withLedger(limit: 10) { ledger, _ in
            func check(_ mode: Kb_Budget_V1_RoutingMode, _ decision: Kb_Budget_V1_AdmitResponse.Decision, _ note: String) throws {
                #expect(ledger.status().mode == mode, "\(note): status mode")
                let admission = try ledger.admit(estimate: 0)
                #expect(admission.decision == decision, "\(note): \(admission.reason)")
            }
            try await ledger.record(costEvent("a", usd: 7.999_999_999))
            try check(.normal, .allow, "just under 80%")
            try await ledger.record(costEvent("b", usd: 0.000_000_001))
            #expect(ledger.status().percentage == 80)
            try check(.preferLocal, .preferLocal, "exactly 80%")
            try await ledger.record(costEvent("c", usd: 0.999_999_999))
            try check(.preferLocal, .preferLocal, "just under 90%")
            try await ledger.record(costEvent("d", usd: 0.000_000_001))
            try check(.localOnly, .deny, "exactly 90%")
            #expect(try ledger.admit(estimate: 0.01).reason.contains("local-only"))
            try await ledger.record(costEvent("e", usd: 0.999_999_999))
            try check(.localOnly, .deny, "just under 100%")
            try await ledger.record(costEvent("f", usd: 0.000_000_001))
            try check(.blocked, .deny, "exactly 100%")
            #expect(ledger.status().remainingUsd == 0)

            // Local calls are never blocked, also over the limit and while frozen.
            let local = try ledger.admit(provider: "local", estimate: 0)
            #expect(local.decision == .allow)
            try await ledger.record(costEvent("g", provider: "ollama", model: "qwen2.5", input: 10_000, output: 10_000))
            _ = try await ledger.setLimit(.with { $0.limitUsd = 100 })
            try check(.normal, .allow, "after raising the limit")
            _ = try await ledger.freeze(.with { $0.reason = "cost spike" })
            #expect(ledger.status().mode == .blocked)
            #expect(ledger.status().freezeReason == "cost spike")
            let frozen = try ledger.admit(estimate: 0.01)
            #expect(frozen.decision == .deny && frozen.reason.contains("frozen") && frozen.reason.contains("cost spike"))
            #expect(try ledger.admit(provider: "ollama", estimate: 0).decision == .allow)
            _ = try await ledger.unfreeze()
            try check(.normal, .allow, "after unfreeze")
        }
    }

    @Test("limit and freeze survive a reopen; the configured default does not override a set limit")
    func settingsPersist() async throws {
        let path = temporaryDirectory("budget-settings").appendingPathComponent("knowledge.db").path
        try await withLedger(limit: 5, path: path) { ledger, _ in
            _ = try await ledger.setLimit(.with { $0.limitUsd = 42 })
            _ = try await ledger.freeze(.with { $0.reason = "incident 7" })
            try await ledger.record(costEvent("a", usd: 1.5))
        }
        try await withLedger(limit: 5, path: path) { ledger, _ in
            let status = ledger.status()
            #expect(status.limitUsd == 42)
            #expect(status.frozen && status.freezeReason == "incident 7")
            #expect(status.spendUsd == 1.5)
            let invalid = await rpcError { _ = try await ledger.setLimit(.with { $0.limitUsd = -1 }) }
            #expect(invalid?.code == .invalidArgument && invalid?.message.hasPrefix("limit_usd") == true)
        }
    }

    @Test("admission holds reservations: concurrent callers never pass the limit; reservations settle, release and expire")
    func reservations() async throws {
        try await withLedger(limit: 10) { ledger, clock in
            try await ledger.record(costEvent("spent", usd: 6))
            // 64 concurrent callers, $1.50 each, $4 left: exactly two fit ($9 committed = 90%).
            let decisions = try await withThrowingTaskGroup(of: Kb_Budget_V1_AdmitResponse.self) { group in
                for index in 0..<64 {
                    group.addTask { try ledger.admit(estimate: 1.5, requestId: "call-\(index)") }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let admitted = decisions.filter { $0.decision != .deny }
            #expect(admitted.count == 2)
            #expect(ledger.status().reservedUsd == 3)
            #expect(decisions.filter { $0.decision == .deny }.allSatisfy { !$0.reason.isEmpty })

            #expect(admitted.allSatisfy { !$0.reservationID.isEmpty && $0.expiresAtMs == utc(2026, 11, 15, 12) + 300_000 })
            // Releasing a reservation (the call was not made) frees its estimate.
            let released = try ledger.release(.with { $0.reservationID = admitted[1].reservationID })
            #expect(released.released)
            #expect(try !ledger.release(.with { $0.reservationID = admitted[1].reservationID }).released)
            #expect(ledger.status().reservedUsd == 1.5)

            let named = try ledger.admit(estimate: 1, requestId: "named", ttlMs: 60_000)
            #expect(named.decision != .deny)
            #expect(ledger.status().reservedUsd == 2.5)
            try await ledger.record(costEvent("named", usd: 0.8))
            #expect(ledger.status().reservedUsd == 1.5, "recording 'named' settled its reservation")
            #expect(abs(ledger.status().spendUsd - 6.8) < 1e-9)

            // The remaining reservation expires after its time (default 5 minutes).
            clock.advance(299_000)
            #expect(ledger.status().reservedUsd == 1.5)
            clock.advance(2_000)
            #expect(ledger.status().reservedUsd == 0)
            #expect(try ledger.admit(estimate: 2.2).decision != .deny)
            #expect(try ledger.admit(estimate: 1).decision == .deny, "$6.80 + $2.20 reserved = 90%: local only")

            let badTTL = await rpcError { _ = try ledger.admit(estimate: 1, ttlMs: -5) }
            #expect(badTTL?.code == .invalidArgument)
            let badEstimate = await rpcError { _ = try ledger.admit(estimate: .nan) }
            #expect(badEstimate?.message.hasPrefix("estimated_cost_usd") == true)
        }
    }

    @Test("an estimate larger than what remains is refused even in normal mode")
    func estimateOverLimit() async throws {
        try await withLedger(limit: 1) { ledger, _ in
            try await ledger.record(costEvent("a", usd: 0.5))
            let big = try ledger.admit(estimate: 0.6)
            #expect(big.decision == .deny)
            #expect(big.reason.contains("would exceed"))
            #expect(try ledger.admit(estimate: 0.25).decision == .allow)
            #expect(try ledger.admit(estimate: 0.06).decision == .allow, "75% committed before it: normal")
            #expect(try ledger.admit(estimate: 0.01).decision == .preferLocal, "81% committed before it")
        }
    }

    @Test("status projects the month's end from the last seven days")
    func projection() async throws {
        try await withLedger(limit: 10, now: utc(2026, 11, 10, 18)) { ledger, _ in
            // Nov 1–3 (outside the window): $1 each; Nov 4–10: $0.50 each.
            for day in 1...3 { try await ledger.record(costEvent("old-\(day)", usd: 1, at: utc(2026, 11, day, 9))) }
            for day in 4...10 { try await ledger.record(costEvent("new-\(day)", usd: 0.5, at: utc(2026, 11, day, 9))) }
            try await ledger.record(costEvent("october", usd: 3, at: utc(2026, 10, 31, 23, 59)))
            let status = ledger.status()
            #expect(status.period == "2026-11")
            #expect(status.spendUsd == 6.5)
            #expect(status.daysRemaining == 20)
            #expect(abs(status.projectedSpendUsd - (6.5 + 0.5 * 20)) < 1e-9)
            #expect(abs(status.projectedOverageUsd - 6.5) < 1e-9)
        }
        // Early in a month the window is the days so far.
        try await withLedger(limit: 10, now: utc(2026, 12, 2, 1)) { ledger, _ in
            try await ledger.record(costEvent("a", usd: 1, at: utc(2026, 12, 1, 5)))
            try await ledger.record(costEvent("b", usd: 0.5, at: utc(2026, 11, 30, 5)))
            let status = ledger.status()
            #expect(status.spendUsd == 1)
            #expect(status.daysRemaining == 29)
            #expect(abs(status.projectedSpendUsd - (1 + 0.5 * 29)) < 1e-9)
        }
    }

    @Test("the month rolls over by the clock: a new month starts from zero")
    func rollover() async throws {
        try await withLedger(limit: 10, now: utc(2026, 11, 30, 23, 58)) { ledger, clock in
            try await ledger.record(costEvent("late-november", usd: 9.5))
            #expect(ledger.status().mode == .localOnly)
            clock.advance(5 * 60_000)
            let status = ledger.status()
            #expect(status.period == "2026-12")
            #expect(status.spendUsd == 0)
            #expect(status.mode == .normal)
        }
    }

    @Test("monthly reset archives exactly the finished month (and older stragglers), is idempotent, keeps reports")
    func monthlyReset() async throws {
        try await withLedger(limit: 10, now: utc(2026, 11, 2, 8)) { ledger, _ in
            for index in 0..<30 { try await ledger.record(costEvent("oct-\(index)", usd: 0.1, at: utc(2026, 10, 1 + index, 12))) }
            try await ledger.record(costEvent("sep", usd: 0.7, at: utc(2026, 9, 15)))
            try await ledger.record(costEvent("oct-last-ms", usd: 0.2, at: utc(2026, 11, 1) - 1))
            try await ledger.record(costEvent("nov-first-ms", usd: 0.3, at: utc(2026, 11, 1)))
            try await ledger.record(costEvent("nov", usd: 0.4))
            let octoberBefore = try ledger.report(.with { $0.period = .custom; $0.fromMs = utc(2026, 10, 1); $0.toMs = utc(2026, 11, 1) })

            let reset = try await ledger.resetPeriod()
            #expect(reset.archivedPeriod == "2026-10")
            #expect(reset.archivedEvents == 32)
            #expect(!reset.alreadyDone)
            #expect(try ledger.store.counts() == (events: 2, archived: 32))
            #expect(reset.status.spendUsd == 0.7)
            let archivedPeriods = try ledger.store.read { db in try String.fetchAll(db, sql: "SELECT period FROM cost_archive GROUP BY period ORDER BY period") }
            #expect(archivedPeriods == ["2026-09", "2026-10"])

            let again = try await ledger.resetPeriod()
            #expect(again.alreadyDone)
            #expect(again.archivedEvents == 0)
            #expect(try ledger.store.counts() == (events: 2, archived: 32))

            // A late October event goes straight to the archive; a retried archived id stays one event.
            try await ledger.record(costEvent("oct-late", usd: 0.05, at: utc(2026, 10, 20)))
            #expect(try await ledger.record(costEvent("oct-3", usd: 0.1, at: utc(2026, 10, 4, 12))).duplicate)
            #expect(try ledger.store.counts() == (events: 2, archived: 33))
            let octoberAfter = try ledger.report(.with { $0.period = .custom; $0.fromMs = utc(2026, 10, 1); $0.toMs = utc(2026, 11, 1) })
            #expect(octoberAfter.totalRequests == octoberBefore.totalRequests + 1)
            #expect(abs(octoberAfter.totalCostUsd - octoberBefore.totalCostUsd - 0.05) < 1e-9)
            let third = try await ledger.resetPeriod()
            #expect(third.alreadyDone)
            #expect(try ledger.verify().ok)
        }
    }

    @Test("reports agree with a brute-force sum over the events, for whole and partial days")
    func reportsAgreeWithBruteForce() async throws {
        var random = SeededGenerator(state: 20261121)
        let now = utc(2026, 11, 21, 15, 30)
        try await withLedger(limit: 1000, now: now) { ledger, _ in
            let providers = [("openai", "gpt-4o-mini"), ("groq", "llama-3.1-8b-instant"), ("anthropic", "claude-3-5-haiku-latest"), ("gemini", "gemini-2.0-flash"), ("ollama", "llama3")]
            var events: [Kb_Budget_V1_CostEvent] = []
            for index in 0..<3000 {
                let (provider, model) = providers[Int.random(in: 0..<providers.count, using: &random)]
                let at = utc(2026, 9, 20) + Int64.random(in: 0..<(now - utc(2026, 9, 20)), using: &random)
                var event = costEvent("r\(index)", provider: provider, model: model,
                                      input: Int64.random(in: 0...20_000, using: &random), output: Int64.random(in: 0...4000, using: &random),
                                      operation: ["extract", "embed", "classify"][index % 3], project: ["coding", "ops", "web", ""][index % 4], at: at)
                if index % 7 == 0 { event.costUsd = .with { $0.value = Double(Int.random(in: 1...5000, using: &random)) / 10_000 } }
                events.append(event)
            }
            for chunk in stride(from: 0, to: events.count, by: 500) {
                _ = try await ledger.recordCosts(.with { $0.events = Array(events[chunk..<min(chunk + 500, events.count)]) })
            }
            let stored = try ledger.store.read { db in
                try Row.fetchAll(db, sql: "SELECT created_at_ms, provider, model, operation, project, cost_nanos, input_tokens FROM cost_events")
            }
            #expect(stored.count == 3000)

            func bruteForce(_ from: Int64, _ to: Int64, project: String? = nil) -> (nanos: Int64, count: Int64, byProvider: [String: Int64], byDay: [String: Int64]) {
                var total: Int64 = 0, count: Int64 = 0
                var byProvider: [String: Int64] = [:], byDay: [String: Int64] = [:]
                for row in stored {
                    let at: Int64 = row[0]
                    guard at >= from, at < to, project == nil || (row[4] as String) == project else { continue }
                    let nanos: Int64 = row[5]
                    total += nanos
                    count += 1
                    byProvider[row[1], default: 0] += nanos
                    byDay[BudgetCalendar.dayName(BudgetCalendar.dayNumber(ms: at)), default: 0] += nanos
                }
                return (total, count, byProvider, byDay)
            }
            func check(_ request: Kb_Budget_V1_GetReportRequest, _ from: Int64, _ to: Int64, project: String? = nil) throws {
                let report = try ledger.report(request)
                let expected = bruteForce(from, to, project: project)
                #expect(report.fromMs == from && report.toMs == to)
                #expect(Nanos.from(usd: report.totalCostUsd) == expected.nanos, "total of \(request.period)")
                #expect(report.totalRequests == expected.count)
                #expect(Dictionary(uniqueKeysWithValues: report.byProvider.map { ($0.key, Nanos.from(usd: $0.costUsd)) }) == expected.byProvider)
                let days = Dictionary(uniqueKeysWithValues: report.daily.filter { $0.requests > 0 }.map { ($0.day, Nanos.from(usd: $0.costUsd)) })
                #expect(days == expected.byDay)
                #expect(report.byModel.map(\.requests).reduce(0, +) == expected.count)
                #expect(report.byOperation.map(\.requests).reduce(0, +) == expected.count)
                #expect(report.byProject.map(\.requests).reduce(0, +) == expected.count)
                if expected.count > 0 {
                    #expect(abs(report.averageCostUsd - Nanos.usd(expected.nanos) / Double(expected.count)) < 1e-12)
                }
            }
            try check(.with { $0.period = .month }, utc(2026, 11, 1), utc(2026, 12, 1))
            try check(.with { $0.period = .day }, utc(2026, 11, 21), utc(2026, 11, 22))
            try check(.with { $0.period = .week }, utc(2026, 11, 15), utc(2026, 11, 22))
            try check(.with { $0.period = .month; $0.project = "ops" }, utc(2026, 11, 1), utc(2026, 12, 1), project: "ops")
            for _ in 0..<12 {
                let a = utc(2026, 9, 15) + Int64.random(in: 0..<(70 * 86_400_000), using: &random)
                let b = a + Int64.random(in: 1..<(20 * 86_400_000), using: &random)
                try check(.with { $0.period = .custom; $0.fromMs = a; $0.toMs = b }, a, b)
            }
            try check(.with { $0.period = .custom; $0.fromMs = utc(2026, 10, 3, 5); $0.toMs = utc(2026, 10, 3, 6) }, utc(2026, 10, 3, 5), utc(2026, 10, 3, 6))
            let month = try ledger.report(.with { $0.period = .month })
            #expect(month.daily.count == 30, "every day of November, zeros included")
            let inverted = await rpcError { _ = try ledger.report(.with { $0.period = .custom; $0.fromMs = 10_000; $0.toMs = 5000 }) }
            #expect(inverted?.code == .invalidArgument)
            #expect(try ledger.verify().ok)
        }
    }

    @Test("events list newest first with filters; the cursor pages without repeats or gaps")
    func listEvents() async throws {
        try await withLedger(now: utc(2026, 11, 15, 12)) { ledger, _ in
            var expected: [String] = []
            for index in 0..<250 {
                let provider = index % 2 == 0 ? "openai" : "groq"
                let model = provider == "openai" ? "gpt-4o-mini" : "llama-3.1-8b-instant"
                try await ledger.record(costEvent("e\(index)", provider: provider, model: model, at: utc(2026, 11, 1) + Int64(index / 3) * 1000))
                if provider == "groq" { expected.append("e\(index)") }
            }
            var seen: [Kb_Budget_V1_CostEvent] = []
            var cursor = ""
            repeat {
                let page = try ledger.listEvents(.with { $0.provider = "groq"; $0.limit = 40; $0.cursor = cursor })
                seen += page.events
                cursor = page.nextCursor
            } while !cursor.isEmpty
            #expect(seen.count == expected.count)
            #expect(Set(seen.map(\.requestID)) == Set(expected))
            #expect(zip(seen, seen.dropFirst()).allSatisfy { $0.timestampMs >= $1.timestampMs })
            let bad = await rpcError { _ = try ledger.listEvents(.with { $0.cursor = "nonsense" }) }
            #expect(bad?.code == .invalidArgument)
        }
    }

    @Test("verify finds daily totals that disagree with the events")
    func verifyFindsTampering() async throws {
        let path = temporaryDirectory("budget-verify").appendingPathComponent("knowledge.db").path
        try await withLedger(path: path) { ledger, _ in
            for index in 0..<20 { try await ledger.record(costEvent("v\(index)", usd: 0.01)) }
            #expect(try ledger.verify().ok)
            let other = try SQLiteDatabase.open(path: path)
            try await other.write { db in try db.execute(sql: "UPDATE cost_daily SET cost_nanos = cost_nanos + 1") }
            try other.close()
            let report = try ledger.verify()
            #expect(!report.ok)
            #expect(report.problems.first?.contains("daily totals of 2026-11-15") == true)
            #expect(report.problems.count == 1)
            let second = try SQLiteDatabase.open(path: path)
            try await second.write { db in
                try db.execute(sql: "UPDATE cost_daily SET cost_nanos = cost_nanos - 1")
                try db.execute(sql: "DELETE FROM cost_hourly")
            }
            try second.close()
            let hourly = try ledger.verify()
            #expect(hourly.problems == ["hourly totals of 2026-11-15 12:00 openai/gpt-4o-mini/extract/coding: events say 20 requests, totals say nothing"])
        }
    }

    @Test("backup while recording, restore into a new file: the backup's events, integrity OK")
    func backupAndRestore() async throws {
        let folder = temporaryDirectory("budget-backup")
        let backupFile = folder.appendingPathComponent("backups/budget.db")
        let restored = folder.appendingPathComponent("restored/knowledge.db")
        let backedUp = try await withLedger { ledger, _ in
            for index in 0..<200 { try await ledger.record(costEvent("b\(index)", usd: 0.001)) }
            async let writing: Void = {
                for index in 200..<400 { try await ledger.record(costEvent("b\(index)", usd: 0.001)) }
            }()
            let response = try ledger.backup(.with { $0.path = backupFile.path })
            try await writing
            #expect(response.events >= 200 && response.events <= 400)
            let exists = await rpcError { _ = try ledger.backup(.with { $0.path = backupFile.path }) }
            #expect(exists?.code == .alreadyExists)
            return response.events
        }
        #expect(try SQLiteDatabase.checkFile(path: backupFile.path).isEmpty)
        #expect(try SQLiteDatabase.restore(from: backupFile, to: restored) == nil)
        try await withLedger(path: restored.path) { ledger, _ throws -> Void in
            #expect(try ledger.store.counts().events == backedUp)
            #expect(try ledger.verify().ok)
            #expect(abs(ledger.status().spendUsd - Double(backedUp) * 0.001) < 1e-9)
        }
        // Restoring over an existing database keeps the old one beside it.
        let kept = try SQLiteDatabase.restore(from: backupFile, to: restored)
        #expect(kept != nil && FileManager.default.fileExists(atPath: kept!.path))
        // A file that is not a database is refused and changes nothing.
        let junk = folder.appendingPathComponent("junk.db")
        try Data(repeating: 0x41, count: 8192).write(to: junk)
        #expect(throws: SQLiteDatabase.Failure.self) { try SQLiteDatabase.restore(from: junk, to: restored) }
        #expect(try SQLiteDatabase.checkFile(path: restored.path).isEmpty)
    }

    @Test("the guide's sqlite3 queries work on the cost_tracking view")
    func guideQueries() async throws {
        let path = temporaryDirectory("budget-view").appendingPathComponent("knowledge.db").path
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await withLedger(now: now, path: path) { ledger, _ in
            try await ledger.record(costEvent("a", usd: 0.2, operation: "extract"))
            try await ledger.record(costEvent("b", usd: 0.4, operation: "extract"))
            try await ledger.record(costEvent("c", usd: 0.1, operation: "embed"))
            try await ledger.record(costEvent("old", usd: 5, operation: "extract", at: now - 3 * 86_400_000))
        }
        let pool = try SQLiteDatabase.open(path: path)
        let rows = try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT operation, AVG(cost) as avg_cost, COUNT(*) as count
                FROM cost_tracking
                WHERE created_at >= datetime('now', '-1 day')
                GROUP BY operation
                ORDER BY avg_cost DESC
                """)
        }
        try await pool.close()
        #expect(rows.count == 2)
        #expect(rows[0]["operation"] as String == "extract")
        #expect(abs((rows[0]["avg_cost"] as Double) - 0.3) < 1e-12)
        #expect(rows[0]["count"] as Int == 2)
        #expect(rows[1]["operation"] as String == "embed")
    }

    @Test("a file that is not a database fails to open with a clear message")
    func corruptFile() throws {
        let path = temporaryDirectory("budget-corrupt").appendingPathComponent("knowledge.db").path
        try Data(repeating: 0x5A, count: 16384).write(to: URL(fileURLWithPath: path))
        do {
            _ = try BudgetLedger(path: path)
            Issue.record("a corrupt database opened")
        } catch let failure as SQLiteDatabase.Failure {
            #expect(failure.description.contains("not a database"), "\(failure)")
            #expect(failure.description.contains(path))
        }
    }

    @Test("the calendar: day numbers, months and leap years agree with Foundation")
    func calendar() {
        var gregorian = Calendar(identifier: .gregorian)
        gregorian.timeZone = TimeZone(identifier: "UTC")!
        for days in stride(from: Int64(-800), to: 40_000, by: 37) {
            let date = BudgetCalendar.date(dayNumber: days)
            let components = gregorian.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: Double(days) * 86_400))
            #expect(date.year == components.year && date.month == components.month && date.day == components.day)
            #expect(BudgetCalendar.dayNumber(year: date.year, month: date.month, day: date.day) == days)
        }
        #expect(BudgetCalendar.daysInMonth(year: 2028, month: 2) == 29)
        #expect(BudgetCalendar.daysInMonth(year: 2100, month: 2) == 28)
        #expect(BudgetCalendar.Period(containing: utc(2026, 1, 1) - 1).name == "2025-12")
        #expect(BudgetCalendar.Period("2026-13") == nil)
        #expect(BudgetCalendar.dayNumber(ms: -1) == -1)
    }
}
