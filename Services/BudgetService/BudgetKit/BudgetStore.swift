import Foundation
import GRDB
import KBRPC
import KBRuntime
import KBSQLite
import Metrics
import KBTime

/// One recorded LLM call, as stored.
public struct LedgerEvent: Sendable, Hashable {
    /// The row id (unique across the live and the archive table; ordering ties break on it).
    public var id: Int64 = 0
    public var requestId: String
    public var createdAtMs: Int64
    public var provider: String
    public var model: String
    public var operation: String
    public var project: String
    public var inputTokens: Int64
    public var outputTokens: Int64
    public var costNanos: Int64
    public var latencyMs: Int64

    public init(id: Int64 = 0, requestId: String, createdAtMs: Int64, provider: String, model: String, operation: String, project: String, inputTokens: Int64, outputTokens: Int64, costNanos: Int64, latencyMs: Int64) {
        self.id = id
        self.requestId = requestId
        self.createdAtMs = createdAtMs
        self.provider = provider
        self.model = model
        self.operation = operation
        self.project = project
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.costNanos = costNanos
        self.latencyMs = latencyMs
    }

    /// The UTC day of the event.
    public var day: Int64 { BudgetCalendar.dayNumber(ms: createdAtMs) }
}

/// The ledger's SQLite database (`<data>/budget/knowledge.db`): schema and migrations, the group
/// commit thread every write goes through, and the reads.
///
/// Tables:
/// - `cost_events`: the calls of periods not yet archived, `request_id` unique.
/// - `cost_archive`: the calls of archived periods (same columns plus `period`), moved there by
///   the monthly reset; `request_id` unique here too, and a request id is never in both.
/// - `cost_daily` and `cost_hourly`: per UTC day (hour) × provider × model × operation × project,
///   the requests, tokens and cost of both tables. Kept in the same transaction as the events they
///   sum, they serve every report without reading events but for the partial hours at the ends of
///   a custom range (a month over 1M events reads a few thousand rows); `Verify` checks both
///   against the events.
/// - `settings` (limit, freeze), `budget_actions` (who changed what, for incident reports),
///   `period_resets` (archived periods).
/// - view `cost_tracking`: the events in the operations guide's column names (`cost` in USD,
///   `tokens`, `created_at` as SQLite datetime text), so its `sqlite3` queries work unchanged.
public final class BudgetStore: @unchecked Sendable {
    /// The database file.
    public let path: String
    let pool: DatabasePool
    private let writer: GroupCommitter
    private let damageLock = NSLock()
    private var firstDamage: String?

    /// What an operator does when the ledger is damaged; every damage message ends with it.
    public static let restoreAdvice = "stop budget-service (`kb down`) and restore the last backup with `kb budget restore FILE` (or `budget-service restore FILE`, `deploy/scripts/budget-restore.sh analytics_<date>.db.gz`); the damaged file is kept beside it as knowledge.db.pre-restore.<time>"

    /// Opens (creating and migrating) the database at `path`.
    public init(path: String, busyTimeout: Duration = .seconds(5)) throws {
        self.path = path
        var options = SQLiteDatabase.Options()
        options.busyTimeout = busyTimeout
        options.label = "kb.budget"
        options.restoreAdvice = Self.restoreAdvice
        pool = try SQLiteDatabase.open(path: path, options: options)
        do {
            try Self.migrator.migrate(pool)
        } catch {
            throw SQLiteDatabase.failure(error, path: path)
        }
        let archived = try pool.read { db in try String.fetchAll(db, sql: "SELECT period FROM period_resets") }
        writer = GroupCommitter(pool: pool, path: path, archivedPeriods: Set(archived))
    }

    /// Creates (or migrates) the schema in the database at `path` and closes it.
    public static func createSchema(path: String) throws {
        try BudgetStore(path: path).close()
    }

    /// Stops the commit thread after what is queued, then closes the database.
    public func close() {
        writer.close()
        try? pool.close()
    }

