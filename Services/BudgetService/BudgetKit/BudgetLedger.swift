import Foundation
import GRDB
import KBProto
import KBRPC
import KBSQLite
import KBTime

/// The budget: the ledger of paid LLM calls (in `BudgetStore`), the monthly limit, the routing
/// mode derived from the month's spend, admission with reservations, reports and period
/// management. Every method speaks the wire types of `kb.budget.v1`.
///
/// What is kept in memory (rebuilt from the database at open): the cost of each recent UTC day,
/// the limit and freeze, and the admission reservations (which are short-lived and not stored:
/// after a restart, callers holding one simply record their cost).
public final class BudgetLedger: @unchecked Sendable {
    /// Settings of a ledger.
    public struct Options: Sendable {
        /// The monthly limit until an operator sets one (`KB_BUDGET_MONTHLY_LIMIT_USD`).
        public var defaultLimitUSD: Double = 8.33
        /// How long an admission reservation holds when the caller names no time.
        public var reservationTTL: Duration = .seconds(300)
        /// The longest reservation a caller may ask for (a longer one is refused).
        public var maximumReservationTTL: Duration = .seconds(3600)
        /// How many unexpired reservations one caller (one client address) may hold at once; an
        /// admission past it is refused with `RESOURCE_EXHAUSTED` until some are settled,
        /// released or expired — so no caller can hold the month's budget with reservations.
        public var maximumOpenReservationsPerCaller = 1_000
        /// How long a write waits for another process's lock.
        public var busyTimeout: Duration = .seconds(5)
        /// The price table.
        public var prices = PriceTable()
        /// Now, in Unix milliseconds (tests move it).
        public var clock: @Sendable () -> Int64 = { UnixTime.nowMilliseconds() }

        public init() {}
    }

    /// The largest limit and the largest single cost accepted (USD).
    public static let maximumUSD: Double = 1_000_000
    /// The most events one RecordCosts may carry.
    public static let maximumBatch = 10_000

    public let store: BudgetStore
    public let options: Options
    let lock = NSLock()
    var state: State

    struct Reservation {
        var id: String
        var requestId: String
        /// Who holds it (the client's address), for the per-caller bound.
        var caller: String
        var nanos: Int64
        var expiresAtMs: Int64
    }

    struct State {
        var limitNanos: Int64
        var frozen: Bool
        var freezeReason: String
        /// Cost per UTC day, for days from `trackedFromDay` on.
        var daily: [Int64: Int64]
        var trackedFromDay: Int64
        var reservations: [String: Reservation] = [:]
        var reservationByRequest: [String: String] = [:]
        var reservedNanos: Int64 = 0
        /// Unexpired reservations per caller.
        var openByCaller: [String: Int] = [:]
        /// Reservations by expiry, earliest first (entries of settled ones are skipped when popped).
        var expiries = ExpiryHeap()

        func spend(of period: BudgetCalendar.Period) -> Int64 {
            var total: Int64 = 0
            for day in period.firstDay..<period.endDay { total += daily[day] ?? 0 }
            return total
        }

        mutating func removeReservation(_ id: String) -> Bool {
            guard let reservation = reservations.removeValue(forKey: id) else { return false }
            reservedNanos -= reservation.nanos
            if let open = openByCaller[reservation.caller], open > 1 {
                openByCaller[reservation.caller] = open - 1
            } else {
                openByCaller.removeValue(forKey: reservation.caller)
            }
            if !reservation.requestId.isEmpty, reservationByRequest[reservation.requestId] == id {
                reservationByRequest.removeValue(forKey: reservation.requestId)
            }
            return true
        }

        mutating func purgeExpired(now: Int64) {
            while let first = expiries.first, first.expiresAtMs <= now {
                expiries.removeFirst()
                if let reservation = reservations[first.id], reservation.expiresAtMs <= now {
                    _ = removeReservation(first.id)
                }
            }
            if reservations.isEmpty { expiries = ExpiryHeap() }
        }
    }

    /// Opens the ledger in the database file at `path`.
    public init(path: String, options: Options = Options()) throws {
        self.options = options
        let store = try BudgetStore(path: path, busyTimeout: options.busyTimeout)
        self.store = store
        do {
            let settings = try store.settings()
            let now = options.clock()
            let tracked = BudgetCalendar.Period(containing: now).previous.firstDay
            let daily = try store.dailyCosts(fromDay: tracked, toDay: Int64.max)
            state = State(
                limitNanos: settings["limit_nanos"].flatMap { Int64($0) } ?? Nanos.from(usd: options.defaultLimitUSD),
                frozen: settings["frozen"] == "1",
                freezeReason: settings["freeze_reason"] ?? "",
                daily: daily,
                trackedFromDay: tracked
            )
        } catch {
            store.close()
            throw error
        }
    }

