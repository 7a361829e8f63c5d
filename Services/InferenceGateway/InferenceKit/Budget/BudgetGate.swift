import Foundation
import KBProto
import KBRPC
import Logging
import Metrics
import Synchronization

/// One paid call as the budget sees it.
public struct Admission: Sendable {
    public var provider: String
    public var model: String
    public var operation: String
    public var project: String
    /// Unique per provider call: it settles the reservation and makes recording idempotent.
    public var requestId: String
    public var estimatedInputTokens: Int
    public var maximumOutputTokens: Int
}

/// What the budget says about a paid call.
public enum AdmissionDecision: Sendable, Equatable {
    case allowed(reservationId: String)
    case denied(reason: String)
}

/// The routing mode the budget asks for (from the month's spend).
public enum BudgetMode: Sendable, Equatable {
    case normal, preferLocal, localOnly
}

/// The budget as the router uses it: admission before a paid call, the real cost after it.
public protocol BudgetGate: Sendable {
    /// The mode to route by now.
    var mode: BudgetMode { get }
    /// Asks to make a paid call (local providers never ask).
    func admit(_ admission: Admission) async -> AdmissionDecision
    /// The call ended: its real usage is recorded (success) or its reservation released (failure).
    /// Returns the call's cost in USD when it is known (priced usage), else nil.
    @discardableResult
    func settle(_ admission: Admission, reservationId: String, usage: TokenUsage?, latencyMs: Int64) -> Double?
}

/// The budget gate backed by budget-service over RPC (`Admit`, `RecordCost`,
/// `ReleaseReservation`, `ListPrices`, `GetStatus`).
///
/// - Estimates: the prompt's tokens (characters / 4, plus 4 per message) and `max_tokens`
///   (1,024 when unset), priced by budget-service's own table (`ListPrices`, refreshed every
///   minute). A paid model the table does not price is refused: no spending that cannot be counted.
/// - If budget-service does not answer, paid calls are refused (`failOpen` false, the default)
///   and local calls go.
/// - Costs are recorded after each paid call with its real usage and the admission's request
///   id (idempotent); a recording that fails is kept and retried every second (at most 10,000).
public final class BudgetServiceGate: BudgetGate, Sendable {
    let client: RPCClient
    let failOpen: Bool
    let logger: Logger
    private let state = Mutex(State())

    struct State {
        /// Recordings and releases sent but not answered yet (drained at shutdown).
        var inFlight = 0
        var prices: [String: (input: Double, output: Double)] = [:]
        var pricesLoadedAt: ContinuousClock.Instant?
        var mode: BudgetMode = .normal
        var pending: [Kb_Budget_V1_CostEvent] = []
    }

    public init(client: RPCClient, failOpen: Bool, logger: Logger) {
        self.client = client
        self.failOpen = failOpen
        self.logger = logger
    }

    public var mode: BudgetMode { state.withLock { $0.mode } }

    /// Recordings waiting to be retried.
    public var pendingRecordings: Int { state.withLock { $0.pending.count } }

    public func admit(_ admission: Admission) async -> AdmissionDecision {
        do {
            try await loadPricesIfStale()
            guard let price = price(of: admission) else {
                return .denied(reason: "budget-service's price table has no price for \(admission.provider)/\(admission.model): a paid call that cannot be counted is refused (add it with KB_BUDGET_PRICES_FILE)")
            }
            let estimate = (Double(admission.estimatedInputTokens) * price.input + Double(admission.maximumOutputTokens) * price.output) / 1_000_000
            let response = try await client.call(BudgetMethods.admit, .with {
                $0.provider = admission.provider
                $0.model = admission.model
                $0.operation = admission.operation
                $0.project = admission.project
                $0.estimatedCostUsd = estimate
                $0.requestID = admission.requestId
            }, options: CallOptions(timeout: .seconds(2)))
            update(mode: response.status.mode)
            switch response.decision {
            case .allow, .preferLocal: return .allowed(reservationId: response.reservationID)
            case .deny, .UNRECOGNIZED: return .denied(reason: "budget: \(response.reason)")
            }
        } catch {
            if failOpen { return .allowed(reservationId: "") }
            return .denied(reason: "budget-service does not answer (\(error)): paid providers are refused until it does; local ones are not")
        }
    }

