import Foundation
import Hummingbird
import KBProto
import KBRPC
import KBRuntime
import KBSQLite
import Logging
import Metrics
import ServiceLifecycle

/// The budget service as a running thing: owns the ledger (reopening the database when it could
/// not be opened: a corrupt or locked file leaves the service up, unhealthy, answering
/// UNAVAILABLE with the reason, until an operator fixes or restores it), registers the RPC
/// methods, the health components, the metrics and the runbook endpoints of the admin port.
public final class BudgetService: Service, @unchecked Sendable {
    /// The database file.
    public let path: String
    private let options: BudgetLedger.Options
    private let logger: Logger
    private let lock = NSLock()
    private var ledger: BudgetLedger?
    private var openFailure: String?
    private let retryInterval: Duration
    /// The only folder `Backup` writes to (`KB_BACKUP_DIR`).
    public let backupRoot: BackupRoot

    private let budgetGauge = Gauge(label: "knowledge_monthly_budget_usd")
    private let spendGauge = Gauge(label: "knowledge_monthly_spend_usd")
    private let reservedGauge = Gauge(label: "knowledge_budget_reserved_usd")
    private let modeGauge = Gauge(label: "knowledge_budget_routing_mode")
    private let frozenGauge = Gauge(label: "knowledge_budget_frozen")
    private let databaseUpGauge = Gauge(label: "knowledge_budget_database_up")

    /// Opens the ledger at `path`; a failure is logged and kept, not thrown. Backups go inside
    /// `backupRoot` only.
    public init(path: String, options: BudgetLedger.Options, backupRoot: BackupRoot, logger: Logger, retryInterval: Duration = .seconds(1)) {
        self.path = path
        self.backupRoot = backupRoot
        self.options = options
        self.logger = logger
        self.retryInterval = retryInterval
        tryOpen()
    }

    /// The ledger, or UNAVAILABLE naming why the database cannot be used.
    public func current() throws -> BudgetLedger {
        lock.lock()
        defer { lock.unlock() }
        if let ledger { return ledger }
        throw RPCError(.unavailable, "budget database unavailable: \(openFailure ?? "not open")")
    }

    private func tryOpen() {
        do {
            let opened = try BudgetLedger(path: path, options: options)
            lock.lock()
            ledger = opened
            let wasFailing = openFailure != nil
            openFailure = nil
            lock.unlock()
            logger.info(wasFailing ? "budget database opened after earlier failures" : "budget database opened", metadata: ["path": "\(path)"])
        } catch {
            let message = (error as? SQLiteDatabase.Failure)?.description ?? "\(error)"
            lock.lock()
            let repeated = openFailure == message
            openFailure = message
            lock.unlock()
            if !repeated {
                logger.error("cannot open the budget database; serving UNAVAILABLE until it opens", metadata: ["path": "\(path)", "error": "\(message)"])
            }
        }
    }