    /// Finishes queued writes and closes the database.
    public func close() { store.close() }

    // MARK: Recording

    /// Records one event (idempotent by request id).
    public func recordCost(_ request: Kb_Budget_V1_RecordCostRequest) async throws -> Kb_Budget_V1_RecordCostResponse {
        guard request.hasEvent else { throw RPCError.invalidArgument(field: "event", reason: .required, "is required") }
        let event = try ledgerEvent(request.event, field: "event")
        let outcome = try await store.record([event], fetchDuplicates: true) { [self] results in applyRecorded(results) }
        var response = Kb_Budget_V1_RecordCostResponse()
        response.event = Self.proto(outcome.results[0].event)
        response.duplicate = outcome.results[0].duplicate
        return response
    }

    /// Records a batch atomically: every event is checked first; one bad event writes nothing.
    public func recordCosts(_ request: Kb_Budget_V1_RecordCostsRequest) async throws -> Kb_Budget_V1_RecordCostsResponse {
        guard request.events.count <= Self.maximumBatch else {
            throw RPCError.invalidArgument(field: "events", reason: .tooMany, "at most \(Self.maximumBatch) events per call (found \(request.events.count))")
        }
        var events: [LedgerEvent] = []
        events.reserveCapacity(request.events.count)
        var seen = Set<String>()
        for (index, event) in request.events.enumerated() {
            let checked = try ledgerEvent(event, field: "events[\(index)]")
            // A request id repeated inside one batch is one event, like a retry.
            if seen.insert(checked.requestId).inserted { events.append(checked) }
        }
        var response = Kb_Budget_V1_RecordCostsResponse()
        guard !events.isEmpty else { return response }
        let outcome = try await store.record(events, fetchDuplicates: false) { [self] results in applyRecorded(results) }
        let duplicates = outcome.results.filter(\.duplicate).count + (request.events.count - events.count)
        response.recorded = Int32(outcome.results.count - outcome.results.filter(\.duplicate).count)
        response.duplicates = Int32(duplicates)
        return response
    }

    /// Runs on the commit thread once events are on disk: adds their cost to the days and
    /// settles the reservations their request ids held.
    private func applyRecorded(_ results: [(event: LedgerEvent, duplicate: Bool)]) {
        lock.lock()
        defer { lock.unlock() }
        for (event, duplicate) in results {
            if !duplicate, event.day >= state.trackedFromDay {
                state.daily[event.day, default: 0] += event.costNanos
            }
            if let reservation = state.reservationByRequest[event.requestId] {
                _ = state.removeReservation(reservation)
            }
        }
    }

    /// Checks a wire event and fills in its cost and time.
    func ledgerEvent(_ event: Kb_Budget_V1_CostEvent, field: String) throws -> LedgerEvent {
        let requestId = try Self.text(event.requestID, field: "\(field).request_id", required: true, maximum: 200)
        let provider = try Self.text(event.provider, field: "\(field).provider", required: true, maximum: 100).lowercased()
        let model = try Self.text(event.model, field: "\(field).model", required: true, maximum: 200)
        let operation = try Self.text(event.operation, field: "\(field).operation", required: false, maximum: 100)
        let project = try Self.text(event.project, field: "\(field).project", required: false, maximum: 200)
        guard event.inputTokens >= 0, event.inputTokens <= 1_000_000_000 else {
            throw RPCError.invalidArgument(field: "\(field).input_tokens", reason: .outOfRange, "must be between 0 and 1000000000 (found \(event.inputTokens))")
        }
        guard event.outputTokens >= 0, event.outputTokens <= 1_000_000_000 else {
            throw RPCError.invalidArgument(field: "\(field).output_tokens", reason: .outOfRange, "must be between 0 and 1000000000 (found \(event.outputTokens))")
        }
        guard event.latencyMs >= 0, event.latencyMs <= 86_400_000 else {
            throw RPCError.invalidArgument(field: "\(field).latency_ms", reason: .outOfRange, "must be between 0 and 86400000 (found \(event.latencyMs))")
        }
        let now = options.clock()
        let timestamp = event.timestampMs == 0 ? now : event.timestampMs
        guard timestamp >= 946_684_800_000, timestamp <= now + BudgetCalendar.dayMilliseconds else {
            throw RPCError.invalidArgument(field: "\(field).timestamp_ms", reason: .outOfRange, "must be Unix milliseconds between 2000 and one day from now (found \(event.timestampMs))")
        }
        let cost: Int64
        if event.hasCostUsd {
            let usd = event.costUsd.value
            guard usd.isFinite, usd >= 0, usd <= Self.maximumUSD else {
                throw RPCError.invalidArgument(field: "\(field).cost_usd", reason: .outOfRange, "must be a finite amount between 0 and \(Int(Self.maximumUSD)) (found \(usd))")
            }
            cost = Nanos.from(usd: usd)
        } else if let computed = options.prices.costNanos(provider: provider, model: model, inputTokens: event.inputTokens, outputTokens: event.outputTokens) {
            cost = computed
        } else {
            throw RPCError.invalidArgument(field: "\(field).model", reason: .notFound, "no price for model '\(model)' of provider '\(provider)': send cost_usd or add the model to the price table (KB_BUDGET_PRICES_FILE)")
        }
        return LedgerEvent(requestId: requestId, createdAtMs: timestamp, provider: provider, model: model, operation: operation, project: project,
                           inputTokens: event.inputTokens, outputTokens: event.outputTokens, costNanos: cost, latencyMs: event.latencyMs)
    }