    /// The last write failure, if the last group failed (cleared by the next success).
    public var lastWriteFailure: SQLiteDatabase.Failure? { writer.lastFailure }

    // MARK: Schema

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: ledger, archive, daily totals, settings") { db in
            let columns = """
                request_id TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL,
                provider TEXT NOT NULL,
                model TEXT NOT NULL,
                operation TEXT NOT NULL,
                project TEXT NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cost_nanos INTEGER NOT NULL,
                latency_ms INTEGER NOT NULL
                """
            try db.execute(sql: """
                CREATE TABLE cost_events (id INTEGER PRIMARY KEY AUTOINCREMENT, \(columns));
                CREATE UNIQUE INDEX idx_cost_request ON cost_events(request_id);
                CREATE INDEX idx_cost_created ON cost_events(created_at_ms);
                CREATE INDEX idx_cost_provider_date ON cost_events(provider, created_at_ms DESC);
                CREATE TABLE cost_archive (id INTEGER PRIMARY KEY, period TEXT NOT NULL, \(columns));
                CREATE UNIQUE INDEX idx_archive_request ON cost_archive(request_id);
                CREATE INDEX idx_archive_created ON cost_archive(created_at_ms);
                CREATE TABLE cost_daily (
                    day INTEGER NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
                    operation TEXT NOT NULL, project TEXT NOT NULL,
                    requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL,
                    output_tokens INTEGER NOT NULL, cost_nanos INTEGER NOT NULL,
                    PRIMARY KEY (day, provider, model, operation, project)
                ) WITHOUT ROWID;
                CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                CREATE TABLE budget_actions (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);
                CREATE TABLE period_resets (period TEXT PRIMARY KEY, archived_events INTEGER NOT NULL, archived_cost_nanos INTEGER NOT NULL, reset_at_ms INTEGER NOT NULL);
                CREATE VIEW cost_tracking AS
                    SELECT id, request_id, provider, model, operation, project, input_tokens, output_tokens,
                           input_tokens + output_tokens AS tokens, cost_nanos / 1e9 AS cost, latency_ms,
                           strftime('%Y-%m-%d %H:%M:%S', created_at_ms / 1000, 'unixepoch') AS created_at
                    FROM cost_events;
                """)
        }
        migrator.registerMigration("v2: hourly totals") { db in
            try db.execute(sql: """
                CREATE TABLE cost_hourly (
                    hour INTEGER NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
                    operation TEXT NOT NULL, project TEXT NOT NULL,
                    requests INTEGER NOT NULL, input_tokens INTEGER NOT NULL,
                    output_tokens INTEGER NOT NULL, cost_nanos INTEGER NOT NULL,
                    PRIMARY KEY (hour, provider, model, operation, project)
                ) WITHOUT ROWID;
                INSERT INTO cost_hourly
                    SELECT created_at_ms / 3600000, provider, model, operation, project, count(*), sum(input_tokens), sum(output_tokens), sum(cost_nanos)
                    FROM (SELECT created_at_ms, provider, model, operation, project, input_tokens, output_tokens, cost_nanos FROM cost_events
                          UNION ALL
                          SELECT created_at_ms, provider, model, operation, project, input_tokens, output_tokens, cost_nanos FROM cost_archive)
                    GROUP BY 1, 2, 3, 4, 5;
                """)
        }
        return migrator
    }

    // MARK: Writes (all through the group committer)

    /// What one recording changed.
    public struct RecordOutcome: Sendable {
        /// Per input event: the stored event and whether it was a duplicate of one already stored.
        public var results: [(event: LedgerEvent, duplicate: Bool)]
    }

    /// Stores `events` (validated, costs filled in) in the next group; a request id already stored
    /// is a duplicate and changes nothing. `applied` runs on the commit thread once the group is on
    /// disk, before the caller resumes, in commit order.
    public func record(_ events: [LedgerEvent], fetchDuplicates: Bool, applied: @escaping @Sendable ([(event: LedgerEvent, duplicate: Bool)]) -> Void) async throws -> RecordOutcome {
        try await writer.commit({ transaction in
            var results: [(LedgerEvent, Bool)] = []
            results.reserveCapacity(events.count)
            for event in events {
                if let stored = try transaction.insert(event) {
                    results.append((stored, false))
                } else if fetchDuplicates {
                    results.append((try transaction.storedEvent(requestId: event.requestId) ?? event, true))
                } else {
                    results.append((event, true))
                }
            }
            return RecordOutcome(results: results)
        }, applied: { outcome in
            applied(outcome.results)
        })
    }

    /// Writes settings and an action record in the next group; `applied` runs once on disk.
    public func update(settings: [String: String], action: String, detail: String, at ms: Int64, applied: @escaping @Sendable () -> Void) async throws {
        try await writer.commit({ transaction in
            for (key, value) in settings {
                try transaction.db.execute(sql: "INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [key, value])
            }
            try transaction.db.execute(sql: "INSERT INTO budget_actions(at_ms, action, detail) VALUES (?, ?, ?)", arguments: [ms, action, detail])
        }, applied: { _ in applied() })
    }

    /// What a monthly reset did.
    public struct ResetOutcome: Sendable {
        public var period: String
        public var archivedEvents: Int64
        public var archivedCostNanos: Int64
        public var alreadyDone: Bool
    }

    /// Moves every event before `current` into the archive (each tagged with its own month) and
    /// marks `current.previous` as reset. Running it again moves nothing and reports `alreadyDone`.
    public func archive(before current: BudgetCalendar.Period, at ms: Int64) async throws -> ResetOutcome {
        let finished = current.previous
        return try await writer.commit({ transaction in
            let db = transaction.db
            let boundary = current.startMs
            let row = try Row.fetchOne(db, sql: "SELECT count(*), COALESCE(sum(cost_nanos), 0) FROM cost_events WHERE created_at_ms < ?", arguments: [boundary])!
            let moved: Int64 = row[0]
            let movedCost: Int64 = row[1]
            try db.execute(sql: """
                INSERT INTO cost_archive (id, period, request_id, created_at_ms, provider, model, operation, project, input_tokens, output_tokens, cost_nanos, latency_ms)
                SELECT id, strftime('%Y-%m', created_at_ms / 1000, 'unixepoch'), request_id, created_at_ms, provider, model, operation, project, input_tokens, output_tokens, cost_nanos, latency_ms
                FROM cost_events WHERE created_at_ms < ?
                """, arguments: [boundary])
            try db.execute(sql: "DELETE FROM cost_events WHERE created_at_ms < ?", arguments: [boundary])
            let already = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM period_resets WHERE period = ?)", arguments: [finished.name]) ?? false
            if already {
                try db.execute(sql: "UPDATE period_resets SET archived_events = archived_events + ?, archived_cost_nanos = archived_cost_nanos + ? WHERE period = ?", arguments: [moved, movedCost, finished.name])
            } else {
                let total = try Row.fetchOne(db, sql: "SELECT count(*), COALESCE(sum(cost_nanos), 0) FROM cost_archive WHERE period = ?", arguments: [finished.name])!
                try db.execute(sql: "INSERT INTO period_resets(period, archived_events, archived_cost_nanos, reset_at_ms) VALUES (?, ?, ?, ?)",
                               arguments: [finished.name, total[0] as Int64, total[1] as Int64, ms])
            }
            try db.execute(sql: "INSERT INTO budget_actions(at_ms, action, detail) VALUES (?, 'reset', ?)",
                           arguments: [ms, "archived \(moved) events before \(current.name)"])
            // Every period up to the finished one is now archived: later events of those months go
            // straight into the archive.
            var marked = Set<String>()
            let periods = try String.fetchAll(db, sql: "SELECT DISTINCT period FROM cost_archive")
            for name in periods { marked.insert(name) }
            marked.insert(finished.name)
            transaction.archivedPeriods.formUnion(marked)
            return ResetOutcome(period: finished.name, archivedEvents: moved, archivedCostNanos: movedCost, alreadyDone: already && moved == 0)
        }, applied: { _ in })
    }

    // MARK: Reads

    /// A read on a reader connection (never blocked by the writer, WAL).
    public func read<R>(_ body: (Database) throws -> R) throws -> R {
        do {
            return try pool.read(body)
        } catch let error as RPCError {
            throw error
        } catch {
            throw noted(SQLiteDatabase.failure(error, path: path))
        }
    }

    /// Why the ledger cannot be trusted, or nil: SQLite reported the database damaged while
    /// serving (a read, a write or an integrity check). Health answers unhealthy with it.
    public var damage: String? {
        if let first = damageLock.withLock({ firstDamage }) { return first }
        if let failure = writer.lastFailure, failure.isDamaged { return "\(failure). To recover: \(Self.restoreAdvice)" }
        return nil
    }

    /// Keeps `failure` when it is damage, and returns the error callers see.
    func noted(_ failure: SQLiteDatabase.Failure) -> RPCError {
        if failure.isDamaged { noteDamage("\(failure). To recover: \(Self.restoreAdvice)") }
        return Self.unavailable(failure)
    }

    /// Records damage found while serving (the first reason is kept).
    func noteDamage(_ reason: String) {
        damageLock.withLock { if firstDamage == nil { firstDamage = reason } }
    }

    /// The stored settings.
    public func settings() throws -> [String: String] {
        try read { db in
            var values: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT key, value FROM settings") { values[row[0]] = row[1] }
            return values
        }
    }

    /// Per-day cost of days in `[fromDay, toDay)`, from the daily totals.
    public func dailyCosts(fromDay: Int64, toDay: Int64) throws -> [Int64: Int64] {
        try read { db in
            var result: [Int64: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT day, sum(cost_nanos) FROM cost_daily WHERE day >= ? AND day < ? GROUP BY day", arguments: [fromDay, toDay]) {
                result[row[0]] = row[1]
            }
            return result
        }
    }

    /// Row counts of the live and archive tables.
    public func counts() throws -> (events: Int64, archived: Int64) {
        try read { db in
            let live = try Int64.fetchOne(db, sql: "SELECT count(*) FROM cost_events") ?? 0
            let archived = try Int64.fetchOne(db, sql: "SELECT count(*) FROM cost_archive") ?? 0
            return (live, archived)
        }
    }

    /// Probes the database for writing: takes and releases the write lock (busy timeout applies),
    /// through the commit thread so it never competes with our own writes.
    public func probeWrite() async throws {
        try await writer.commit({ _ in }, applied: { _ in })
    }

    /// The error callers see when the database cannot be used.
    static func unavailable(_ failure: SQLiteDatabase.Failure) -> RPCError {
        if failure.isLocked {
            return RPCError(.unavailable, "budget database is locked by another process: \(failure)")
        }
        if failure.isDamaged {
            return RPCError(.dataLoss, "budget database is damaged: \(failure)")
        }
        return RPCError(.unavailable, "budget database unavailable: \(failure)")
    }
}

