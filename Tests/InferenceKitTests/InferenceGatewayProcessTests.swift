import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// `inference-gateway` as a process, in front of mock providers on loopback.
@Suite("inference-gateway, as a process", .serialized)
struct InferenceGatewayProcessTests {
    static let ok = ScriptedHTTPServer.CannedAnswer(body: #"{"id":"c","object":"chat.completion","model":"mock-1","choices":[{"index":0,"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}}"#)
    static let unavailable = ScriptedHTTPServer.CannedAnswer(status: 503, body: #"{"error":{"message":"down"}}"#)

    @Test("Complete falls back from a failing provider; breakers, providers and health show it; an operator reset closes the circuit; keys stay out of logs")
    func completeAndBreakers() async throws {
        let flaky = try ScriptedHTTPServer(), steady = try ScriptedHTTPServer()
        defer {
            flaky.stop()
            steady.stop()
        }
        flaky.answer("/v1/chat/completions", with: Self.unavailable)
        steady.answer("/v1/chat/completions", with: Self.ok)
        let directory = temporaryDirectory("kb-inference")
        let file = directory.appendingPathComponent("providers.yaml")
        try """
            activeStrategy: test
            strategies:
              test: {priority: [flaky, steady]}
            providers:
              flaky:
                api: openai
                base_url: \(flaky.baseURL)/v1
                api_key_env: FLAKY_KEY
                models: [mock-1]
                circuit_breaker: {failureThreshold: 2, resetTimeout: 600000, halfOpenRequests: 1}
              steady:
                api: openai
                base_url: \(steady.baseURL)/v1
                local: true
                models: [mock-1]
            """.write(to: file, atomically: true, encoding: .utf8)
        let secret = "flaky-secret-key-0123456789"
        let gateway = try ServiceProcess(
            executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY",
            environment: ["KB_INFERENCE_PROVIDERS_FILE": file.path, "FLAKY_KEY": secret]
        )
        try await gateway.waitUntilReady()
        defer { Task { await gateway.stop() } }
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: gateway.port))
        defer { Task { await client.close() } }

        let answer = try await client.call(InferenceGatewayMethods.complete, .with {
            $0.messages = [.with { $0.role = "user"; $0.content = "ping" }]
            $0.operation = "test"
        })
        #expect(answer.content == "pong")
        #expect(answer.provider == "steady")
        #expect(answer.inputTokens == 4 && answer.outputTokens == 1)
        #expect(flaky.received.count == 2, "a transient failure is retried once on the same provider")
        #expect(flaky.received.first?.header("authorization") == "Bearer \(secret)")

        let breakers = try await client.call(InferenceGatewayMethods.getCircuitBreakers, .init())
        let flakyBreaker = try #require(breakers.breakers.first { $0.provider == "flaky" })
        #expect(flakyBreaker.state == .circuitOpen)
        #expect(flakyBreaker.consecutiveFailures == 2)

        let providers = try await client.call(InferenceGatewayMethods.listProviders, .init())
        #expect(providers.providers.first { $0.name == "flaky" }?.configured == true)
        #expect(providers.providers.first { $0.name == "openai" }?.configured == false, "no OPENAI_API_KEY: listed, not configured")

        let status = try #require(await httpGet("http://127.0.0.1:\(gateway.adminPort)/internal/circuit-breakers"))
        #expect(status.status == 200)
        let flakyJSON = status.json["flaky"] as? [String: Any]
        #expect(flakyJSON?["state"] as? String == "open")
        #expect(flakyJSON?["failures"] as? Int == 2)
        #expect(flakyJSON?["nextAttempt"] as? String != nil)
        let health = try #require(await httpGet("http://127.0.0.1:\(gateway.adminPort)/health"))
        #expect(health.body.contains("provider_flaky"))
        #expect(health.json["status"] as? String == "degraded")
        let metrics = try #require(await httpGet("http://127.0.0.1:\(gateway.adminPort)/metrics"))
        #expect(metrics.body.contains(#"knowledge_circuit_breaker_state{provider="flaky"} 2"#))

        // The guide's reset path.
        let reset = try #require(await httpRequest("POST", "http://127.0.0.1:\(gateway.adminPort)/internal/circuit-breaker/reset/flaky", headers: ["Content-Type": "application/json"]))
        #expect(reset.status == 200)
        #expect((reset.json["flaky"] as? [String: Any])?["state"] as? String == "closed")
        let unknown = try #require(await httpRequest("POST", "http://127.0.0.1:\(gateway.adminPort)/internal/circuit-breakers/nope/reset", headers: ["Content-Type": "application/json"]))
        #expect(unknown.status == 404)

        // Bad input: a clear error, no provider called.
        let before = steady.received.count
        do {
            _ = try await client.call(InferenceGatewayMethods.complete, .with { $0.messages = [.with { $0.role = "robot"; $0.content = "x" }] })
            Issue.record("an unknown role was accepted")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument && error.field == "messages[0].role")
        }
        #expect(steady.received.count == before)
        #expect(!gateway.log.contains(secret), "the key never reaches the log")
    }

    @Test("a providers file with a mistake stops the start with a message naming the key and the mistake")
    func badProvidersFile() async throws {
        let directory = temporaryDirectory("kb-inference")
        let file = directory.appendingPathComponent("providers.yaml")
        try "activeStrategy: fastest\n".write(to: file, atomically: true, encoding: .utf8)
        let gateway = try ServiceProcess(executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", environment: ["KB_INFERENCE_PROVIDERS_FILE": file.path])
        let status = await gateway.stop(signal: 0, timeout: .seconds(20))
        #expect(status != 0)
        #expect(gateway.log.contains("KB_INFERENCE_PROVIDERS_FILE"))
        #expect(gateway.log.contains("activeStrategy \"fastest\""))
    }
}
