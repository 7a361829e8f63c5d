// budget-benchmark: the budget service's recording, admission and report speed, beside SQLite's own.
//
//   swift build -c release && .build/release/budget-benchmark [--events N] [--seconds S]
//
// Starts the budget service as a process on a temporary folder and measures over loopback RPC:
// the durable recording rate (events/s; every acknowledged event is committed with
// synchronous=FULL) with 1 client (one event per call, and batches of 100) and 16 concurrent
// clients (one event per call); Admit p50/p99 with one client; then it loads N events (default
// 1,000,000) into the month and times the monthly report and a custom range report. In the same
// run, the floor: SQLite's own rate for the same inserts into the same schema in one big
// transaction (GRDB, this machine), and its rate with one synced transaction per event.
//
// The data lives in a fixed period whatever the day of the run: the service's ledger clock is
// pinned to 2026-06-15T12:00Z (BenchmarkSupport.PinnedClock) and moves with real time from
// there, so the month's load is spread over the same 14.5 days and the custom range has the
// same partial first and last day on every run. For that the service process is this binary
// run as `budget-benchmark --serve` (the budget-service's own setup, BudgetKit and
// ServiceRuntime, with `BudgetLedger.Options.clock` injected): the real `budget-service` reads
// the wall clock.
import BudgetKit
import BenchmarkSupport
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import KBProto
import KBRPC
import KBRuntime
import KBSQLite
import NIOCore
import NIOPosix

if CommandLine.arguments.dropFirst().first == "--serve" {
    // budget-service itself (the same skeleton as its main.swift), with its ledger clock pinned;
    // configuration from the environment (the parent sets it).
    await ServiceRuntime.main(.budgetService, arguments: []) { runtime in
        var configuration = try runtime.load(BudgetConfiguration.self)
        configuration.options.clock = PinnedClock.advancing()
        let database = runtime.dataDirectory!.appendingPathComponent(BudgetConfiguration.databaseFileName)
        return BudgetService(path: database.path, options: configuration.options, backupRoot: runtime.configuration.backupRoot, logger: runtime.logger)
    }
}

NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()

let arguments = BenchmarkArguments()
let loadEvents = arguments.integer("--events", default: 1_000_000)
let phaseSeconds = Double(arguments.integer("--seconds", default: 5))

let work = FileManager.default.temporaryDirectory.appendingPathComponent("budget-benchmark-\(getpid())")
try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: work) }

/// "Now" for the data the benchmark makes: the pinned instant (the service's clock starts there).
let nowMs = PinnedClock.startMs

let providers: [(String, String)] = [("openai", "gpt-4o-mini"), ("groq", "llama-3.3-70b-versatile"), ("anthropic", "claude-3-5-haiku-latest"), ("gemini", "gemini-2.0-flash"), ("openrouter", "deepseek/deepseek-chat"), ("ollama", "llama3.1")]
let operations = ["extract", "classify", "embed", "summarize", "dedupe"]
let projects = ["coding", "ops", "web", "mobile", "data", "infra", "docs", "ml"]

func makeEvent(_ id: String, _ index: Int, at ms: Int64 = 0) -> Kb_Budget_V1_CostEvent {
    var event = Kb_Budget_V1_CostEvent()
    let (provider, model) = providers[index % providers.count]
    event.requestID = id
    event.provider = provider
    event.model = model
    event.operation = operations[(index / 7) % operations.count]
    event.project = projects[(index / 3) % projects.count]
    event.inputTokens = Int64(500 + index % 3000)
    event.outputTokens = Int64(100 + index % 700)
    event.latencyMs = Int64(80 + index % 900)
    event.timestampMs = ms
    return event
}

// MARK: Reference: SQLite itself, same schema, same inserts