/// The writes of one group, inside one SQLite transaction.
final class LedgerTransaction {
    let db: Database
    var archivedPeriods: Set<String>
    /// Events inserted in this group, for the daily totals written before commit.
    private(set) var inserted: [LedgerEvent] = []

    init(db: Database, archivedPeriods: Set<String>) {
        self.db = db
        self.archivedPeriods = archivedPeriods
    }

    /// The end of the latest archived period: events from then on are never archived on arrival.
    var archivedEndMs: Int64 {
        if let cached = cachedArchivedEnd, cached.count == archivedPeriods.count { return cached.end }
        let end = archivedPeriods.compactMap { BudgetCalendar.Period($0)?.endMs }.max() ?? Int64.min
        cachedArchivedEnd = (archivedPeriods.count, end)
        return end
    }
    private var cachedArchivedEnd: (count: Int, end: Int64)?

    /// Inserts `event` unless its request id is already stored (in either table); returns the
    /// stored event (with its id) or nil for a duplicate.
    func insert(_ event: LedgerEvent) throws -> LedgerEvent? {
        let statement = try db.cachedStatement(sql: """
            INSERT INTO cost_events (request_id, created_at_ms, provider, model, operation, project, input_tokens, output_tokens, cost_nanos, latency_ms)
            SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM cost_archive WHERE request_id = ?)
            ON CONFLICT(request_id) DO NOTHING
            """)
        statement.setUncheckedArguments([
            event.requestId, event.createdAtMs, event.provider, event.model, event.operation, event.project,
            event.inputTokens, event.outputTokens, event.costNanos, event.latencyMs, event.requestId,
        ])
        try statement.execute()
        guard db.changesCount == 1 else { return nil }
        var stored = event
        stored.id = db.lastInsertedRowID
        if event.createdAtMs < archivedEndMs, case let period = BudgetCalendar.Period(containing: event.createdAtMs).name, archivedPeriods.contains(period) {
            // A late event of an archived month joins its month in the archive.
            try db.execute(sql: """
                INSERT INTO cost_archive (id, period, request_id, created_at_ms, provider, model, operation, project, input_tokens, output_tokens, cost_nanos, latency_ms)
                SELECT id, ?, request_id, created_at_ms, provider, model, operation, project, input_tokens, output_tokens, cost_nanos, latency_ms FROM cost_events WHERE id = ?
                """, arguments: [period, stored.id])
            try db.execute(sql: "DELETE FROM cost_events WHERE id = ?", arguments: [stored.id])
            try db.execute(sql: "UPDATE period_resets SET archived_events = archived_events + 1, archived_cost_nanos = archived_cost_nanos + ? WHERE period = ?", arguments: [event.costNanos, period])
        }
        inserted.append(stored)
        return stored
    }

