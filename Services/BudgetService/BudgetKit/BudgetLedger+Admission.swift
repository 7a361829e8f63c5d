import Foundation
import KBProto
import KBRPC

// Admission: reservations held against the month's budget while paid calls run.
extension BudgetLedger {
    /// Decides whether a call may go ahead. Local providers are always allowed. For a paid call
    /// the decision counts the month's spend plus every unexpired reservation: a freeze, 100% or
    /// 90% (local-only) deny it, as does an estimate that would take the committed total over the
    /// limit; 80% answers prefer-local. An allowed estimate is held as a reservation until a cost
    /// with the same request id is recorded, the reservation is released, or it expires — so
    /// concurrent callers can never together be admitted past the limit.
    ///
    /// `caller` identifies who asks (the service passes the client's address): one caller holds
    /// at most `maximumOpenReservationsPerCaller` reservations at a time.
    public func admit(_ request: Kb_Budget_V1_AdmitRequest, caller: String = "local") throws -> Kb_Budget_V1_AdmitResponse {
        let provider = try Self.text(request.provider, field: "provider", required: true, maximum: 100).lowercased()
        _ = try Self.text(request.model, field: "model", required: false, maximum: 200)
        let requestId = try Self.text(request.requestID, field: "request_id", required: false, maximum: 200)
        let estimateUSD = request.estimatedCostUsd
        guard estimateUSD.isFinite, estimateUSD >= 0, estimateUSD <= Self.maximumUSD else {
            throw RPCError.invalidArgument(field: "estimated_cost_usd", reason: .outOfRange, "must be a finite amount between 0 and \(Int(Self.maximumUSD)) (found \(estimateUSD))")
        }
        guard request.reservationTtlMs >= 0 else {
            throw RPCError.invalidArgument(field: "reservation_ttl_ms", reason: .outOfRange, "must not be negative (found \(request.reservationTtlMs))")
        }
        let maximumTTL = options.maximumReservationTTL.inMilliseconds
        guard request.reservationTtlMs <= maximumTTL else {
            throw RPCError.invalidArgument(
                field: "reservation_ttl_ms", reason: .outOfRange,
                "must be at most \(maximumTTL) ms (\(maximumTTL / 60_000) minutes) (found \(request.reservationTtlMs)): a reservation holds budget only while its call runs"
            )
        }
        let ttl = request.reservationTtlMs == 0 ? min(options.reservationTTL.inMilliseconds, maximumTTL) : request.reservationTtlMs
        let estimate = Nanos.from(usd: estimateUSD)
        let now = options.clock()

        lock.lock()
        defer { lock.unlock() }
        state.purgeExpired(now: now)
        var response = Kb_Budget_V1_AdmitResponse()
        if options.prices.isLocal(provider: provider) {
            response.decision = .allow
            response.reason = "local provider '\(provider)': free, never blocked"
            response.status = status(now: now)
            return response
        }
        // A new admission for the same request id replaces the old one.
        if !requestId.isEmpty, let previous = state.reservationByRequest[requestId] {
            _ = state.removeReservation(previous)
        }
        let open = state.openByCaller[caller] ?? 0
        guard open < options.maximumOpenReservationsPerCaller else {
            throw RPCError(
                .resourceExhausted,
                "caller \(caller) already holds \(open) open reservations (at most \(options.maximumOpenReservationsPerCaller), KB_BUDGET_MAX_OPEN_RESERVATIONS_PER_CALLER): record the costs of finished calls or release the reservations of calls not made"
            )
        }
        let period = BudgetCalendar.Period(containing: now)
        let spend = state.spend(of: period)
        let limit = state.limitNanos
        let committed = spend + state.reservedNanos
        let mode = Self.mode(committed: committed, limit: limit)
        let used = String(format: "%.1f%%", limit > 0 ? Double(committed) / Double(limit) * 100 : 100)
        let figures = "\(Self.dollars(committed)) of \(Self.dollars(limit)) spent or reserved"
        if state.frozen {
            response.decision = .deny
            response.reason = "budget frozen by an operator" + (state.freezeReason.isEmpty ? "" : " (\(state.freezeReason))") + ": paid providers are refused, local ones are not"
        } else if mode == .blocked {
            response.decision = .deny
            response.reason = "monthly budget exhausted (\(used), \(figures)): paid providers are refused, local ones are not"
        } else if mode == .localOnly {
            response.decision = .deny
            response.reason = "local-only mode from 90% (\(used), \(figures)): use a local provider"
        } else if committed + estimate > limit {
            response.decision = .deny
            response.reason = "the estimate \(Self.dollars(estimate)) would exceed the monthly limit (\(figures))"
        } else {
            response.decision = mode == .preferLocal ? .preferLocal : .allow
            response.reason = mode == .preferLocal
                ? "prefer a local provider from 80% (\(used), \(figures)); a paid call is admitted"
                : "within budget (\(used), \(figures))"
            let id = UUID().uuidString.lowercased()
            let reservation = Reservation(id: id, requestId: requestId, caller: caller, nanos: estimate, expiresAtMs: now + ttl)
            state.reservations[id] = reservation
            state.openByCaller[caller, default: 0] += 1
            state.expiries.insert((reservation.expiresAtMs, id))
            state.reservedNanos += estimate
            if !requestId.isEmpty { state.reservationByRequest[requestId] = id }
            response.reservationID = id
            response.expiresAtMs = reservation.expiresAtMs
        }
        response.status = status(now: now)
        return response
    }

    /// Releases a reservation (the call was not made). False when it was unknown or already gone.
    public func release(_ request: Kb_Budget_V1_ReleaseReservationRequest) throws -> Kb_Budget_V1_ReleaseReservationResponse {
        guard !request.reservationID.isEmpty else { throw RPCError.invalidArgument(field: "reservation_id", reason: .required, "is required") }
        lock.lock()
        defer { lock.unlock() }
        var response = Kb_Budget_V1_ReleaseReservationResponse()
        response.released = state.removeReservation(request.reservationID)
        return response
    }
}
