import CoreMetrics
import Foundation
import Hummingbird
import HummingbirdTesting
import KBKnowledge
import KBRPC
import KBRuntime
import KBTestSupport
import Logging
import Testing
import VKBKit

/// VKB's router served in-process, for what needs no real process: the `/health` JSON, `/metrics`,
/// and the security middleware's refusals. `VKBAPITests` keeps the process tests (ports, the
/// graph store stopping and starting, the whole API against a real store).
@Suite("VKB's router in-process")
struct VKBRouterTests {
    /// VKB's router over a graph store that is not running, with `environment` as its configuration.
    func withRouter(_ environment: [String: String], _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let d3 = temporaryDirectory().appendingPathComponent("d3.min.js")
        try Data("// d3".utf8).write(to: d3)
        var environment = environment
        environment["KB_VKB_D3_PATH"] = d3.path
        environment["KB_GRAPH_STORE_ADDR"] = "127.0.0.1:\(freePort())"
        environment["KB_VECTOR_SEARCH_ADDR"] = "127.0.0.1:\(freePort())"
        environment["KB_INFERENCE_GATEWAY_ADDR"] = "127.0.0.1:\(freePort())"
        let source = try ConfigSource(environment: environment)
        let shared = try ServiceConfiguration(descriptor: .vkb, source: source)
        let configuration = try VKBConfiguration(source: source, shared: shared)
        var clientConfiguration = configuration.graphStore
        clientConfiguration.failFast = true
        clientConfiguration.connectTimeout = .seconds(1)
        let client = RPCClient(configuration: clientConfiguration)
        let health = HealthRegistry(service: "vkb", version: shared.version)
        let meaning = MeaningSearch(gateway: RPCClient(configuration: configuration.inferenceGateway), vectors: RPCClient(configuration: configuration.vectorSearch))
        VKBServer.registerHealth(health, client: client, meaning: meaning, configuration: configuration)
        let requestGuard = HTTPRequestGuard(allowList: HTTPHostAllowList(configured: shared.allowedHosts, boundHost: shared.host))
        let router = VKBServer.router(configuration: configuration, client: client, meaning: meaning, health: health, requestGuard: requestGuard, logger: Logger(label: "vkb-test"))
        do {
            try await Application(router: router).test(.router, body)
        } catch {
            await client.close()
            await meaning.close()
            throw error
        }
        await client.close()
        await meaning.close()
    }

    func json(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
    }

    @Test("/health: 200 and degraded while the graph store is unreachable, naming its address; the page component healthy")
    func healthWithoutTheStore() async throws {
        try await withRouter([:]) { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                let body = try json(response)
                #expect(body["status"] as? String == "degraded")
                #expect(body["service"] as? String == "vkb")
                let components = try #require(body["components"] as? [String: [String: Any]])
                let store = try #require(components["graph-store"])
                #expect(store["status"] as? String == "degraded")
                #expect((store["address"] as? String)?.hasPrefix("127.0.0.1:") == true)
                #expect(store["error"] is String)
                #expect(components["page"]?["status"] as? String == "healthy")
            }
        }
    }

    @Test("/metrics counts VKB's requests by route, in the Prometheus text format")
    func metricsCountRequests() async throws {
        MetricsRegistry.bootstrap()
        try await withRouter([:]) { client in
            try await client.execute(uri: "/health/live", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
                let text = String(buffer: response.body)
                #expect(text.contains("kb_vkb_requests_total"), "\(text.prefix(2000))")
            }
        }
    }

    @Test("writes are refused before they reach the store: no token 401, another origin 403, a body over the limit 413; every answer carries CSP")
    func refusals() async throws {
        try await withRouter(["KB_AUTH_TOKEN": "secret", "KB_VKB_MAX_BODY_BYTES": "2048"]) { client in
            let entity = ByteBuffer(string: #"{"name": "a", "entityType": "Pattern"}"#)
            let jsonType: HTTPFields = [.contentType: "application/json"]
            try await client.execute(uri: "/api/entities", method: .post, headers: jsonType, body: entity) { response in
                #expect(response.status == .unauthorized)
                try #expect((json(response)["error"] as? [String: Any])?["code"] as? String == "unauthenticated")
                #expect(response.headers[.contentSecurityPolicy] == SecurityMiddleware.contentSecurityPolicy)
            }
            var crossOrigin = jsonType
            crossOrigin[.authorization] = "Bearer secret"
            crossOrigin[.origin] = "http://evil.example"
            try await client.execute(uri: "/api/entities", method: .post, headers: crossOrigin, body: entity) { #expect($0.status == .forbidden) }
            var large = jsonType
            large[.authorization] = "Bearer secret"
            try await client.execute(uri: "/api/import", method: .post, headers: large, body: ByteBuffer(repeating: UInt8(ascii: " "), count: 4096)) {
                #expect($0.status == .contentTooLarge)
            }
            // Reads need the token too (KB_VKB_PUBLIC_READS is off): without it 401; with it the
            // answer is the store's absence (503), not a refusal.
            try await client.execute(uri: "/api/teams", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/teams", method: .get, headers: [.authorization: "Bearer secret"]) { #expect($0.status == .serviceUnavailable) }
        }
    }
}
