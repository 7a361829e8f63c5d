import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// The runtime in a real service process: the fixture service, started on free loopback ports.
@Suite("A service process built on the runtime")
struct ServiceProcessTests {
    private func start(_ environment: [String: String] = [:], dataDirectory: URL? = nil) async throws -> ServiceProcess {
        let service = try ServiceProcess(executable: "kb-fixture-service", envPrefix: "KB_FIXTURE_SERVICE", environment: environment, dataDirectory: dataDirectory)
        try await service.waitUntilReady()
        return service
    }

    @Test("GET /health answers the documented JSON with status 200")
    func healthEndpoint() async throws {
        let service = try await start()
        let result = try #require(await httpGet("http://127.0.0.1:\(service.adminPort)/health"))
        #expect(result.status == 200)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.body.utf8)) as? [String: Any])
        #expect(json["status"] as? String == "healthy")
        #expect(json["service"] as? String == "fixture-service")
        #expect(json["version"] is String)
        #expect(json["uptime_seconds"] is Double)
        let components = try #require(json["components"] as? [String: [String: Any]])
        #expect(components["fixture"]?["status"] as? String == "healthy")
        #expect(await httpGet("http://127.0.0.1:\(service.adminPort)/health/live")?.status == 200)
        #expect(await httpGet("http://127.0.0.1:\(service.adminPort)/health/ready")?.status == 200)
        #expect(await service.stop() == 0)
    }

    @Test("an unhealthy component makes /health and /health/ready answer 503 and the RPC say NOT_SERVING")
    func unhealthyService() async throws {
        let service = try ServiceProcess(executable: "kb-fixture-service", envPrefix: "KB_FIXTURE_SERVICE", environment: ["KB_FIXTURE_HEALTH": "unhealthy"])
        try await Task.sleep(for: .milliseconds(200))
        var health: HTTPResult?
        for _ in 0..<100 where health == nil {
            health = await httpGet("http://127.0.0.1:\(service.adminPort)/health")
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(health?.status == 503)
        #expect(health?.body.contains(#""status":"unhealthy""#) == true)
        #expect(await httpGet("http://127.0.0.1:\(service.adminPort)/health/ready")?.status == 503)
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: service.port))
        let response = try await client.call(HealthMethods.check, .init())
        #expect(response.status == .notServing)
        await client.close()
        await service.stop()
    }

    @Test("/metrics counts RPCs per method in the Prometheus text format")
    func metricsEndpoint() async throws {
        let service = try await start()
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: service.port))
        for _ in 0..<3 { _ = try await client.call(GraphStoreMethods.putEntities, .with { $0.team = "t" }) }
        _ = try? await client.call(method: "kb.nope.v1.Nope/Nothing", payload: Data())
        let metrics = try #require(await httpGet("http://127.0.0.1:\(service.adminPort)/metrics"))
        #expect(metrics.status == 200)
        #expect(metrics.body.contains(#"kb_rpc_requests_total{method="kb.graph.v1.GraphStore/PutEntities"} 3"#))
        #expect(metrics.body.contains(#"kb_rpc_errors_total{method="unknown",code="UNIMPLEMENTED"} 1"#))
        #expect(metrics.body.contains("kb_rpc_request_duration_seconds_bucket"))
        await client.close()
        await service.stop()
    }

    @Test("SIGTERM lets an in-flight request finish, then the process exits 0")
    func gracefulShutdownOnSIGTERM() async throws {
        let service = try await start()
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: service.port))
        let slow = RPCMethod<Kb_Health_V1_HealthCheckRequest, Kb_Health_V1_HealthCheckResponse>("kb.fixture.v1.Fixture/Sleep")
        let call = Task { try await client.call(slow, .with { $0.service = "800" }) }
        for _ in 0..<200 where !service.log.contains("sleep started") { try await Task.sleep(for: .milliseconds(10)) }
        #expect(service.log.contains("sleep started"))
        let status = await service.stop(signal: SIGTERM)
        let response = try await call.value
        #expect(response.service == "800")
        #expect(status == 0)
        #expect(service.log.contains("fixture-service stopped"))
        await client.close()
    }

    @Test("a second instance on the same data directory refuses to start and names the holder")
    func secondInstanceRefuses() async throws {
        let first = try await start()
        let second = try runProgram(
            builtProductsDirectory.appendingPathComponent("kb-fixture-service"),
            environment: ["KB_DATA_DIR": first.dataDirectory.path, "KB_FIXTURE_SERVICE_PORT": "\(freePort())", "KB_FIXTURE_SERVICE_ADMIN_PORT": "\(freePort())"]
        )
        #expect(second.status == 75)
        #expect(second.stderr.contains("already in use"))
        #expect(second.stderr.contains("pid \(first.process.processIdentifier)"))
        #expect(await httpGet("http://127.0.0.1:\(first.adminPort)/health")?.status == 200)
        await first.stop()
    }

    @Test("after kill -9 the lock is gone and the service starts again on the same directory")
    func restartAfterKill() async throws {
        let first = try await start()
        await first.stop(signal: SIGKILL)
        let second = try await start(dataDirectory: first.dataDirectory)
        #expect(await second.stop() == 0)
    }

    @Test("a bad configuration value exits at once with 78 and a message naming the key")
    func badConfigurationExits() throws {
        let result = try runProgram(
            builtProductsDirectory.appendingPathComponent("kb-fixture-service"),
            environment: ["KB_FIXTURE_SERVICE_PORT": "not-a-port", "KB_DATA_DIR": temporaryDirectory().path]
        )
        #expect(result.status == 78)
        #expect(result.stderr.contains("KB_FIXTURE_SERVICE_PORT"))
        #expect(result.stderr.contains("not-a-port"))
    }
}