    /// The stored event with this request id, from either table.
    func storedEvent(requestId: String) throws -> LedgerEvent? {
        try LedgerQueries.event(db, requestId: requestId)
    }

    /// Adds the inserted events to the daily and hourly totals, one upsert per distinct key.
    func writeDailyTotals() throws {
        guard !inserted.isEmpty else { return }
        try writeTotals(table: "cost_daily", bucket: "day", milliseconds: BudgetCalendar.dayMilliseconds)
        try writeTotals(table: "cost_hourly", bucket: "hour", milliseconds: 3_600_000)
    }

    private func writeTotals(table: String, bucket: String, milliseconds: Int64) throws {
        struct Key: Hashable { var bucket: Int64; var provider, model, operation, project: String }
        var totals: [Key: (requests: Int64, input: Int64, output: Int64, cost: Int64)] = [:]
        for event in inserted {
            let key = Key(bucket: event.createdAtMs / milliseconds, provider: event.provider, model: event.model, operation: event.operation, project: event.project)
            var total = totals[key] ?? (0, 0, 0, 0)
            total.requests += 1
            total.input += event.inputTokens
            total.output += event.outputTokens
            total.cost += event.costNanos
            totals[key] = total
        }
        let statement = try db.cachedStatement(sql: """
            INSERT INTO \(table) (\(bucket), provider, model, operation, project, requests, input_tokens, output_tokens, cost_nanos)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(\(bucket), provider, model, operation, project) DO UPDATE SET
                requests = requests + excluded.requests,
                input_tokens = input_tokens + excluded.input_tokens,
                output_tokens = output_tokens + excluded.output_tokens,
                cost_nanos = cost_nanos + excluded.cost_nanos
            """)
        for (key, total) in totals {
            statement.setUncheckedArguments([key.bucket, key.provider, key.model, key.operation, key.project, total.requests, total.input, total.output, total.cost])
            try statement.execute()
        }
    }
}

