import Foundation
import KBTestSupport
import Testing

/// Builds a C client with protoc-c and libprotobuf-c from Protos/ and has it call a real service
/// process: the proof that our wire format is protobuf-c's.
@Suite("protobuf-c interop")
struct ProtobufCInteropTests {
    /// Generates the C code for the protos the client uses and compiles the client.
    private func buildClient() throws -> URL {
        let work = temporaryDirectory("kb-interop")
        let protos = ["kb/rpc/v1/envelope.proto", "kb/health/v1/health.proto", "kb/graph/v1/graph.proto", "kb/budget/v1/budget.proto"]
        let generate = try runProgram(
            URL(fileURLWithPath: "/usr/bin/env"),
            ["protoc-c", "-I", packageRoot.appendingPathComponent("Protos").path, "--c_out=\(work.path)"] + protos
        )
        #expect(generate.status == 0, "protoc-c failed: \(generate.stderr)")
        let binary = work.appendingPathComponent("interop_client")
        let sources = [packageRoot.appendingPathComponent("Tests/InteropTests/c/interop_client.c").path]
            + protos.map { work.appendingPathComponent($0.replacingOccurrences(of: ".proto", with: ".pb-c.c")).path }
        let compile = try runProgram(
            URL(fileURLWithPath: "/usr/bin/env"),
            ["cc", "-std=gnu11", "-Wall", "-Werror", "-I", work.path, "-o", binary.path] + sources + ["-lprotobuf-c"]
        )
        #expect(compile.status == 0, "cc failed: \(compile.stderr)")
        return binary
    }

    @Test("a protobuf-c client calls Health/Check and PutEntities with nested, repeated and map fields")
    func cClientSpeaksOurProtocol() async throws {
        let client = try buildClient()
        let token = "interop-token-123"
        let service = try ServiceProcess(executable: "kb-fixture-service", envPrefix: "KB_FIXTURE_SERVICE", environment: ["KB_AUTH_TOKEN": token])
        try await service.waitUntilReady()

        let result = try runProgram(client, ["127.0.0.1", "\(service.port)", token])
        #expect(result.status == 0, "client failed: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("health: status=SERVING service=fixture-service version=0.1.0"))
        #expect(lines.contains("component: fixture=healthy"))
        #expect(lines.contains("put: created=2"))
        #expect(lines.contains("entity: name=RetryWithBackoff type=Pattern team=interop significance=8 confidence=0.90 source=1 stamped=yes"))
        #expect(lines.contains("observation: retry with exponential backoff and jitter | type=insight | tags=networking,resilience"))
        #expect(lines.contains("observation: cap the number of attempts | type= | tags="))
        #expect(lines.contains("metadata: origin=protobuf-c"))
        #expect(lines.contains("entity: name=Use LevelDB type=Decision team=interop significance=5 confidence=0.00 source=2 stamped=yes"))
        #expect(lines.contains("unknown: code=12"))

        // The same client with a wrong token: the map-carried token is really checked.
        let refused = try runProgram(client, ["127.0.0.1", "\(service.port)", "wrong"])
        #expect(refused.stdout.contains("put: code=16"))
        #expect(await service.stop() == 0)
    }

    @Test("the protobuf-c client records costs (nested optional cost), is deduplicated, admits and reads the budget of a real budget-service")
    func cClientCallsTheBudgetService() async throws {
        let client = try buildClient()
        let token = "interop-budget"
        let service = try ServiceProcess(executable: "budget-service", envPrefix: "KB_BUDGET_SERVICE", environment: ["KB_AUTH_TOKEN": token, "KB_BUDGET_MONTHLY_LIMIT_USD": "10"])
        try await service.waitUntilReady()
        let result = try runProgram(client, ["127.0.0.1", "\(service.port)", token, "budget"])
        #expect(result.status == 0, "client failed: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("health: status=SERVING service=budget-service version=0.1.0"))
        #expect(lines.contains("component: database=healthy"))
        #expect(lines.contains("record: id=c-1 cost=0.125 duplicate=0 stamped=yes"))
        #expect(lines.contains("record: id=c-2 cost=1.380 duplicate=0 stamped=yes"), "no cost sent: priced from the table")
        #expect(lines.contains("record: id=c-1 cost=0.125 duplicate=1 stamped=yes"))
        #expect(lines.contains("admit: decision=0 reservation=yes reserved=0.500"))
        #expect(lines.contains("status: limit=10.00 spend=1.505 mode=0 frozen=0"))
        #expect(lines.contains("record: code=3 field=event.request_id reason=REQUIRED message=event.request_id: is required"), "the status's field and reason decode in protobuf-c: \(lines)")
        #expect(lines.contains("unknown: code=12"))
        #expect(await service.stop() == 0)
    }
}
