import Foundation
import KBProto
import Testing

@testable import KBRPC

/// A method that fails the way a service's validation does, naming the field at fault.
private let failingMethod = RPCMethod<Kb_Health_V1_HealthCheckRequest, Kb_Health_V1_HealthCheckResponse>("test.v1.Test/Fail")

private func failingRouter() -> RPCRouter {
    var router = testRouter()
    router.register(failingMethod) { request, _ in
        switch request.service {
        case "name": throw RPCError.invalidArgument(field: "entities[0].name", reason: .nameInvalid, "may hold only letters, digits, space, '_', '-' and '.' (found '/')")
        case "end": throw RPCError(.failedPrecondition, field: "relations[3].to", reason: .notFound, "entity 'Ghost' does not exist in team 't'")
        default: throw RPCError(.unavailable, "store is closed")
        }
    }
    return router
}

@Suite("RPC errors carry their field and reason to the client")
struct RPCErrorDetailsTests {
    @Test("a handler's field and reason arrive at the client, the message still reads 'field: rule'")
    func fieldAndReasonRoundTrip() async throws {
        try await withServer(router: failingRouter()) { _, port in
            let client = makeClient(port: port)
            let name = await expectRPCError(.invalidArgument) { _ = try await client.call(failingMethod, .with { $0.service = "name" }) }
            #expect(name?.field == "entities[0].name")
            #expect(name?.reason == .nameInvalid)
            #expect(name?.reason?.rawValue == "NAME_INVALID")
            #expect(name?.message == "entities[0].name: may hold only letters, digits, space, '_', '-' and '.' (found '/')")

            let end = await expectRPCError(.failedPrecondition) { _ = try await client.call(failingMethod, .with { $0.service = "end" }) }
            #expect(end?.field == "relations[3].to")
            #expect(end?.reason == .notFound)

            let plain = await expectRPCError(.unavailable) { _ = try await client.call(failingMethod, .with { $0.service = "other" }) }
            #expect(plain?.field == nil)
            #expect(plain?.reason == nil)
            #expect(plain?.message == "store is closed")
            await client.close()
        }
    }

    @Test("the field and reason are proto3 fields 3 and 4 of kb.rpc.v1.Status on the wire")
    func wireEncoding() throws {
        let error = RPCError.invalidArgument(field: "events[3].cost_usd", reason: .outOfRange, "must be a finite amount")
        let bytes: [UInt8] = try error.status.serializedBytes()
        // code = 3 (varint), message, field (tag 3, length-delimited), reason (tag 4).
        let field = Array("events[3].cost_usd".utf8), reason = Array("OUT_OF_RANGE".utf8)
        #expect(bytes.starts(with: [0x08, 0x03, 0x12]))
        #expect(Array(bytes.suffix(field.count + reason.count + 4)) == [0x1A, UInt8(field.count)] + field + [0x22, UInt8(reason.count)] + reason)
        // A status from a peer that knows no details still decodes, with none.
        var old = Kb_Rpc_V1_Status()
        old.code = .notFound
        old.message = "gone"
        let decoded = try #require(RPCError(status: try Kb_Rpc_V1_Status(serializedBytes: old.serializedBytes() as [UInt8])))
        #expect(decoded == RPCError(.notFound, "gone"))
        #expect(RPCError(status: error.status) == error)
    }
}