func sqliteFloor(count: Int, perEventTransactions: Bool) throws -> Double {
    let path = work.appendingPathComponent("floor-\(perEventTransactions)-\(count).db").path
    try BudgetStore.createSchema(path: path)
    let pool = try SQLiteDatabase.open(path: path)
    defer { try? pool.close() }
    let sql = """
        INSERT INTO cost_events (request_id, created_at_ms, provider, model, operation, project, input_tokens, output_tokens, cost_nanos, latency_ms)
        SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM cost_archive WHERE request_id = ?)
        ON CONFLICT(request_id) DO NOTHING
        """
    // The events are made before the clock starts: only SQLite's work is timed.
    let rows: [StatementArguments] = (0..<count).map { index in
        let event = makeEvent("floor-\(index)", index)
        return [event.requestID, nowMs - Int64(index), event.provider, event.model, event.operation, event.project,
                event.inputTokens, event.outputTokens, Int64(1000 + index % 5000), event.latencyMs, event.requestID]
    }
    func insert(_ db: Database, _ index: Int) throws {
        let statement = try db.cachedStatement(sql: sql)
        statement.setUncheckedArguments(rows[index])
        try statement.execute()
    }
    let start = ContinuousClock.now
    if perEventTransactions {
        for index in 0..<count { try pool.write { db in try insert(db, index) } }
    } else {
        try pool.write { db in for index in 0..<count { try insert(db, index) } }
    }
    return Double(count) / seconds(ContinuousClock.now - start)
}

print("SQLite floor: one transaction of 200,000 inserts…")
let floorBulk = try sqliteFloor(count: 200_000, perEventTransactions: false)
print("SQLite floor: 1,000 inserts, one synced transaction each…")
let floorSynced = try sqliteFloor(count: 1000, perEventTransactions: true)

// MARK: Our service, as a process (this binary with --serve: the clock pinned)

let port = freePort()
let adminPort = freePort()
let service = try startProcess(siblingExecutable("budget-benchmark"), arguments: ["--serve"], environment: [
    "KB_DATA_DIR": work.appendingPathComponent("data").path,
    "KB_BUDGET_SERVICE_PORT": "\(port)",
    "KB_BUDGET_SERVICE_ADMIN_PORT": "\(adminPort)",
    "KB_LOG_LEVEL": "warning",
    "KB_BUDGET_MONTHLY_LIMIT_USD": "1000000",
])
defer { service.terminate(); service.waitUntilExit() }

let configuration = {
    var configuration = RPCClient.Configuration(host: "127.0.0.1", port: port)
    configuration.connections = 1
    configuration.defaultTimeout = .seconds(600)
    return configuration
}()
let client = RPCClient(configuration: configuration)
try await waitUntilReady("the budget service (budget-benchmark --serve)") {
    (try? await client.call(HealthMethods.check, .init(), options: CallOptions(timeout: .seconds(1)))) != nil
}

/// Calls `body` from `clients` concurrent clients (each its own connection) for `phaseSeconds`;
/// returns calls per second and the sorted latencies in seconds.
func run(clients count: Int, _ body: @escaping @Sendable (RPCClient, Int, Int) async throws -> Void) async throws -> (perSecond: Double, latencies: [Double]) {
    let clients = (0..<count).map { _ in RPCClient(configuration: configuration) }
    for client in clients { _ = try await client.call(HealthMethods.check, .init()) }
    let figures = try await measureClosedLoop(callers: count, window: .milliseconds(Int64(phaseSeconds * 1000)), warmUp: .zero) { caller, index in
        try await body(clients[caller], caller, index)
    }
    for client in clients { await client.close() }
    return (figures.throughput, figures.latenciesMicros.map { $0 / 1e6 })
}

