import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// A `budget-service` process on loopback ports with its own data directory.
struct BudgetServiceUnderTest {
    let service: ServiceProcess
    let token: String?
    /// The service's backup folder (`KB_BACKUP_DIR`), a fresh one per start unless given.
    let backupDirectory: URL

    static func start(dataDirectory: URL? = nil, environment: [String: String] = [:], waitForReady: Bool = true) async throws -> BudgetServiceUnderTest {
        var environment = environment
        if environment["KB_BACKUP_DIR"] == nil { environment["KB_BACKUP_DIR"] = temporaryDirectory("budget-backups").path }
        let service = try ServiceProcess(executable: "budget-service", envPrefix: "KB_BUDGET_SERVICE", environment: environment, dataDirectory: dataDirectory)
        if waitForReady { try await service.waitUntilReady() }
        return BudgetServiceUnderTest(service: service, token: environment["KB_AUTH_TOKEN"], backupDirectory: URL(fileURLWithPath: environment["KB_BACKUP_DIR"]!))
    }

    var databasePath: String { service.dataDirectory.appendingPathComponent("budget/knowledge.db").path }

    var environment: [String: String] {
        var environment = ["KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(service.port)", "KB_DATA_DIR": service.dataDirectory.path, "KB_BACKUP_DIR": backupDirectory.path]
        if let token { environment["KB_AUTH_TOKEN"] = token }
        return environment
    }

    /// Runs `kb` with `arguments` against this service.
    func kb(_ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProgram(builtProductsDirectory.appendingPathComponent("kb"), arguments, environment: environment)
    }

    func client(connections: Int = 2) -> RPCClient {
        var configuration = RPCClient.Configuration(host: "127.0.0.1", port: service.port)
        configuration.authToken = token
        configuration.connections = connections
        return RPCClient(configuration: configuration)
    }

    func admin(_ method: String, _ path: String, body: String? = nil, token: String? = nil) async -> HTTPResult? {
        var headers: [String: String] = [:]
        if let token { headers["Authorization"] = "Bearer \(token)" }
        if body != nil { headers["Content-Type"] = "application/json" }
        return await httpRequest(method, "http://127.0.0.1:\(service.adminPort)\(path)", body: body.map { Data($0.utf8) }, headers: headers)
    }
}

func event(_ id: String, usd: Double? = nil, provider: String = "openai", model: String = "gpt-4o-mini", at ms: Int64 = 0) -> Kb_Budget_V1_CostEvent {
    var event = Kb_Budget_V1_CostEvent()
    event.requestID = id
    event.provider = provider
    event.model = model
    event.operation = "extract"
    event.project = "coding"
    event.inputTokens = 1200
    event.outputTokens = 300
    event.latencyMs = 250
    event.timestampMs = ms
    if let usd { event.costUsd = .with { $0.value = usd } }
    return event
}

/// The members of the `error` object of an HTTP error body, each as text; nil when the body is
/// not one.
func errorBody(_ text: String) -> [String: String]? {
    (json(text)["error"] as? [String: Any])?.mapValues { "\($0)" }
}

func json(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
}

/// The first millisecond of the UTC month before the current one, and of the current one.
func monthBounds() -> (previous: Int64, current: Int64) {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    let now = Date()
    let start = calendar.date(from: calendar.dateComponents([.year, .month], from: now))!
    let previous = calendar.date(byAdding: .month, value: -1, to: start)!
    return (Int64(previous.timeIntervalSince1970 * 1000), Int64(start.timeIntervalSince1970 * 1000))
}

