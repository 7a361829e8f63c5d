import Foundation
import KBRPC
import Testing

@testable import KBRuntime

@Suite("The one HTTP error body")
struct APIErrorTests {
    @Test("the body lists status, code, field, reason, message in that order, and is valid JSON for any text")
    func body() throws {
        let error = APIError.invalid("events[3].cost_usd", reason: .outOfRange, "must be \"finite\"\n\u{1}\\ ✓")
        #expect(error.body == #"{"error":{"status":400,"code":"invalid_argument","field":"events[3].cost_usd","reason":"OUT_OF_RANGE","message":"must be \"finite\"\n\u0001\\ ✓"}}"#)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(error.body.utf8)) as? [String: Any])
        #expect((parsed["error"] as? [String: Any])?["message"] as? String == "must be \"finite\"\n\u{1}\\ ✓")
        // Without field and reason the members are left out, not null.
        #expect(APIError(.unauthorized, "unauthenticated", "no token").body == #"{"error":{"status":401,"code":"unauthenticated","message":"no token"}}"#)
    }

    @Test("an RPC error keeps its field and reason; the message loses only the 'field: ' it starts with")
    func fromRPCError() {
        let invalid = APIError(RPCError.invalidArgument(field: "reason", reason: .tooLong, "must be at most 500 bytes"))
        #expect(invalid.status.code == 400)
        #expect(invalid.code == "invalid_argument")
        #expect(invalid.field == "reason" && invalid.reason == .tooLong)
        #expect(invalid.message == "must be at most 500 bytes")

        let unavailable = APIError(RPCError(.unavailable, "budget database unavailable: disk I/O error"))
        #expect(unavailable.status.code == 503 && unavailable.code == "unavailable")
        #expect(unavailable.field == nil && unavailable.reason == nil)
        #expect(unavailable.message == "budget database unavailable: disk I/O error", "a colon in a message without a field is left alone")

        let missing = APIError(RPCError(.failedPrecondition, field: "relations[0].to", reason: .notFound, "entity 'X' does not exist"))
        #expect(missing.status.code == 409 && missing.code == "failed_precondition" && missing.field == "relations[0].to")
        #expect(APIError(RPCError(.notFound, "gone")).status.code == 404)
        #expect(APIError(RPCError(.unauthenticated, "no")).status.code == 401)
        #expect(APIError(RPCError(.internal, "boom")).status.code == 500)
    }
}
