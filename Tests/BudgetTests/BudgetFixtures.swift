import BudgetKit
import Foundation
import KBProto
import KBRPC
import KBTestSupport

/// A clock the test moves.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64

    init(_ ms: Int64) { value = ms }

    var ms: Int64 {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }

    func advance(_ milliseconds: Int64) { lock.withLock { value += milliseconds } }
}

/// Unix milliseconds of a UTC date and time.
func utc(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 0, _ minute: Int = 0) -> Int64 {
    BudgetCalendar.dayNumber(year: year, month: month, day: day) * 86_400_000 + Int64(hour) * 3_600_000 + Int64(minute) * 60_000
}

/// A fresh ledger in a temporary folder on a real SQLite file, with a test clock.
func withLedger<R>(
    limit: Double = 10,
    now: Int64 = utc(2026, 11, 15, 12),
    prices: PriceTable = PriceTable(),
    path: String? = nil,
    _ body: (BudgetLedger, TestClock) async throws -> R
) async throws -> R {
    let clock = TestClock(now)
    let file = path ?? temporaryDirectory("budget").appendingPathComponent("knowledge.db").path
    var options = BudgetLedger.Options()
    options.defaultLimitUSD = limit
    options.prices = prices
    options.clock = { clock.ms }
    let ledger = try BudgetLedger(path: file, options: options)
    do {
        let result = try await body(ledger, clock)
        ledger.close()
        return result
    } catch {
        ledger.close()
        throw error
    }
}

/// A cost event.
func costEvent(
    _ id: String,
    provider: String = "openai",
    model: String = "gpt-4o-mini",
    usd: Double? = nil,
    input: Int64 = 1000,
    output: Int64 = 500,
    operation: String = "extract",
    project: String = "coding",
    at ms: Int64 = 0
) -> Kb_Budget_V1_CostEvent {
    var event = Kb_Budget_V1_CostEvent()
    event.requestID = id
    event.provider = provider
    event.model = model
    event.operation = operation
    event.project = project
    event.inputTokens = input
    event.outputTokens = output
    event.latencyMs = 120
    event.timestampMs = ms
    if let usd { event.costUsd = .with { $0.value = usd } }
    return event
}

extension BudgetLedger {
    /// Records one event and returns the response.
    @discardableResult
    func record(_ event: Kb_Budget_V1_CostEvent) async throws -> Kb_Budget_V1_RecordCostResponse {
        try await recordCost(.with { $0.event = event })
    }

    /// Asks to make a paid call.
    func admit(provider: String = "openai", estimate: Double, requestId: String = "", ttlMs: Int64 = 0) throws -> Kb_Budget_V1_AdmitResponse {
        try admit(.with {
            $0.provider = provider
            $0.model = "gpt-4o-mini"
            $0.estimatedCostUsd = estimate
            $0.requestID = requestId
            $0.reservationTtlMs = ttlMs
        })
    }
}

/// The RPC error a call threw, or nil.
func rpcError(_ body: () async throws -> Void) async -> RPCError? {
    do {
        try await body()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        return RPCError(.unknown, "\(error)")
    }
}