@Suite("budget-service and kb budget, as processes", .serialized)
struct BudgetServiceTests {
    @Test("record over RPC; status, runbook endpoints with the token, gauges, health, kb budget")
    func recordStatusRunbooksMetrics() async throws {
        let budget = try await BudgetServiceUnderTest.start(environment: ["KB_AUTH_TOKEN": "s3cret", "KB_BUDGET_MONTHLY_LIMIT_USD": "10"])
        defer { Task { await budget.service.stop() } }
        let client = budget.client()
        let recorded = try await client.call(BudgetMethods.recordCost, .with { $0.event = event("r1", usd: 4.25) })
        #expect(!recorded.duplicate)
        #expect(recorded.event.timestampMs > 0)
        let computed = try await client.call(BudgetMethods.recordCost, .with { $0.event = event("r2", provider: "groq", model: "llama-3.3-70b-versatile") })
        #expect(abs(computed.event.costUsd.value - (1200 * 0.59 + 300 * 0.79) / 1e6) < 1e-12)
        let status = try await client.call(BudgetMethods.getStatus, .init())
        #expect(abs(status.spendUsd - 4.25 - computed.event.costUsd.value) < 1e-9)
        #expect(status.mode == .normal)

        // Without the token the RPC is refused.
        let anonymous = RPCClient(configuration: .init(host: "127.0.0.1", port: budget.service.port))
        do {
            _ = try await anonymous.call(BudgetMethods.getStatus, .init())
            Issue.record("a call without the token was answered")
        } catch let error as RPCError {
            #expect(error.code == .unauthenticated)
        }
        await anonymous.close()

        let adminStatus = try #require(await budget.admin("GET", "/internal/budget/status"))
        #expect(adminStatus.status == 200)
        #expect(json(adminStatus.body)["mode"] as? String == "normal")
        #expect(json(adminStatus.body)["limit_usd"] as? Double == 10)

        let refused = try #require(await budget.admin("POST", "/internal/budget/freeze", body: #"{"reason":"spike"}"#))
        #expect(refused.status == 401)
        #expect(errorBody(refused.body) == ["status": "401", "code": "unauthenticated", "message": "missing or wrong 'Authorization: Bearer <KB_AUTH_TOKEN>'"], "\(refused.body)")
        let wrongToken = try #require(await budget.admin("POST", "/internal/budget/freeze", body: #"{"reason":"spike"}"#, token: "s3cres"))
        #expect(wrongToken.status == 401)
        #expect(try await client.call(BudgetMethods.getStatus, .init()).frozen == false, "a refused freeze changes nothing")
        // Errors have the one HTTP error body of the system (VKB's): status, code, field, reason, message.
        let badBody = try #require(await budget.admin("POST", "/internal/budget/freeze", body: "[1,2", token: "s3cret"))
        #expect(badBody.status == 400)
        let badBodyError = errorBody(badBody.body)
        #expect(badBodyError?["status"] == "400" && badBodyError?["code"] == "invalid_argument", "\(badBody.body)")
        #expect(badBodyError?["field"] == "body" && badBodyError?["reason"] == "INVALID_FORMAT", "\(badBody.body)")
        // A rule the ledger checks arrives with its field and reason from the RPC error.
        let longReason = try #require(await budget.admin("POST", "/internal/budget/freeze", body: #"{"reason":"\#(String(repeating: "x", count: 501))"}"#, token: "s3cret"))
        #expect(longReason.status == 400)
        #expect(errorBody(longReason.body) == ["status": "400", "code": "invalid_argument", "field": "reason", "reason": "TOO_LONG", "message": "must be at most 500 bytes (found 501)"], "\(longReason.body)")
        #expect(try await client.call(BudgetMethods.getStatus, .init()).frozen == false, "a refused freeze changes nothing")
        let frozen = try #require(await budget.admin("POST", "/internal/budget/freeze", body: #"{"reason":"cost spike in extraction"}"#, token: "s3cret"))
        #expect(frozen.status == 200)
        #expect(json(frozen.body)["mode"] as? String == "blocked")
        #expect(json(frozen.body)["freeze_reason"] as? String == "cost spike in extraction")
        let denied = try await client.call(BudgetMethods.admit, .with { $0.provider = "openai"; $0.estimatedCostUsd = 0.01 })
        #expect(denied.decision == .deny)
        let local = try await client.call(BudgetMethods.admit, .with { $0.provider = "ollama"; $0.model = "llama3" })
        #expect(local.decision == .allow, "local calls run while frozen")
        let health = try #require(await httpGet("http://127.0.0.1:\(budget.service.adminPort)/health"))
        let components = json(health.body)["components"] as? [String: Any]
        let budgetHealth = components?["budget"] as? [String: Any]
        #expect(budgetHealth?["status"] as? String == "degraded")
        #expect(budgetHealth?["state"] as? String == "warning")
        #expect((components?["database"] as? [String: Any])?["status"] as? String == "healthy")
        let metrics = try #require(await httpGet("http://127.0.0.1:\(budget.service.adminPort)/metrics")).body
        #expect(metrics.contains("knowledge_monthly_budget_usd 10.0"))
        #expect(metrics.contains("knowledge_budget_routing_mode 3.0"))
        #expect(metrics.contains("knowledge_monthly_spend_usd 4.25"))

        let unfrozen = try #require(await budget.admin("POST", "/internal/budget/unfreeze", token: "s3cret"))
        #expect(json(unfrozen.body)["frozen"] as? Bool == false)

        // The operator CLI.
        let text = try budget.kb("budget", "status")
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("Limit      $10.00"))
        #expect(text.stdout.contains("Mode       normal"))
        let limit = try budget.kb("budget", "set-limit", "5")
        #expect(limit.status == 0 && limit.stdout.contains("Mode       prefer_local"), "\(limit.stdout)\(limit.stderr)")
        let report = try budget.kb("budget", "report", "--period", "month")
        #expect(report.status == 0)
        #expect(report.stdout.contains("openai") && report.stdout.contains("groq") && report.stdout.contains("Provider"))
        let reportJSON = json(try budget.kb("budget", "report", "--period", "day", "--json").stdout)
        #expect(reportJSON["total_requests"] as? Int == 2)
        let badLimit = try budget.kb("budget", "set-limit", "--", "-3")
        #expect(badLimit.status == 1)
        #expect(badLimit.stderr.hasPrefix("kb budget: INVALID_ARGUMENT: limit_usd"), "\(badLimit.stderr)")
        let events = try budget.kb("budget", "events", "--provider", "groq")
        #expect(events.stdout.contains("r2") && !events.stdout.contains("r1 "))
        await client.close()
    }

    @Test("kill -9 while 8 clients record: every acknowledged event is there after the restart")
    func killDuringRecording() async throws {
        let data = temporaryDirectory("budget-kill")
        let first = try await BudgetServiceUnderTest.start(dataDirectory: data, environment: ["KB_BUDGET_MONTHLY_LIMIT_USD": "1000000"])
        let acknowledged = AcknowledgedIDs()
        let writers = Task {
            await withTaskGroup(of: Void.self) { group in
                for writer in 0..<8 {
                    group.addTask {
                        let client = first.client(connections: 1)
                        var index = 0
                        while !Task.isCancelled {
                            do {
                                if writer % 4 == 0 {
                                    let ids = (0..<50).map { "w\(writer)-\(index)-\($0)" }
                                    _ = try await client.call(BudgetMethods.recordCosts, .with { $0.events = ids.map { event($0, usd: 0.001) } })
                                    acknowledged.add(ids)
                                } else {
                                    let id = "w\(writer)-\(index)"
                                    _ = try await client.call(BudgetMethods.recordCost, .with { $0.event = event(id, usd: 0.001) })
                                    acknowledged.add([id])
                                }
                            } catch {
                                break
                            }
                            index += 1
                        }
                        await client.close()
                    }
                }
            }
        }
        try await Task.sleep(for: .milliseconds(1500))
        let before = acknowledged.count
        await first.service.stop(signal: SIGKILL)
        writers.cancel()
        await writers.value
        let ids = acknowledged.all
        #expect(before > 100, "writers made progress before the kill (\(before))")

        let second = try await BudgetServiceUnderTest.start(dataDirectory: data)
        let client = second.client()
        // Re-sending every acknowledged id must find each one already stored.
        var duplicates = 0
        for chunk in stride(from: 0, to: ids.count, by: 5000) {
            let slice = ids[chunk..<min(chunk + 5000, ids.count)]
            let response = try await client.call(BudgetMethods.recordCosts, .with { $0.events = slice.map { event($0, usd: 0.001) } })
            duplicates += Int(response.duplicates)
        }
        #expect(duplicates == ids.count, "\(ids.count - duplicates) acknowledged events were lost")
        let verify = try await client.call(BudgetMethods.verify, .init())
        #expect(verify.ok, "\(verify.problems)")
        await client.close()
        await second.service.stop()
    }

    @Test("64 concurrent admissions against a nearly spent budget: never past the limit")
    func concurrentAdmission() async throws {
        let budget = try await BudgetServiceUnderTest.start(environment: ["KB_BUDGET_MONTHLY_LIMIT_USD": "1"])
        defer { Task { await budget.service.stop() } }
        let client = budget.client(connections: 4)
        _ = try await client.call(BudgetMethods.recordCost, .with { $0.event = event("spent", usd: 0.5) })
        let decisions = try await withThrowingTaskGroup(of: (Int, Kb_Budget_V1_AdmitResponse).self) { group in
            for index in 0..<64 {
                group.addTask {
                    (index, try await client.call(BudgetMethods.admit, .with {
                        $0.provider = "openai"; $0.model = "gpt-4o"; $0.estimatedCostUsd = 0.1; $0.requestID = "call-\(index)"
                    }))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let admitted = decisions.filter { $0.1.decision != .deny }
        // $0.50 spent: $0.60, $0.70, $0.80 (80%: prefer local, still admitted), $0.90 — then 90%: local only.
        #expect(admitted.count == 4)
        #expect(admitted.filter { $0.1.decision == .preferLocal }.count == 1)
        #expect(decisions.filter { $0.1.decision == .deny }.allSatisfy { $0.1.reason.contains("local-only") })
        // Every admitted caller spends its estimate: the month ends within the limit.
        _ = try await client.call(BudgetMethods.recordCosts, .with { $0.events = admitted.map { event("call-\($0.0)", usd: 0.1) } })
        let status = try await client.call(BudgetMethods.getStatus, .init())
        #expect(status.spendUsd <= 1.0 + 0.1)
        #expect(status.reservedUsd == 0, "recording settled every reservation")
        #expect(status.mode == .localOnly)
        #expect(try await client.call(BudgetMethods.admit, .with { $0.provider = "local"; $0.model = "any" }).decision == .allow)
        await client.close()
    }

    @Test("reservations are bounded: a TTL over one hour is refused, and one caller cannot hold more than its share of open reservations")
    func reservationBounds() async throws {
        let budget = try await BudgetServiceUnderTest.start(environment: ["KB_BUDGET_MONTHLY_LIMIT_USD": "8.33", "KB_BUDGET_MAX_OPEN_RESERVATIONS_PER_CALLER": "40"])
        defer { Task { await budget.service.stop() } }
        let client = budget.client()
        func admit(_ id: String, ttlMs: Int64 = 0) async throws -> Kb_Budget_V1_AdmitResponse {
            try await client.call(BudgetMethods.admit, .with {
                $0.provider = "openai"; $0.model = "gpt-4o-mini"; $0.estimatedCostUsd = 0.001; $0.requestID = id; $0.reservationTtlMs = ttlMs
            })
        }
        // The hostile case of the hardening issue: a reservation for 10^12 ms.
        do {
            _ = try await admit("forever", ttlMs: 1_000_000_000_000)
            Issue.record("a 10^12 ms reservation was accepted")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument)
            #expect(error.field == "reservation_ttl_ms")
            #expect(error.message.contains("3600000"))
        }
        #expect(try await admit("an-hour", ttlMs: 3_600_000).decision == .allow)
        for index in 1..<40 {
            #expect(try await admit("call-\(index)", ttlMs: 3_600_000).decision == .allow)
        }
        // The 41st open reservation of this client is refused; nothing more is reserved.
        do {
            _ = try await admit("one-too-many")
            Issue.record("a 41st open reservation was accepted")
        } catch let error as RPCError {
            #expect(error.code == .resourceExhausted)
            #expect(error.message.contains("40 open reservations"))
        }
        let status = try await client.call(BudgetMethods.getStatus, .init())
        #expect(abs(status.reservedUsd - 0.04) < 1e-9)
        // Re-admitting a request id replaces its reservation (not a new one); recording one frees a slot.
        #expect(try await admit("call-1").decision == .allow)
        _ = try await client.call(BudgetMethods.recordCost, .with { $0.event = event("call-2", usd: 0.001) })
        #expect(try await admit("after-record").decision == .allow)
        await client.close()
    }

    @Test("the monthly reset runbook: POST /internal/budget/reset archives last month once")
    func monthlyReset() async throws {
        let budget = try await BudgetServiceUnderTest.start()
        defer { Task { await budget.service.stop() } }
        let client = budget.client()
        let (previous, current) = monthBounds()
        let lastMonth = (0..<25).map { event("old-\($0)", usd: 0.02, at: previous + Int64($0) * 3_600_000) }
        _ = try await client.call(BudgetMethods.recordCosts, .with { $0.events = lastMonth + [event("now", usd: 0.5)] })
        let reset = try #require(await budget.admin("POST", "/internal/budget/reset"))
        #expect(reset.status == 200)
        let body = json(reset.body)
        #expect(body["archived_events"] as? Int == 25)
        #expect(body["already_done"] as? Bool == false)
        #expect((body["status"] as? [String: Any])?["spend_usd"] as? Double == 0.5)
        let again = json(try #require(await budget.admin("POST", "/internal/budget/reset")).body)
        #expect(again["archived_events"] as? Int == 0)
        #expect(again["already_done"] as? Bool == true)
        let cli = try budget.kb("budget", "reset")
        #expect(cli.status == 0 && cli.stdout.contains("already archived"), "\(cli.stdout)\(cli.stderr)")
        // Last month's report still adds up from the archive.
        var request = Kb_Budget_V1_GetReportRequest()
        request.period = .custom
        request.fromMs = previous
        request.toMs = current
        let report = try await client.call(BudgetMethods.getReport, request)
        #expect(report.totalRequests == 25)
        #expect(abs(report.totalCostUsd - 0.5) < 1e-9)
        let verify = try budget.kb("budget", "verify")
        #expect(verify.status == 0 && verify.stdout.hasPrefix("OK: 1 events, 25 archived"), "\(verify.stdout)")
        await client.close()
    }

    @Test("a corrupt database: the service stays up, unhealthy, UNAVAILABLE with the reason; restore from a backup fixes it")
    func corruptDatabaseAndRestore() async throws {
        // A good backup first.
        let good = try await BudgetServiceUnderTest.start()
        let client = good.client()
        _ = try await client.call(BudgetMethods.recordCosts, .with { $0.events = (0..<40).map { event("g\($0)", usd: 0.01) } })
        let backup = good.backupDirectory.appendingPathComponent("budget-backup.db")
        let backedUp = try good.kb("budget", "backup", backup.path)
        #expect(backedUp.status == 0 && backedUp.stdout.contains("Backed up 40 events"), "\(backedUp.stdout)\(backedUp.stderr)")
        await client.close()
        let refused = try good.kb("budget", "restore", backup.path)
        #expect(refused.status == 75, "restore refused while the service runs: \(refused.stderr)")
        await good.service.stop()

        // Corrupt the database file.
        let data = temporaryDirectory("budget-corrupt")
        let path = data.appendingPathComponent("budget/knowledge.db")
        try FileManager.default.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(repeating: 0x42, count: 32768).write(to: path)
        let broken = try await BudgetServiceUnderTest.start(dataDirectory: data, waitForReady: false)
        let health = try #require(await httpGet("http://127.0.0.1:\(broken.service.adminPort)/health"))
        #expect(health.status == 503)
        #expect(health.body.contains("not a database"), "\(health.body)")
        let brokenClient = broken.client()
        do {
            _ = try await brokenClient.call(BudgetMethods.getStatus, .init())
            Issue.record("a corrupt database answered")
        } catch let error as RPCError {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("not a database"))
        }
        await brokenClient.close()
        let cli = try broken.kb("budget", "status")
        #expect(cli.status == 1 && cli.stderr.contains("UNAVAILABLE") && cli.stderr.contains("not a database"), "\(cli.stderr)")
        #expect(broken.service.process.isRunning, "bad data never kills the service")
        await broken.service.stop()

        // The operator restores the backup, then the service is healthy with the backup's events.
        let restored = try runProgram(builtProductsDirectory.appendingPathComponent("kb"), ["budget", "restore", backup.path], environment: ["KB_DATA_DIR": data.path])
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(restored.stdout.contains("the replaced database was kept"))
        let fixed = try await BudgetServiceUnderTest.start(dataDirectory: data)
        let fixedClient = fixed.client()
        let status = try await fixedClient.call(BudgetMethods.getStatus, .init())
        #expect(abs(status.spendUsd - 0.4) < 1e-9)
        await fixedClient.close()
        await fixed.service.stop()
    }

    @Test("a database locked by another process: writes fail with UNAVAILABLE, health unhealthy, both recover")
    func lockedDatabase() async throws {
        let budget = try await BudgetServiceUnderTest.start(environment: ["KB_BUDGET_BUSY_TIMEOUT_MS": "200"])
        defer { Task { await budget.service.stop() } }
        let client = budget.client()
        _ = try await client.call(BudgetMethods.recordCost, .with { $0.event = event("before", usd: 0.1) })

        // Another process (an operator's sqlite3 session) holds the write lock for a while.
        let locker = Process()
        locker.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        locker.arguments = ["python3", "-c", """
            import sqlite3, sys, time
            c = sqlite3.connect(sys.argv[1], isolation_level=None)
            c.execute('BEGIN EXCLUSIVE')
            open(sys.argv[2], 'w').write('locked')
            time.sleep(float(sys.argv[3]))
            c.execute('ROLLBACK')
            """, budget.databasePath, budget.service.dataDirectory.appendingPathComponent("locked").path, "3"]
        try launch(locker)
        let marker = budget.service.dataDirectory.appendingPathComponent("locked").path
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: marker) && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(FileManager.default.fileExists(atPath: marker))

        do {
            _ = try await client.call(BudgetMethods.recordCost, .with { $0.event = event("while-locked", usd: 0.1) })
            Issue.record("a write went through a locked database")
        } catch let error as RPCError {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("locked"), "\(error.message)")
        }
        let health = try #require(await httpGet("http://127.0.0.1:\(budget.service.adminPort)/health"))
        #expect(health.status == 503, "\(health.body)")
        #expect(health.body.contains("locked"), "\(health.body)")
        // Reads still answer (WAL): the status is there.
        #expect(abs(try await client.call(BudgetMethods.getStatus, .init()).spendUsd - 0.1) < 1e-9)

        locker.waitUntilExit()
        let retried = try await client.call(BudgetMethods.recordCost, .with { $0.event = event("while-locked", usd: 0.1) })
        #expect(!retried.duplicate, "the refused write was not stored")
        #expect(await httpGet("http://127.0.0.1:\(budget.service.adminPort)/health")?.status == 200)
        await client.close()
    }
}