/// Group commit for SQLite: writes queue here and one thread runs as many as are waiting in one
/// `BEGIN IMMEDIATE … COMMIT` (synchronous = FULL, so the commit is on disk when it returns),
/// then answers each caller. Concurrent recorders share one fsync; an acknowledged event
/// survives `kill -9`. A failed group fails every write in it and changes nothing.
final class GroupCommitter: @unchecked Sendable {
    /// One write: `run` inside the group's transaction, `applied` on the commit thread with its
    /// result once the group is on disk, before its caller resumes.
    private struct Job {
        let run: (LedgerTransaction) throws -> any Sendable
        let applied: (any Sendable) -> Void
    }

    private let pool: DatabasePool
    private let path: String
    private var archivedPeriods: Set<String>
    private let failureLock = NSLock()
    private var failure: SQLiteDatabase.Failure?
    private let groupCounter = Counter(label: "kb_budget_commit_groups_total")
    private let jobCounter = Counter(label: "kb_budget_commit_writes_total")
    private let eventCounter = Counter(label: "kb_budget_commit_events_total")
    private let commitTimer = Timer(label: "kb_budget_commit_seconds")
    private var queue: GroupCommitQueue<Job, any Sendable>!

    init(pool: DatabasePool, path: String, archivedPeriods: Set<String>) {
        self.pool = pool
        self.path = path
        self.archivedPeriods = archivedPeriods
        queue = GroupCommitQueue(
            name: "budget commit", maxJobsPerGroup: 1024,
            closedError: { RPCError(.unavailable, "budget service is shutting down") }
        ) { [unowned self] jobs in self.runGroup(jobs) }
    }