    @discardableResult
    public func settle(_ admission: Admission, reservationId: String, usage: TokenUsage?, latencyMs: Int64) -> Double? {
        guard let usage else {
            // The call failed: nothing was spent (providers do not bill failed calls).
            guard !reservationId.isEmpty else { return nil }
            state.withLock { $0.inFlight += 1 }
            Task {
                // A release that fails only holds the estimate until the reservation's TTL.
                _ = try? await client.call(BudgetMethods.releaseReservation, .with { $0.reservationID = reservationId }, options: CallOptions(timeout: .seconds(2)))
                state.withLock { $0.inFlight -= 1 }
            }
            return nil
        }
        var event = Kb_Budget_V1_CostEvent()
        event.requestID = admission.requestId
        event.provider = admission.provider
        event.model = admission.model
        event.operation = admission.operation.isEmpty ? "complete" : admission.operation
        event.project = admission.project
        event.inputTokens = Int64(usage.inputTokens)
        event.outputTokens = Int64(usage.outputTokens)
        event.latencyMs = latencyMs
        event.timestampMs = Int64(Date().timeIntervalSince1970 * 1000)
        state.withLock { $0.inFlight += 1 }
        let recorded = event
        Task {
            await record([recorded])
            state.withLock { $0.inFlight -= 1 }
        }
        // The gateway's own view of the spend (budget-service's ledger is the record).
        guard let price = price(of: admission) else { return nil }
        let cost = (Double(usage.inputTokens) * price.input + Double(usage.outputTokens) * price.output) / 1_000_000
        FloatingPointCounter(label: "knowledge_inference_cost_usd", dimensions: [("provider", admission.provider), ("operation", recorded.operation)]).increment(by: cost)
        return cost
    }

    /// budget-service's price of the admission's model (per million tokens), or the provider's `*` price.
    func price(of admission: Admission) -> (input: Double, output: Double)? {
        state.withLock { $0.prices["\(admission.provider)\u{0}\(admission.model)"] ?? $0.prices["\(admission.provider)\u{0}*"] }
    }

    /// At shutdown: waits (at most `timeout`) for recordings in flight, then records the pending
    /// ones, trying again every 100 ms until `timeout` (the client may still be backing off from
    /// budget-service's absence when it is back); returns how many cost events could not be
    /// recorded (they are logged).
    public func drain(timeout: Duration = .seconds(5)) async -> Int {
        let end = ContinuousClock.now + timeout
        while state.withLock({ $0.inFlight }) > 0, ContinuousClock.now < end {
            try? await Task.sleep(for: .milliseconds(10))
        }
        while true {
            let pending: [Kb_Budget_V1_CostEvent] = state.withLock { state in
                defer { state.pending = [] }
                return state.pending
            }
            if pending.isEmpty { break }
            await record(pending, logFailure: false)
            guard ContinuousClock.now < end, state.withLock({ !$0.pending.isEmpty }) else { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        let lost = state.withLock { $0.pending }
        if !lost.isEmpty {
            logger.error("cost events not recorded at shutdown: record them by hand with kb budget", metadata: ["events": "\(lost.map { "\($0.requestID) \($0.provider)/\($0.model) in=\($0.inputTokens) out=\($0.outputTokens)" }.joined(separator: "; "))"])
        }
        return lost.count
    }

    /// Records events; what fails waits for `retryPending` (logged unless `logFailure` is false).
    func record(_ events: [Kb_Budget_V1_CostEvent], logFailure: Bool = true) async {
        do {
            _ = try await client.call(BudgetMethods.recordCosts, .with { $0.events = events }, options: CallOptions(timeout: .seconds(5)))
        } catch {
            let dropped: Int = state.withLock { state in
                state.pending.append(contentsOf: events)
                let over = max(0, state.pending.count - 10_000)
                state.pending.removeFirst(over)
                return over
            }
            if logFailure || dropped > 0 {
                logger.error("could not record LLM costs with budget-service; retrying every second", metadata: ["events": "\(events.count)", "error": "\(error)", "dropped": "\(dropped)"])
            }
        }
    }

    /// Retries recordings that failed, and refreshes the mode (the service's tick calls it).
    public func tick() async {
        let pending: [Kb_Budget_V1_CostEvent] = state.withLock { state in
            defer { state.pending = [] }
            return state.pending
        }
        if !pending.isEmpty { await record(pending) }
        if let status = try? await client.call(BudgetMethods.getStatus, .init(), options: CallOptions(timeout: .seconds(2))) {
            update(mode: status.mode)
        }
    }

    private func update(mode: Kb_Budget_V1_RoutingMode) {
        let mapped: BudgetMode = switch mode {
        case .preferLocal: .preferLocal
        case .localOnly, .blocked: .localOnly
        default: .normal
        }
        state.withLock { $0.mode = mapped }
    }

    private func loadPricesIfStale() async throws {
        let stale = state.withLock { state in state.pricesLoadedAt.map { ContinuousClock.now - $0 > .seconds(60) } ?? true }
        guard stale else { return }
        let response = try await client.call(BudgetMethods.listPrices, .init(), options: CallOptions(timeout: .seconds(2)))
        var prices: [String: (input: Double, output: Double)] = [:]
        for price in response.prices { prices["\(price.provider)\u{0}\(price.model)"] = (price.inputUsdPerMillion, price.outputUsdPerMillion) }
        state.withLock { state in
            state.prices = prices
            state.pricesLoadedAt = .now
        }
    }
}

/// The prompt's token estimate used before a call (and for usage a provider does not report):
/// characters / 4 plus 4 per message.
public func estimatedTokens(_ messages: [ChatMessage]) -> Int {
    messages.reduce(0) { $0 + $1.content.utf8.count / 4 + 4 }
}