/// Request ids acknowledged by the service, collected across tasks.
final class AcknowledgedIDs: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: [String] = []
    func add(_ more: [String]) { lock.withLock { ids += more } }
    var count: Int { lock.withLock { ids.count } }
    var all: [String] { lock.withLock { ids } }
}

@Suite("budget-service's admin port and backups against other web pages and careless paths", .serialized)
struct BudgetHardeningTests {
    @Test("without a token, a web page cannot freeze or reset: an evil Origin is 403, a form or application/jsonx body 415, a rebound Host 421; the budget stays unfrozen; the operator's JSON POST works")
    func adminPostsRefuseOtherPages() async throws {
        let budget = try await BudgetServiceUnderTest.start()
        let port = budget.service.adminPort
        let host = ("Host", "127.0.0.1:\(port)")
        let jsonType = ("Content-Type", "application/json")
        let reason = #"{"reason": "evil"}"#
        let attempts: [(String, [(String, String)], String, Int, String)] = [
            ("/internal/budget/freeze", [host, ("Origin", "http://evil.example"), ("Content-Type", "application/x-www-form-urlencoded")], "reason=evil", 403, "cross_origin"),
            ("/internal/budget/freeze", [host, ("Origin", "http://evil.example"), jsonType], reason, 403, "cross_origin"),
            ("/internal/budget/freeze", [host, ("Origin", "https://127.0.0.1:\(port)"), jsonType], reason, 403, "cross_origin"),
            ("/internal/budget/reset", [host, ("Origin", "http://evil.example")], "", 403, "cross_origin"),
            ("/internal/budget/freeze", [host, ("Content-Type", "application/x-www-form-urlencoded")], "reason=evil", 415, "unsupported_media_type"),
            ("/internal/budget/freeze", [host, ("Content-Type", "application/jsonx")], reason, 415, "unsupported_media_type"),
            ("/internal/budget/freeze", [host, ("Content-Type", "text/plain")], reason, 415, "unsupported_media_type"),
            ("/internal/budget/freeze", [("Host", "evil.example:\(port)"), ("Origin", "http://evil.example:\(port)"), jsonType], reason, 421, "misdirected_request"),
        ]
        for (path, headers, body, status, code) in attempts {
            let answer = try #require(try RawConnection.request(port: port, "POST", path, headers: headers, body: body), "\(path) \(headers): no answer")
            #expect(answer.status == status && errorBody(answer.body)?["code"] == code, "\(path) \(headers): \(answer.status) \(answer.body)")
        }
        let status = try #require(await budget.admin("GET", "/internal/budget/status"))
        #expect(json(status.body)["frozen"] as? Bool == false, "no refused POST froze the budget: \(status.body)")
        let rebound = try #require(try RawConnection.request(port: port, "GET", "/internal/budget/status", headers: [("Host", "evil.example:\(port)")]))
        #expect(rebound.status == 421, "reads answer only to allowed names too: \(rebound.body)")

        // The operator's own requests: same-origin JSON, with parameters; curl's body-less POST.
        let own = try #require(try RawConnection.request(port: port, "POST", "/internal/budget/freeze", headers: [host, ("Origin", "http://127.0.0.1:\(port)"), ("Content-Type", "application/json; charset=utf-8")], body: #"{"reason": "drill"}"#))
        #expect(own.status == 200 && json(own.body)["frozen"] as? Bool == true, "\(own.body)")
        let unfreeze = try #require(try RawConnection.request(port: port, "POST", "/internal/budget/unfreeze", headers: [("Host", "localhost:\(port)")]))
        #expect(unfreeze.status == 200, "\(unfreeze.body)")
        let probe = try #require(try RawConnection.request(port: port, "GET", "/health/ready", headers: [("Host", "10.1.2.3:\(port)")]))
        #expect(probe.status == 200, "probes by the pod's address still answer: \(probe.body)")
        await budget.service.stop()
    }

