import Foundation
import KBTestSupport
import Testing

/// A graph-store process and a vkb process pointed at it, on free loopback ports.
struct VKBUnderTest {
    let store: ServiceProcess?
    let vkb: ServiceProcess
    let token: String?

    var base: String { "http://127.0.0.1:\(vkb.adminPort)" }

    /// Starts both (or only vkb, pointed at `graphStoreAddress`, when `withStore` is false).
    static func start(environment: [String: String] = [:], withStore: Bool = true, graphStoreAddress: String? = nil) async throws -> VKBUnderTest {
        var store: ServiceProcess?
        var environment = environment
        // Search by meaning: nothing listens on these unless a test starts it (never the default
        // ports, where a system of the machine's own may run).
        for key in ["KB_VECTOR_SEARCH_ADDR", "KB_INFERENCE_GATEWAY_ADDR"] where environment[key] == nil {
            environment[key] = "127.0.0.1:\(freePort())"
        }
        if withStore {
            let started = try ServiceProcess(executable: "graph-store", envPrefix: "KB_GRAPH_STORE", environment: environment)
            try await started.waitUntilReady()
            store = started
            environment["KB_GRAPH_STORE_ADDR"] = "127.0.0.1:\(started.port)"
        } else if let graphStoreAddress {
            environment["KB_GRAPH_STORE_ADDR"] = graphStoreAddress
        }
        let vkb = try ServiceProcess(executable: "vkb", envPrefix: "KB_VKB", environment: environment, hasRPC: false)
        try await vkb.waitUntilReady()
        return VKBUnderTest(store: store, vkb: vkb, token: environment["KB_AUTH_TOKEN"])
    }

    func stop() async {
        await vkb.stop()
        await store?.stop()
    }

    /// A request to VKB; it carries the token when one is set (reads need it too) unless
    /// `authorized` is false.
    func request(_ method: String, _ path: String, json: Any? = nil, body: Data? = nil, headers: [String: String] = [:], authorized: Bool = true) async throws -> HTTPResult {
        var headers = headers
        var data = body
        if let json {
            data = try JSONSerialization.data(withJSONObject: json)
            headers["Content-Type"] = "application/json"
        }
        if authorized, let token, headers["Authorization"] == nil { headers["Authorization"] = "Bearer \(token)" }
        let result = await httpRequest(method, base + path, body: data, headers: headers, timeout: 30)
        return try #require(result, "\(method) \(path) got no answer; vkb log: \(vkb.log.suffix(2000))")
    }

    func get(_ path: String) async throws -> HTTPResult { try await request("GET", path) }

    /// Loads the seeded graph (`VKBFixtures.seed`) through the API's import.
    func seed(_ document: [String: Any] = VKBFixtures.seed) async throws {
        let result = try await request("POST", "/api/import", json: document)
        #expect(result.status == 200, "\(result.body)")
    }
}

enum VKBFixtures {
    /// A small team graph with a hostile type and observation (names cannot hold markup: the
    /// data model allows letters, digits, space, `_ - .`).
    nonisolated(unsafe) static let seed: [String: Any] = [
        "metadata": ["team": "coding"],
        "entities": [
            ["name": "RetryPolicy", "entityType": "Pattern", "significance": 8, "observations": ["Use exponential backoff with jitter", "Cap retries at five"]],
            ["name": "CircuitBreaker", "entityType": "Pattern", "significance": 9, "observations": ["Open after five consecutive failures"]],
            ["name": "Payments Timeout", "entityType": "Bug", "significance": 6, "source": "auto", "observations": ["The gateway hung for 30 s; fixed by a deadline"]],
            ["name": "Use Deadlines", "entityType": "Decision", "significance": 7, "observations": ["Every outbound call carries a deadline"]],
            ["name": "Hostile", "entityType": "<img src=x onerror=alert(1)>", "significance": 4, "observations": ["<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned=2\">"]],
        ],
        "relations": [
            ["from": "Payments Timeout", "to": "RetryPolicy", "relationType": "fixed_by"],
            ["from": "RetryPolicy", "to": "CircuitBreaker", "relationType": "works_with"],
            ["from": "Use Deadlines", "to": "Payments Timeout", "relationType": "prevents"],
            ["from": "Hostile", "to": "RetryPolicy", "relationType": "<b>bold</b>"],
        ],
    ]

    /// A second team, to check team filters.
    nonisolated(unsafe) static let otherTeam: [String: Any] = [
        "metadata": ["team": "ops"],
        "entities": [
            ["name": "Runbook", "entityType": "Document", "observations": ["How to restart the gateway"]],
            ["name": "Pager", "entityType": "Tool", "observations": ["Wakes the on-call engineer"]],
        ],
        "relations": [["from": "Runbook", "to": "Pager", "relationType": "uses"]],
    ]
}

extension HTTPResult {
    /// `error.field` of a JSON error body.
    var errorField: String? { (json["error"] as? [String: Any])?["field"] as? String }
    /// `error.reason` of a JSON error body (`RPCError.Reason`'s UPPER_SNAKE words).
    var errorReason: String? { (json["error"] as? [String: Any])?["reason"] as? String }
    var errorMessage: String { (json["error"] as? [String: Any])?["message"] as? String ?? body }
}
