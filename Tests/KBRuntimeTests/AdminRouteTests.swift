import BudgetKit
import CoreMetrics
import Foundation
import Hummingbird
import HummingbirdTesting
import KBRuntime
import KBTestSupport
import Logging
import Testing

/// The admin port's routes, served in-process: what a real process would add (ports, signals) is
/// covered by `ServiceProcessTests`.
@Suite("Admin routes in-process")
struct AdminRouteTests {
    /// The default allow-list of a service bound to loopback.
    static let requestGuard = HTTPRequestGuard(allowList: HTTPHostAllowList(configured: [], boundHost: "127.0.0.1"))

    func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
    }

    @Test("/health answers the report's JSON: 200 while degraded, 503 once a component is unhealthy")
    func healthShapeAndStatus() async throws {
        let health = HealthRegistry(service: "graph-store", version: "9.9.9")
        health.register("store") { ComponentHealth(.healthy, ["entities": 12, "engine": "leveldb"]) }
        health.register("peer") { ComponentHealth(.degraded, ["error": "slow"]) }
        let app = Application(router: AdminServer.router(health: health, requestGuard: Self.requestGuard))
        try await app.test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let body = try json(response)
                #expect(body["status"] as? String == "degraded")
                #expect(body["service"] as? String == "graph-store")
                #expect(body["version"] as? String == "9.9.9")
                #expect(body["uptime_seconds"] is Double || body["uptime_seconds"] is Int)
                let components = try #require(body["components"] as? [String: [String: Any]])
                #expect(components["store"]?["status"] as? String == "healthy")
                #expect(components["store"]?["entities"] as? Int == 12)
                #expect(components["peer"]?["error"] as? String == "slow")
            }
            health.register("disk") { ComponentHealth(.unhealthy, ["error": "read-only"]) }
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                try #expect(json(response)["status"] as? String == "unhealthy")
            }
        }
    }

    @Test("/health/ready is 503 until the service is marked ready, /health/live is always 200")
    func readinessAndLiveness() async throws {
        let health = HealthRegistry(service: "budget-service", version: "1")
        let app = Application(router: AdminServer.router(health: health, requestGuard: Self.requestGuard))
        try await app.test(.router) { client in
            try await client.execute(uri: "/health/live", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/health/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                try #expect(json(response)["ready"] as? Bool == false)
            }
            health.setReady(true)
            try await client.execute(uri: "/health/ready", method: .get) { response in
                #expect(response.status == .ok)
                try #expect(json(response)["ready"] as? Bool == true)
            }
        }
    }

    @Test("/metrics is the Prometheus text format with the process's metrics")
    func metricsText() async throws {
        MetricsRegistry.bootstrap()
        Counter(label: "kb_admin_route_test_total", dimensions: [("route", "metrics")]).increment(by: 3)
        let app = Application(router: AdminServer.router(health: HealthRegistry(service: "x", version: "1"), requestGuard: Self.requestGuard))
        try await app.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                let text = String(buffer: response.body)
                #expect(text.contains("# TYPE kb_admin_route_test_total counter"))
                #expect(text.contains(#"kb_admin_route_test_total{route="metrics"} 3"#))
            }
        }
    }

    @Test("a service's admin route refuses a write without the token and changes nothing; with it, the write happens")
    func budgetFreezeNeedsTheToken() async throws {
        let folder = temporaryDirectory()
        let service = BudgetService(path: folder.appendingPathComponent("knowledge.db").path, options: .init(), backupRoot: BackupRoot(directory: folder.appendingPathComponent("backups")), logger: Logger(label: "test"))
        let configuration = try ServiceConfiguration(descriptor: .budgetService, source: ConfigSource(environment: ["KB_AUTH_TOKEN": "secret"]))
        let health = HealthRegistry(service: "budget-service", version: "1")
        let router = AdminServer.router(health: health, requestGuard: Self.requestGuard)
        service.addAdminRoutes(to: router, configuration: configuration)
        let app = Application(router: router)
        try await app.test(.router) { client in
            try await client.execute(uri: "/internal/budget/freeze?reason=drill", method: .post) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/internal/budget/freeze?reason=drill", method: .post, headers: [.authorization: "Bearer wrong"]) {
                #expect($0.status == .unauthorized)
            }
            try await client.execute(uri: "/internal/budget/status", method: .get) { response in
                #expect(response.status == .ok)
                try #expect(json(response)["frozen"] as? Bool == false)
            }
            try await client.execute(uri: "/internal/budget/freeze?reason=drill", method: .post, headers: [.authorization: "Bearer secret"]) { response in
                #expect(response.status == .ok)
                try #expect(json(response)["frozen"] as? Bool == true)
                try #expect(json(response)["freeze_reason"] as? String == "drill")
            }
        }
    }
}