    @Test("Backup refuses a path outside KB_BACKUP_DIR, '..', a dangling link (never followed) and a linked folder; a relative backup lands inside and restores")
    func backupsStayInsideTheRoot() async throws {
        let fixture = try BackupRootFixture()
        let budget = try await BudgetServiceUnderTest.start(environment: ["KB_BACKUP_DIR": fixture.root.path])
        let client = budget.client()
        _ = try await client.call(BudgetMethods.recordCosts, .with { $0.events = (0..<5).map { event("b\($0)", usd: 0.01) } })
        for path in fixture.refusedPaths {
            do {
                _ = try await client.call(BudgetMethods.backup, .with { $0.path = path })
                Issue.record("backup to \(path) was written")
            } catch let error as RPCError {
                #expect(error.code == .invalidArgument && error.field == "path", "\(path): \(error)")
            }
        }
        #expect(fixture.damage().isEmpty, "\(fixture.damage())")
        let refusedByKB = try budget.kb("budget", "backup", fixture.outside.appendingPathComponent("kb.db").path)
        #expect(refusedByKB.status != 0 && refusedByKB.stderr.contains("outside the backup folder"), "\(refusedByKB.stdout)\(refusedByKB.stderr)")

        let made = try budget.kb("budget", "backup", "monthly/ledger.db")
        #expect(made.status == 0 && made.stdout.contains("Backed up 5 events"), "\(made.stdout)\(made.stderr)")
        let file = fixture.root.appendingPathComponent("monthly/ledger.db")
        #expect(FileManager.default.fileExists(atPath: file.path))
        _ = try await client.call(BudgetMethods.recordCost, .with { $0.event = event("after", usd: 0.01) })
        await client.close()
        #expect(await budget.service.stop() == 0)
        let restored = try budget.kb("budget", "restore", file.path)
        #expect(restored.status == 0, "\(restored.stderr)")
        let again = try await BudgetServiceUnderTest.start(dataDirectory: budget.service.dataDirectory, environment: ["KB_BACKUP_DIR": fixture.root.path])
        let againClient = again.client()
        let listed = try await againClient.call(BudgetMethods.listEvents, .with { $0.limit = 100 })
        #expect(listed.events.count == 5 && !listed.events.contains { $0.requestID == "after" })
        await againClient.close()
        await again.service.stop()
    }
}