    static func text(_ value: String, field: String, required: Bool, maximum: Int) throws -> String {
        if value.isEmpty {
            if required { throw RPCError.invalidArgument(field: field, reason: .required, "is required") }
            return value
        }
        guard value.utf8.count <= maximum else {
            throw RPCError.invalidArgument(field: field, reason: .tooLong, "must be at most \(maximum) bytes (found \(value.utf8.count))")
        }
        // ASCII text (nearly all of it) is checked byte by byte; other text scalar by scalar.
        let utf8 = value.utf8
        let asciiControl = utf8.contains { $0 < 0x20 || $0 == 0x7F }
        let nonASCII = utf8.contains { $0 >= 0x80 }
        guard !asciiControl, !nonASCII || !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw RPCError.invalidArgument(field: field, reason: .invalidFormat, "must not contain control characters")
        }
        return value
    }

    // MARK: Status (admission: BudgetLedger+Admission.swift)

    /// The routing mode of `committed` against `limit`, exactly at the thresholds.
    static func mode(committed: Int64, limit: Int64) -> Kb_Budget_V1_RoutingMode {
        if limit <= 0 || committed >= limit { return .blocked }
        if committed * 10 >= limit * 9 { return .localOnly }
        if committed * 5 >= limit * 4 { return .preferLocal }
        return .normal
    }

    /// The month so far: spend, reservations, projection and routing mode.
    public func status() -> Kb_Budget_V1_BudgetStatus {
        let now = options.clock()
        lock.lock()
        defer { lock.unlock() }
        state.purgeExpired(now: now)
        return status(now: now)
    }

    /// Status under the lock.
    func status(now: Int64) -> Kb_Budget_V1_BudgetStatus {
        let period = BudgetCalendar.Period(containing: now)
        let today = BudgetCalendar.dayNumber(ms: now)
        let spend = state.spend(of: period)
        let limit = state.limitNanos
        var status = Kb_Budget_V1_BudgetStatus()
        status.period = period.name
        status.limitUsd = Nanos.usd(limit)
        status.spendUsd = Nanos.usd(spend)
        status.reservedUsd = Nanos.usd(state.reservedNanos)
        status.remainingUsd = Nanos.usd(max(0, limit - spend))
        status.percentage = limit > 0 ? Double(spend) / Double(limit) * 100 : 100
        let daysRemaining = Int(period.endDay - today - 1)
        status.daysRemaining = Int32(max(0, daysRemaining))
        // The recent daily average: the last seven days of the month so far, today included.
        let window = Int64(min(7, today - period.firstDay + 1))
        var recent: Int64 = 0
        for day in (today - window + 1)...today { recent += state.daily[day] ?? 0 }
        let average = Double(recent) / Double(max(1, window))
        let projected = Double(spend) + average * Double(max(0, daysRemaining))
        status.projectedSpendUsd = projected / Nanos.perDollar
        status.projectedOverageUsd = max(0, projected - Double(limit)) / Nanos.perDollar
        status.frozen = state.frozen
        status.freezeReason = state.freezeReason
        status.mode = state.frozen ? .blocked : Self.mode(committed: spend, limit: limit)
        return status
    }

    // MARK: Period management

    /// Sets the monthly limit (kept in the database; wins over the configured default).
    public func setLimit(_ request: Kb_Budget_V1_SetLimitRequest) async throws -> Kb_Budget_V1_BudgetStatus {
        let usd = request.limitUsd
        guard usd.isFinite, usd > 0, usd <= Self.maximumUSD else {
            throw RPCError.invalidArgument(field: "limit_usd", reason: .outOfRange, "must be a finite amount above 0 and at most \(Int(Self.maximumUSD)) (found \(usd))")
        }
        let nanos = Nanos.from(usd: usd)
        try await store.update(settings: ["limit_nanos": String(nanos)], action: "set-limit", detail: Self.dollars(nanos), at: options.clock()) { [self] in
            lock.lock()
            state.limitNanos = nanos
            lock.unlock()
        }
        return status()
    }

    /// Turns the operator freeze on: paid providers are refused until `unfreeze`.
    public func freeze(_ request: Kb_Budget_V1_FreezeRequest) async throws -> Kb_Budget_V1_BudgetStatus {
        let reason = try Self.text(request.reason, field: "reason", required: false, maximum: 500)
        try await store.update(settings: ["frozen": "1", "freeze_reason": reason], action: "freeze", detail: reason, at: options.clock()) { [self] in
            lock.lock()
            state.frozen = true
            state.freezeReason = reason
            lock.unlock()
        }
        return status()
    }

    /// Turns the operator freeze off.
    public func unfreeze() async throws -> Kb_Budget_V1_BudgetStatus {
        try await store.update(settings: ["frozen": "0", "freeze_reason": ""], action: "unfreeze", detail: "", at: options.clock()) { [self] in
            lock.lock()
            state.frozen = false
            state.freezeReason = ""
            lock.unlock()
        }
        return status()
    }

    /// The monthly reset: archives every event before the current month (the finished month and
    /// any older stragglers) and records the finished month as reset. Safe to run twice.
    public func resetPeriod() async throws -> Kb_Budget_V1_ResetPeriodResponse {
        let now = options.clock()
        let current = BudgetCalendar.Period(containing: now)
        let outcome = try await store.archive(before: current, at: now)
        // Forget days before the previous month: they no longer matter to the status.
        let keepFrom = current.previous.firstDay
        lock.withLock {
            if state.trackedFromDay < keepFrom {
                state.daily = state.daily.filter { $0.key >= keepFrom }
                state.trackedFromDay = keepFrom
            }
        }
        var response = Kb_Budget_V1_ResetPeriodResponse()
        response.archivedPeriod = outcome.period
        response.archivedEvents = outcome.archivedEvents
        response.alreadyDone = outcome.alreadyDone
        response.status = status()
        return response
    }

    // MARK: Reads

    /// Events newest first, with filters; the cursor continues after the last row returned.
    public func listEvents(_ request: Kb_Budget_V1_ListEventsRequest) throws -> Kb_Budget_V1_ListEventsResponse {
        guard request.limit >= 0, request.limit <= 1000 else {
            throw RPCError.invalidArgument(field: "limit", reason: .outOfRange, "must be between 0 and 1000 (found \(request.limit))")
        }
        let limit = request.limit == 0 ? 100 : Int(request.limit)
        var filter = LedgerQueries.EventFilter()
        filter.fromMs = request.fromMs == 0 ? nil : request.fromMs
        filter.toMs = request.toMs == 0 ? nil : request.toMs
        filter.provider = request.provider.isEmpty ? nil : request.provider.lowercased()
        filter.model = request.model.isEmpty ? nil : request.model
        filter.operation = request.operation.isEmpty ? nil : request.operation
        filter.project = request.project.isEmpty ? nil : request.project
        if !request.cursor.isEmpty {
            let parts = request.cursor.split(separator: ".")
            guard parts.count == 2, let ms = Int64(parts[0]), let id = Int64(parts[1]) else {
                throw RPCError.invalidArgument(field: "cursor", reason: .invalidFormat, "is not a cursor this service returned")
            }
            filter.after = (ms, id)
        }
        let events = try store.read { db in try LedgerQueries.events(db, filter: filter, limit: limit + 1) }
        var response = Kb_Budget_V1_ListEventsResponse()
        response.events = events.prefix(limit).map(Self.proto)
        if events.count > limit, let last = events.prefix(limit).last {
            response.nextCursor = "\(last.createdAtMs).\(last.id)"
        }
        return response
    }

    /// The price table.
    public func listPrices() -> Kb_Budget_V1_ListPricesResponse {
        var response = Kb_Budget_V1_ListPricesResponse()
        response.prices = options.prices.all.map { price in
            var entry = Kb_Budget_V1_ModelPrice()
            entry.provider = price.provider
            entry.model = price.model
            entry.inputUsdPerMillion = price.inputPerMillion
            entry.outputUsdPerMillion = price.outputPerMillion
            return entry
        }
        for provider in options.prices.localProviders.sorted() {
            var entry = Kb_Budget_V1_ModelPrice()
            entry.provider = provider
            entry.model = "*"
            entry.local = true
            response.prices.append(entry)
        }
        return response
    }

    /// A consistent copy of the database at `path` on the server, while serving.
    public func backup(_ request: Kb_Budget_V1_BackupRequest) throws -> Kb_Budget_V1_BackupResponse {
        guard !request.path.isEmpty else { throw RPCError.invalidArgument(field: "path", reason: .required, "is required") }
        let destination = URL(fileURLWithPath: request.path).standardizedFileURL
        guard !FileManager.default.fileExists(atPath: destination.path) else {
            throw RPCError(.alreadyExists, field: "path", reason: nil, "\(destination.path) already exists")
        }
        let bytes: Int64
        do {
            bytes = try SQLiteDatabase.backup(store.pool, to: destination)
        } catch let failure as SQLiteDatabase.Failure {
            throw RPCError(.failedPrecondition, "backup failed: \(failure)")
        }
        let counts = try SQLiteDatabase.checkFile(path: destination.path).isEmpty ? try Self.counts(ofFile: destination.path) : (0, 0)
        var response = Kb_Budget_V1_BackupResponse()
        response.path = destination.path
        response.bytes = bytes
        response.events = counts.0
        response.archivedEvents = counts.1
        return response
    }

    static func counts(ofFile path: String) throws -> (Int64, Int64) {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in
            (try Int64.fetchOne(db, sql: "SELECT count(*) FROM cost_events") ?? 0,
             try Int64.fetchOne(db, sql: "SELECT count(*) FROM cost_archive") ?? 0)
        }
    }

    /// SQLite's integrity check and the daily totals against the events.
    public func verify() throws -> Kb_Budget_V1_VerifyResponse {
        var response = Kb_Budget_V1_VerifyResponse()
        do {
            response.problems = try SQLiteDatabase.integrityProblems(store.pool)
        } catch {
            throw store.noted(SQLiteDatabase.failure(error, path: store.path))
        }
        if !response.problems.isEmpty {
            store.noteDamage("integrity check of \(store.path) failed: \(response.problems.prefix(3).joined(separator: "; ")). To recover: \(BudgetStore.restoreAdvice)")
        }
        if response.problems.isEmpty {
            response.problems = try store.read { db in try LedgerQueries.totalProblems(db) }
        }
        let counts = try store.counts()
        response.events = counts.events
        response.archivedEvents = counts.archived
        response.ok = response.problems.isEmpty
        return response
    }

    // MARK: Helpers

    static func proto(_ event: LedgerEvent) -> Kb_Budget_V1_CostEvent {
        var message = Kb_Budget_V1_CostEvent()
        message.requestID = event.requestId
        message.provider = event.provider
        message.model = event.model
        message.operation = event.operation
        message.project = event.project
        message.inputTokens = event.inputTokens
        message.outputTokens = event.outputTokens
        message.costUsd = .with { $0.value = Nanos.usd(event.costNanos) }
        message.latencyMs = event.latencyMs
        message.timestampMs = event.createdAtMs
        return message
    }

    /// "$1.234567" with as many decimals as matter (at least two).
    public static func dollars(_ nanos: Int64) -> String {
        let usd = Nanos.usd(nanos)
        var text = String(format: "%.6f", usd)
        while text.hasSuffix("0"), let dot = text.firstIndex(of: "."), text.distance(from: dot, to: text.endIndex) > 3 { text.removeLast() }
        return "$" + text
    }
}

/// A binary min-heap of (expiry, reservation id): expired reservations are found in O(log n)
/// per reservation instead of scanning all of them on every admission.
struct ExpiryHeap {
    private var items: [(expiresAtMs: Int64, id: String)] = []

    var first: (expiresAtMs: Int64, id: String)? { items.first }

    mutating func insert(_ item: (Int64, String)) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].expiresAtMs < items[parent].expiresAtMs else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func removeFirst() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count, items[left].expiresAtMs < items[smallest].expiresAtMs { smallest = left }
            if right < items.count, items[right].expiresAtMs < items[smallest].expiresAtMs { smallest = right }
            guard smallest != parent else { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