let run1 = UUID().uuidString.prefix(8)
print("RPC floor: GetStatus (answered from memory, no I/O), 16 clients…")
let health16 = try await run(clients: 16) { client, _, _ in _ = try await client.call(BudgetMethods.getStatus, .init()) }
print("recording, 1 client, one event per call…")
let single1 = try await run(clients: 1) { client, caller, index in
    _ = try await client.call(BudgetMethods.recordCost, .with { $0.event = makeEvent("s1-\(run1)-\(caller)-\(index)", index) })
}
print("recording, 1 client, batches of 100…")
let batch1 = try await run(clients: 1) { client, caller, index in
    _ = try await client.call(BudgetMethods.recordCosts, .with { $0.events = (0..<100).map { makeEvent("b1-\(run1)-\(caller)-\(index)-\($0)", index * 100 + $0) } })
}
/// The service's group-commit counters (groups, events) from its /metrics.
func commitCounters() async -> (groups: Double, events: Double) {
    guard let url = URL(string: "http://127.0.0.1:\(adminPort)/metrics"),
          let (data, _) = try? await URLSession.shared.data(from: url) else { return (0, 0) }
    var groups = 0.0, events = 0.0
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
        let parts = line.split(separator: " ")
        guard parts.count == 2, let value = Double(parts[1]) else { continue }
        if parts[0] == "kb_budget_commit_groups_total" { groups = value }
        if parts[0] == "kb_budget_commit_events_total" { events = value }
    }
    return (groups, events)
}
let countersBefore = await commitCounters()
print("recording, 16 clients, one event per call…")
let single16 = try await run(clients: 16) { client, caller, index in
    _ = try await client.call(BudgetMethods.recordCost, .with { $0.event = makeEvent("s16-\(run1)-\(caller)-\(index)", index) })
}
let countersAfter = await commitCounters()
print("recording, 16 clients, batches of 100…")
let batch16 = try await run(clients: 16) { client, caller, index in
    _ = try await client.call(BudgetMethods.recordCosts, .with { $0.events = (0..<100).map { makeEvent("b16-\(run1)-\(caller)-\(index)-\($0)", index * 100 + $0) } })
}
let eventsPerGroup = (countersAfter.events - countersBefore.events) / max(1, countersAfter.groups - countersBefore.groups)
print("admission, 1 client (each admitted call then settled by recording its cost every 10th call)…")
let admission = try await run(clients: 1) { client, caller, index in
    _ = try await client.call(BudgetMethods.admit, .with {
        $0.provider = "openai"; $0.model = "gpt-4o-mini"; $0.estimatedCostUsd = 0.0001; $0.requestID = "adm-\(run1)-\(index)"; $0.reservationTtlMs = 2000
    })
}
print("admission, 16 clients…")
let admission16 = try await run(clients: 16) { client, caller, index in
    _ = try await client.call(BudgetMethods.admit, .with {
        $0.provider = "openai"; $0.model = "gpt-4o-mini"; $0.estimatedCostUsd = 0.0001; $0.requestID = "adm16-\(run1)-\(caller)-\(index)"; $0.reservationTtlMs = 2000
    })
}

// MARK: A month of 1M events, then reports

let status = try await client.call(BudgetMethods.getStatus, .init())
let monthStart = BudgetCalendar.Period(containing: nowMs).startMs
let span = max(1, nowMs - monthStart)
print("loading \(loadEvents) events into \(status.period) (RecordCosts batches of 5000, 2 in flight)…")
let loadStart = ContinuousClock.now
let batchSize = 5000
let batchCount = (loadEvents + batchSize - 1) / batchSize
try await withThrowingTaskGroup(of: Void.self) { group in
    for lane in 0..<2 {
        group.addTask {
            let laneClient = RPCClient(configuration: configuration)
            for batch in stride(from: lane, to: batchCount, by: 2) {
                let first = batch * batchSize
                let events = (first..<min(first + batchSize, loadEvents)).map { index in
                    makeEvent("load-\(run1)-\(index)", index, at: monthStart + Int64(index) * 7919 % span)
                }
                _ = try await laneClient.call(BudgetMethods.recordCosts, .with { $0.events = events })
            }
            await laneClient.close()
        }
    }
    try await group.waitForAll()
}
let loadRate = Double(loadEvents) / seconds(ContinuousClock.now - loadStart)

