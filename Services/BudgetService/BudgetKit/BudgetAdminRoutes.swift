import Foundation
import Hummingbird
import KBProto
import KBRPC
import KBRuntime
import NIOCore

/// The runbook endpoints of the operations guide, on the admin port beside `/health` and
/// `/metrics`:
///
///     GET  /internal/budget/status     the month's status (JSON)
///     POST /internal/budget/reset      the monthly reset (archive the finished month)
///     POST /internal/budget/freeze     the emergency freeze; body {"reason": "..."} or ?reason=
///     POST /internal/budget/unfreeze
///
/// When `KB_AUTH_TOKEN` is set, the POSTs need `Authorization: Bearer <token>` (401 otherwise).
/// Errors are the system's one HTTP error body (KBRuntime's `APIError`),
/// `{"error": {"status", "code", "field", "reason", "message"}}`: 400 (bad body, naming the
/// field), 401, 413, 503 (database unavailable).
public enum BudgetAdminRoutes {
    /// The largest request body read.
    static let maximumBody = 64 * 1024

    /// Adds the routes to `router`.
    public static func add(to router: Router<BasicRequestContext>, service: BudgetService, authToken: String?) {
        router.get("/internal/budget/status") { _, _ -> Response in
            await respond { try statusJSON(service.current().status()) }
        }
        router.post("/internal/budget/reset") { request, _ -> Response in
            if let denied = unauthorized(request, token: authToken) { return denied }
            return await respond {
                let response = try await service.current().resetPeriod()
                service.publish()
                return [
                    "archived_period": response.archivedPeriod,
                    "archived_events": response.archivedEvents,
                    "already_done": response.alreadyDone,
                    "status": statusJSON(response.status),
                ]
            }
        }
        router.post("/internal/budget/freeze") { request, context -> Response in
            if let denied = unauthorized(request, token: authToken) { return denied }
            var reason = request.uri.queryParameters.get("reason") ?? ""
            do {
                let body = try await request.body.collect(upTo: maximumBody)
                if body.readableBytes > 0 {
                    guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
                        return APIError.invalid("body", reason: .invalidFormat, "must be a JSON object like {\"reason\": \"...\"}").response
                    }
                    if let given = object["reason"] {
                        guard let text = given as? String else { return APIError.invalid("reason", reason: .invalidFormat, "must be a string").response }
                        reason = text
                    }
                }
            } catch {
                return APIError(.contentTooLarge, "body_too_large", field: "body", reason: .tooLong, "the body is larger than \(maximumBody) bytes").response
            }
            let finalReason = reason
            return await respond {
                var freeze = Kb_Budget_V1_FreezeRequest()
                freeze.reason = finalReason
                let status = try await service.current().freeze(freeze)
                service.publish()
                return statusJSON(status)
            }
        }
        router.post("/internal/budget/unfreeze") { request, _ -> Response in
            if let denied = unauthorized(request, token: authToken) { return denied }
            return await respond {
                let status = try await service.current().unfreeze()
                service.publish()
                return statusJSON(status)
            }
        }
    }

    /// The status as the guide's scripts read it (snake_case, the mode as a word).
    public static func statusJSON(_ status: Kb_Budget_V1_BudgetStatus) -> [String: Any] {
        [
            "period": status.period,
            "limit_usd": status.limitUsd,
            "spend_usd": status.spendUsd,
            "reserved_usd": status.reservedUsd,
            "remaining_usd": status.remainingUsd,
            "percentage": status.percentage,
            "days_remaining": Int(status.daysRemaining),
            "projected_spend_usd": status.projectedSpendUsd,
            "projected_overage_usd": status.projectedOverageUsd,
            "mode": status.mode.name,
            "frozen": status.frozen,
            "freeze_reason": status.freezeReason,
        ]
    }

    static func respond(_ body: () async throws -> [String: Any]) async -> Response {
        do {
            return json(try await body(), status: .ok)
        } catch let failure as RPCError {
            return APIError(failure).response
        } catch {
            return APIError(.internalServerError, "internal", "\(error)").response
        }
    }

    static func unauthorized(_ request: Request, token: String?) -> Response? {
        guard let token else { return nil }
        if BearerToken.matches(request.headers[.authorization], token: token) { return nil }
        return APIError(.unauthorized, "unauthenticated", "missing or wrong 'Authorization: Bearer <KB_AUTH_TOKEN>'").response
    }

    static func json(_ object: [String: Any], status: HTTPResponse.Status) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(
            status: status,
            headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}