    var lastFailure: SQLiteDatabase.Failure? {
        failureLock.lock()
        defer { failureLock.unlock() }
        return failure
    }

    /// Runs `body` in the next group; once the group is on disk, `applied` runs on the commit
    /// thread with the result and then the caller resumes with it. A caller cancelled before its
    /// write joins a group gets `CancellationError` and nothing of it is written.
    func commit<R: Sendable>(_ body: @escaping (LedgerTransaction) throws -> R, applied: @escaping (R) -> Void) async throws -> R {
        try await queue.submit(Job(run: { try body($0) }, applied: { applied($0 as! R) })) as! R
    }

    func close() {
        queue.close()
    }

    deinit {
        queue.close()
    }

    private func runGroup(_ jobs: [Job]) -> [Result<any Sendable, any Error>] {
        var periods = archivedPeriods
        var events = 0
        var results: [any Sendable] = []
        let start = ContinuousClock.now
        do {
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    let transaction = LedgerTransaction(db: db, archivedPeriods: archivedPeriods)
                    results = try jobs.map { try $0.run(transaction) }
                    try transaction.writeDailyTotals()
                    periods = transaction.archivedPeriods
                    events = transaction.inserted.count
                    return .commit
                }
            }
            commitTimer.recordNanoseconds((ContinuousClock.now - start).inNanoseconds)
            groupCounter.increment()
            jobCounter.increment(by: jobs.count)
            eventCounter.increment(by: events)
        } catch {
            let failure: RPCError
            if let error = error as? RPCError {
                failure = error
            } else {
                let sqlite = SQLiteDatabase.failure(error, path: path)
                setFailure(sqlite)
                failure = BudgetStore.unavailable(sqlite)
            }
            return jobs.map { _ in .failure(failure) }
        }
        archivedPeriods = periods
        setFailure(nil)
        for (job, result) in zip(jobs, results) { job.applied(result) }
        return results.map { .success($0) }
    }

    private func setFailure(_ value: SQLiteDatabase.Failure?) {
        failureLock.lock()
        failure = value
        failureLock.unlock()
    }
}
