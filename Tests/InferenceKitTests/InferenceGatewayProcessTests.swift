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
            environment: ["KB_INFERENCE_PROVIDERS_FILE": file.path, "FLAKY_KEY": secret, "KB_INFERENCE_BUDGET_UNREACHABLE": "allow-paid", "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())"]
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

    @Test("with a real budget-service: 64 concurrent paid calls near the limit never overspend; every cost is recorded; at local-only the local provider still answers")
    func budgetEnforcement() async throws {
        let paid = try ScriptedHTTPServer(), local = try ScriptedHTTPServer()
        defer {
            paid.stop()
            local.stop()
        }
        // gpt-4o: $2.50 / $10 per million: each answer costs $0.000025 + $0.01.
        paid.answer("/v1/chat/completions", with: .init(body: #"{"id":"c","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"paid"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":1000,"total_tokens":1010}}"#))
        local.answer("/v1/chat/completions", with: Self.ok)
        let budget = try ServiceProcess(executable: "budget-service", envPrefix: "KB_BUDGET_SERVICE", environment: ["KB_BUDGET_MONTHLY_LIMIT_USD": "1"])
        try await budget.waitUntilReady()
        defer { Task { await budget.stop() } }
        let budgetClient = RPCClient(configuration: .init(host: "127.0.0.1", port: budget.port))
        defer { Task { await budgetClient.close() } }
        _ = try await budgetClient.call(BudgetMethods.recordCost, .with {
            $0.event = .with { $0.requestID = "earlier"; $0.provider = "openai"; $0.model = "gpt-4o"; $0.costUsd = .with { $0.value = 0.5 } }
        })

        let file = temporaryDirectory("kb-inference").appendingPathComponent("providers.yaml")
        try """
            activeStrategy: test
            strategies:
              test: {priority: [openai, local]}
            providers:
              openai: {api: openai, base_url: "\(paid.baseURL)/v1", api_key_env: OPENAI_API_KEY, models: [gpt-4o]}
              local: {api: openai, base_url: "\(local.baseURL)/v1", local: true, models: [mock-1]}
            """.write(to: file, atomically: true, encoding: .utf8)
        let gateway = try ServiceProcess(
            executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY",
            environment: ["KB_INFERENCE_PROVIDERS_FILE": file.path, "OPENAI_API_KEY": "sk-budget-test-0123456789", "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(budget.port)"]
        )
        try await gateway.waitUntilReady()
        defer { Task { await gateway.stop() } }
        var configuration = RPCClient.Configuration(host: "127.0.0.1", port: gateway.port)
        configuration.connections = 4
        let client = RPCClient(configuration: configuration)
        defer { Task { await client.close() } }

        let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<64 {
                group.addTask {
                    do {
                        let answer = try await client.call(InferenceGatewayMethods.complete, .with {
                            $0.messages = [.with { $0.role = "user"; $0.content = "question \(index)" }]
                            $0.model = "openai/gpt-4o"
                            $0.maxTokens = 1000
                            $0.requestID = "call-\(index)"
                            $0.operation = "extract"
                        })
                        return answer.provider
                    } catch let error as RPCError {
                        return "\(error.code)"
                    }
                }
            }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        let admitted = outcomes.filter { $0 == "openai" }.count
        #expect(admitted >= 30 && admitted <= 40, "about $0.40 of room at $0.01 a call, less at 90%: \(outcomes)")
        #expect(outcomes.allSatisfy { $0 == "openai" || $0 == "\(RPCError.Code.resourceExhausted)" }, "\(outcomes)")
        #expect(paid.received.count == admitted, "a refused call never reaches the provider")

        // Every admitted call's real cost is recorded (with its request id), reservations settle.
        var status = try await budgetClient.call(BudgetMethods.getStatus, .init())
        for _ in 0..<100 where status.reservedUsd > 0 || abs(status.spendUsd - (0.5 + Double(admitted) * 0.010025)) > 1e-9 {
            try await Task.sleep(for: .milliseconds(50))
            status = try await budgetClient.call(BudgetMethods.getStatus, .init())
        }
        #expect(abs(status.spendUsd - (0.5 + Double(admitted) * 0.010025)) < 1e-6, "spend \(status.spendUsd) for \(admitted) calls")
        #expect(status.spendUsd <= 1.0 + 0.0001, "never past the limit by more than one call's estimate-vs-actual difference")
        #expect(status.reservedUsd == 0)
        let events = try await budgetClient.call(BudgetMethods.listEvents, .with { $0.limit = 100 })
        #expect(events.events.filter { $0.requestID.hasPrefix("call-") && $0.requestID.hasSuffix(":openai") }.count == admitted)

        // Local-only now (≥ 90%): an unrestricted call goes to the local provider, never the paid one.
        let before = paid.received.count
        let localAnswer = try await client.call(InferenceGatewayMethods.complete, .with { $0.messages = [.with { $0.role = "user"; $0.content = "hi" }] })
        #expect(localAnswer.provider == "local")
        #expect(paid.received.count == before)

    }

    @Test("budget-service does not answer: paid calls are refused without reaching the provider, local ones still go")
    func budgetUnreachable() async throws {
        let paid = try ScriptedHTTPServer(), local = try ScriptedHTTPServer()
        defer {
            paid.stop()
            local.stop()
        }
        paid.answer("/v1/chat/completions", with: Self.ok)
        local.answer("/v1/chat/completions", with: Self.ok)
        let file = temporaryDirectory("kb-inference").appendingPathComponent("providers.yaml")
        try """
            providers:
              openai: {api: openai, base_url: "\(paid.baseURL)/v1", api_key_env: OPENAI_API_KEY, models: [gpt-4o]}
              local: {api: openai, base_url: "\(local.baseURL)/v1", local: true, models: [mock-1]}
            """.write(to: file, atomically: true, encoding: .utf8)
        let gateway = try ServiceProcess(
            executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY",
            environment: ["KB_INFERENCE_PROVIDERS_FILE": file.path, "OPENAI_API_KEY": "sk-budget-test-0123456789", "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())"]
        )
        try await gateway.waitUntilReady()
        defer { Task { await gateway.stop() } }
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: gateway.port))
        defer { Task { await client.close() } }
        do {
            _ = try await client.call(InferenceGatewayMethods.complete, .with { $0.messages = [.with { $0.role = "user"; $0.content = "hi" }]; $0.model = "openai/gpt-4o" })
            Issue.record("a paid call went while budget-service was down")
        } catch let error as RPCError {
            #expect(error.code == .resourceExhausted)
            #expect(error.message.contains("budget-service does not answer"), "\(error.message)")
        }
        #expect(paid.received.isEmpty)
        #expect(try await client.call(InferenceGatewayMethods.complete, .with { $0.messages = [.with { $0.role = "user"; $0.content = "hi" }] }).provider == "local")
    }
}