@Suite("deploy/scripts budget runbooks, backup and restore", .serialized)
struct BudgetScriptTests {
    func script(_ name: String, _ arguments: [String], _ environment: [String: String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProgram(URL(fileURLWithPath: "/bin/bash"), [packageRoot.appendingPathComponent("deploy/scripts/\(name)").path] + arguments, environment: environment)
    }

    @Test("monthly reset, emergency freeze, backup and restore, as an operator runs them")
    func runbooks() async throws {
        let work = temporaryDirectory("budget-scripts")
        let budget = try await BudgetServiceUnderTest.start(environment: ["KB_AUTH_TOKEN": "tok", "KB_BUDGET_MONTHLY_LIMIT_USD": "2"])
        var environment = budget.environment
        environment["KB_BIN_DIR"] = builtProductsDirectory.path
        environment["KB_BUDGET_SERVICE_ADMIN_URL"] = "http://127.0.0.1:\(budget.service.adminPort)"
        let client = budget.client()
        let (previous, _) = monthBounds()
        _ = try await client.call(BudgetMethods.recordCosts, .with {
            $0.events = (0..<10).map { event("last-\($0)", usd: 0.1, at: previous + Int64($0) * 86_400_000) } + [event("today", usd: 1.95)]
        })

        let reset = try script("monthly-cost-reset.sh", [work.appendingPathComponent("reports").path], environment)
        #expect(reset.status == 0, "\(reset.stdout)\(reset.stderr)")
        #expect(reset.stdout.contains("\"archived_events\":10"))
        let reports = try FileManager.default.contentsOfDirectory(atPath: work.appendingPathComponent("reports").path)
        #expect(reports.count == 2)
        let reportJSON = try #require(reports.first { $0.hasSuffix(".json") })
        let report = json(try String(contentsOf: work.appendingPathComponent("reports/\(reportJSON)"), encoding: .utf8))
        #expect(report["total_requests"] as? Int == 10)

        let freeze = try script("emergency-budget-freeze.sh", ["cost spike: \"extract\" loop", work.appendingPathComponent("incidents").path], environment)
        #expect(freeze.status == 0, "\(freeze.stdout)\(freeze.stderr)")
        let status = try await client.call(BudgetMethods.getStatus, .init())
        #expect(status.frozen && status.freezeReason == "cost spike: \"extract\" loop")
        let incidents = try FileManager.default.contentsOfDirectory(atPath: work.appendingPathComponent("incidents").path)
        #expect(incidents.contains("knowledge-incidents.log"))
        let incident = try #require(incidents.first { $0.hasSuffix("-budget-freeze.md") })
        let text = try String(contentsOf: work.appendingPathComponent("incidents/\(incident)"), encoding: .utf8)
        #expect(text.contains("Mode       blocked") && text.contains("Frozen     yes"))

        let backups = budget.backupDirectory
        let backup = try script("budget-backup.sh", [backups.path], environment)
        #expect(backup.status == 0, "\(backup.stdout)\(backup.stderr)")
        let archives = try FileManager.default.contentsOfDirectory(atPath: backups.path).filter { $0.hasPrefix("analytics_") && $0.hasSuffix(".db.gz") }
        #expect(archives.count == 1)
        _ = try await client.call(BudgetMethods.recordCost, .with { $0.event = event("after-backup", usd: 0.01) })
        await client.close()
        let refused = try script("budget-restore.sh", [backups.appendingPathComponent(archives[0]).path], environment)
        #expect(refused.status == 75, "restore refused while running: \(refused.stderr)")
        await budget.service.stop()

        let restored = try script("budget-restore.sh", [backups.appendingPathComponent(archives[0]).path], environment)
        #expect(restored.status == 0, "\(restored.stderr)")
        let again = try await BudgetServiceUnderTest.start(dataDirectory: budget.service.dataDirectory, environment: ["KB_AUTH_TOKEN": "tok"])
        let verify = try again.kb("budget", "verify")
        #expect(verify.status == 0 && verify.stdout.hasPrefix("OK: 1 events, 10 archived"), "\(verify.stdout)\(verify.stderr)")
        let afterClient = again.client()
        let listed = try await afterClient.call(BudgetMethods.listEvents, .with { $0.limit = 100 })
        #expect(!listed.events.contains { $0.requestID == "after-backup" }, "the restore went back to the backup")
        #expect(try await afterClient.call(BudgetMethods.getStatus, .init()).frozen, "the freeze was in the backup")
        await afterClient.close()
        await again.service.stop()
    }
}