    /// Every second: publishes the gauges and, while the database is not open, retries opening it; on shutdown
    /// finishes queued writes and closes the database.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.tick()
                try await Task.sleep(for: self.retryInterval)
            }
        }
        shutDown()
    }

    private func shutDown() {
        lock.lock()
        let ledger = self.ledger
        self.ledger = nil
        openFailure = "the service is shutting down"
        lock.unlock()
        ledger?.close()
    }

    func tick() {
        if (try? current()) == nil { tryOpen() }
        publish()
    }

    /// Sets the budget gauges from the ledger's status.
    public func publish() {
        guard let ledger = try? current() else {
            databaseUpGauge.record(0)
            return
        }
        let status = ledger.status()
        budgetGauge.record(status.limitUsd)
        spendGauge.record(status.spendUsd)
        reservedGauge.record(status.reservedUsd)
        modeGauge.record(status.mode.rawValue)
        frozenGauge.record(status.frozen ? 1 : 0)
        databaseUpGauge.record(ledger.store.lastWriteFailure == nil ? 1 : 0)
    }

    // MARK: RPC

    /// Who holds a reservation: the client's IP address without its port (`[IPv4]h/1.2.3.4:5` →
    /// `1.2.3.4`), so one client's connections share one bound.
    static func caller(of context: RPCContext) -> String {
        var address = Substring(context.peer)
        if let bracket = address.firstIndex(of: "]"), address.hasPrefix("[") { address = address[address.index(after: bracket)...] }
        if let slash = address.lastIndex(of: "/") { address = address[address.index(after: slash)...] }
        if let colon = address.lastIndex(of: ":") { address = address[..<colon] }
        return address.isEmpty ? context.peer : String(address)
    }

    /// Registers every method of `kb.budget.v1.Budget`. Writes wait for the group commit; reads
    /// that scan SQLite (reports, listings, backup, verify) run on the server's blocking pool;
    /// status, admission, releases and prices are in-memory reads answered on the event loop.
    public func register(on router: inout RPCRouter) {
        // Recording and admission leave the gauges to the once-a-second tick (hot paths).
        router.register(BudgetMethods.recordCost) { request, _ in try await self.current().recordCost(request) }
        router.register(BudgetMethods.recordCosts) { request, _ in try await self.current().recordCosts(request) }
        router.register(BudgetMethods.listEvents, on: .threadPool) { request, _ in try self.current().listEvents(request) }
        router.register(BudgetMethods.getStatus, on: .eventLoop) { _, _ in try self.current().status() }
        router.register(BudgetMethods.admit, on: .eventLoop) { request, context in try self.current().admit(request, caller: Self.caller(of: context)) }
        router.register(BudgetMethods.releaseReservation, on: .eventLoop) { request, _ in try self.current().release(request) }
        router.register(BudgetMethods.getReport, on: .threadPool) { request, _ in try self.current().report(request) }
        router.register(BudgetMethods.resetPeriod) { _, context in
            let response = try await self.current().resetPeriod()
            context.logger.notice("monthly reset", metadata: ["archived_period": "\(response.archivedPeriod)", "archived_events": "\(response.archivedEvents)", "already_done": "\(response.alreadyDone)"])
            self.publish()
            return response
        }
        router.register(BudgetMethods.setLimit) { request, context in
            let status = try await self.current().setLimit(request)
            context.logger.notice("monthly limit set", metadata: ["limit_usd": "\(status.limitUsd)"])
            self.publish()
            return status
        }
        router.register(BudgetMethods.freeze) { request, context in
            let status = try await self.current().freeze(request)
            context.logger.warning("budget frozen: paid providers refused", metadata: ["reason": "\(status.freezeReason)"])
            self.publish()
            return status
        }
        router.register(BudgetMethods.unfreeze) { _, context in
            let status = try await self.current().unfreeze()
            context.logger.notice("budget unfrozen")
            self.publish()
            return status
        }
        router.register(BudgetMethods.listPrices, on: .eventLoop) { _, _ in try self.current().listPrices() }
        router.register(BudgetMethods.backup, on: .threadPool) { request, context in
            let ledger = try self.current()
            var inside = request
            inside.path = try self.backupRoot.newBackup(request.path, field: "path").path
            let response = try ledger.backup(inside)
            context.logger.info("backup written", metadata: ["path": "\(response.path)", "events": "\(response.events)", "bytes": "\(response.bytes)"])
            return response
        }
        router.register(BudgetMethods.verify, on: .threadPool) { _, context in
            let response = try self.current().verify()
            if !response.ok { context.logger.error("verify found problems", metadata: ["problems": "\(response.problems.joined(separator: "; "))"]) }
            return response
        }
    }

    // MARK: Health

    /// `database` (open, writable within two seconds, sizes; unhealthy with the reason when the
    /// database could not be opened or SQLite reported it damaged while serving) and `budget` (degraded from 95% or
    /// while frozen, the guide's "warning").
    public func registerHealth(on health: HealthRegistry) {
        let path = self.path
        health.register("database") {
            let ledger: BudgetLedger
            do { ledger = try self.current() } catch {
                return ComponentHealth(.unhealthy, ["engine": "sqlite", "path": .string(path), "error": .string((error as? RPCError)?.message ?? "\(error)")])
            }
            if let damage = ledger.store.damage {
                return ComponentHealth(.unhealthy, ["engine": "sqlite", "path": .string(path), "error": .string(damage)])
            }
            do {
                try await Self.withTimeout(.seconds(2)) { try await ledger.store.probeWrite() }
            } catch let error as RPCError {
                return ComponentHealth(.unhealthy, ["engine": "sqlite", "path": .string(path), "error": .string(error.message)])
            } catch {
                return ComponentHealth(.unhealthy, ["engine": "sqlite", "path": .string(path), "error": "the database did not take a write lock within 2 s (locked by another process?)"])
            }
            var details: [String: HealthDetail] = ["engine": "sqlite", "journal_mode": "wal", "path": .string(path)]
            if let counts = try? ledger.store.counts() {
                details["events"] = .integer(counts.events)
                details["archived_events"] = .integer(counts.archived)
            }
            if let size = try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64 {
                details["bytes"] = .integer(size)
            }
            return ComponentHealth(.healthy, details)
        }
        health.register("budget") {
            guard let ledger = try? self.current() else { return ComponentHealth(.unhealthy, ["error": "no ledger: the database is not open"]) }
            let status = ledger.status()
            let warning = status.percentage > 95 || status.frozen
            return ComponentHealth(warning ? .degraded : .healthy, [
                "state": warning ? "warning" : "ok",
                "period": .string(status.period),
                "spend": .number(status.spendUsd),
                "limit": .number(status.limitUsd),
                "percentage": .number((status.percentage * 100).rounded() / 100),
                "mode": .string(status.mode.name),
                "frozen": .boolean(status.frozen),
            ])
        }
    }

    static func withTimeout<R: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> R) async throws -> R {
        try await withThrowingTaskGroup(of: R.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                throw CancellationError()
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }
}

extension BudgetService: RPCService {
    /// The service itself: its timer publishes the gauges and reopens a failed database, and its
    /// shutdown closes the ledger.
    public var lifecycleServices: [any Service] { [self] }

    /// The runbook endpoints of the operations guide (`/internal/budget/…`).
    public func addAdminRoutes(to router: Router<BasicRequestContext>, configuration: ServiceConfiguration) {
        BudgetAdminRoutes.add(to: router, service: self, authToken: configuration.authToken)
    }
}