func reportTimes(_ request: Kb_Budget_V1_GetReportRequest, rounds: Int = 30) async throws -> (p50: Double, p99: Double, requests: Int64) {
    var timings: [Double] = []
    var requests: Int64 = 0
    for _ in 0..<rounds {
        let begin = ContinuousClock.now
        requests = try await client.call(BudgetMethods.getReport, request).totalRequests
        timings.append(seconds(ContinuousClock.now - begin))
    }
    timings.sort()
    return (percentile(timings, 0.5), percentile(timings, 0.99), requests)
}
let monthReport = try await reportTimes(.with { $0.period = .month })
let customReport = try await reportTimes(.with {
    $0.period = .custom
    $0.fromMs = monthStart + 3 * 3_600_000
    $0.toMs = max(monthStart + 3 * 3_600_000 + 1, nowMs - 3 * 3_600_000)
})
let weekReport = try await reportTimes(.with { $0.period = .week })
await client.close()

// MARK: Table

func rate(_ value: Double) -> String { String(format: "%9.0f", value) }
func ms(_ value: Double) -> String { String(format: "%8.3f ms", value * 1000) }
print("""

budget-benchmark (\(ProcessInfo.processInfo.activeProcessorCount) cores; every acknowledged event durable: SQLite WAL, synchronous=FULL, group commit; ledger clock pinned to 2026-06-15T12:00Z)

| recording (over loopback RPC) | events/s | p50 | p99 |
|---|---|---|---|
| 1 client, 1 event per call | \(rate(single1.perSecond)) | \(ms(percentile(single1.latencies, 0.5))) | \(ms(percentile(single1.latencies, 0.99))) |
| 1 client, 100 events per call | \(rate(batch1.perSecond * 100)) | \(ms(percentile(batch1.latencies, 0.5))) | \(ms(percentile(batch1.latencies, 0.99))) |
| 16 clients, 1 event per call (\(String(format: "%.1f", eventsPerGroup)) events per commit group) | \(rate(single16.perSecond)) | \(ms(percentile(single16.latencies, 0.5))) | \(ms(percentile(single16.latencies, 0.99))) |
| 16 clients, 100 events per call | \(rate(batch16.perSecond * 100)) | \(ms(percentile(batch16.latencies, 0.5))) | \(ms(percentile(batch16.latencies, 0.99))) |
| reference: RPC floor, GetStatus from memory, 16 clients (calls/s) | \(rate(health16.perSecond)) | \(ms(percentile(health16.latencies, 0.5))) | \(ms(percentile(health16.latencies, 0.99))) |
| bulk load, 5000 per call, 2 in flight | \(rate(loadRate)) | | |
| reference: SQLite, same inserts, one transaction (floor) | \(rate(floorBulk)) | | |
| reference: SQLite, one synced transaction per event | \(rate(floorSynced)) | | |

| admission (Admit) | calls/s | p50 | p99 |
|---|---|---|---|
| 1 client | \(rate(admission.perSecond)) | \(ms(percentile(admission.latencies, 0.5))) | \(ms(percentile(admission.latencies, 0.99))) |
| 16 clients | \(rate(admission16.perSecond)) | \(ms(percentile(admission16.latencies, 0.5))) | \(ms(percentile(admission16.latencies, 0.99))) |

| report over the month (\(monthReport.requests) events) | p50 | p99 |
|---|---|---|
| month | \(ms(monthReport.p50)) | \(ms(monthReport.p99)) |
| custom range, partial first and last day (\(customReport.requests) events) | \(ms(customReport.p50)) | \(ms(customReport.p99)) |
| week (\(weekReport.requests) events) | \(ms(weekReport.p50)) | \(ms(weekReport.p99)) |
""")
