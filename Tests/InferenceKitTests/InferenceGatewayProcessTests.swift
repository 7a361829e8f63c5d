import Foundation
import KBEmbeddings
import KBHTTPClient
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
        let file = try writeProvidersFile("""
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
            """, in: directory)
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
        let file = try writeProvidersFile("activeStrategy: fastest\n", in: directory)
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

        let file = try writeProvidersFile("""
            activeStrategy: test
            strategies:
              test: {priority: [openai, local]}
            providers:
              openai: {api: openai, base_url: "\(paid.baseURL)/v1", api_key_env: OPENAI_API_KEY, models: [gpt-4o]}
              \(local.localProvider("local"))
            """, in: temporaryDirectory("kb-inference"))
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
                        // gpt-4o at $2.50 / $10 per million: 10 + 1000 tokens cost $0.010025.
                        return abs(answer.costUsd - 0.010025) < 1e-9 ? answer.provider : "cost \(answer.costUsd)"
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
        let metrics = try #require(await httpGet("http://127.0.0.1:\(gateway.adminPort)/metrics"))
        let costLine = metrics.body.split(separator: "\n").first { $0.hasPrefix("knowledge_inference_cost_usd{") && $0.contains(#"provider="openai""#) && $0.contains(#"operation="extract""#) }
        let exported = costLine.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
        #expect(exported.map { abs($0 - Double(admitted) * 0.010025) < 1e-6 } == true, "knowledge_inference_cost_usd: \(String(describing: costLine))")

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
        let file = try writeProvidersFile("""
            providers:
              openai: {api: openai, base_url: "\(paid.baseURL)/v1", api_key_env: OPENAI_API_KEY, models: [gpt-4o]}
              \(local.localProvider("local"))
            """, in: temporaryDirectory("kb-inference"))
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

    @Test("the OpenAI-compatible front with the real openai Python package: whole, streamed with include_usage, models, errors, auth")
    func openAIFront() async throws {
        let whole = try ScriptedHTTPServer(), streamer = try ScriptedHTTPServer()
        defer {
            whole.stop()
            streamer.stop()
        }
        whole.answer("/v1/chat/completions", with: Self.ok)
        func chunk(_ text: String) -> String {
            #"data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"\#(text)"},"finish_reason":null}]}"# + "\n\n"
        }
        // llama.cpp-like: no usage in the stream, so the gateway estimates it.
        streamer.answer("/v1/chat/completions", with: .stream([chunk("Hel"), chunk("lo wor"), chunk("ld"), #"data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"# + "\n\n", "data: [DONE]\n\n"]))
        let directory = temporaryDirectory("kb-inference")
        let file = try writeProvidersFile("""
            providers:
              \(whole.localProvider("whole"))
              \(streamer.localProvider("streamer"))
            """, in: directory)
        let token = "front-token-0123456789"
        let gateway = try ServiceProcess(
            executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY",
            environment: ["KB_INFERENCE_PROVIDERS_FILE": file.path, "KB_AUTH_TOKEN": token, "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())"]
        )
        try await gateway.waitUntilReady()
        defer { Task { await gateway.stop() } }
        let script = directory.appendingPathComponent("client.py")
        try """
            import json, sys, openai
            base = sys.argv[1]; token = sys.argv[2]
            client = openai.OpenAI(base_url=base, api_key=token, max_retries=0)
            out = {}
            whole = client.chat.completions.with_raw_response.create(model="whole/mock-1", messages=[{"role": "user", "content": "ping"}], max_tokens=20, temperature=0)
            parsed = whole.parse()
            out["whole"] = {"content": parsed.choices[0].message.content, "finish": parsed.choices[0].finish_reason,
                            "usage": [parsed.usage.prompt_tokens, parsed.usage.completion_tokens], "provider": whole.headers.get("x-kb-provider"),
                            "overhead": whole.headers.get("x-kb-overhead-ms"), "usage_header": whole.headers.get("x-kb-usage"), "estimated": (parsed.usage.model_extra or {}).get("estimated")}
            pieces, usage, finish, estimated = [], None, None, None
            for chunk in client.chat.completions.create(model="streamer/mock-1", messages=[{"role": "user", "content": "hello there"}], stream=True, stream_options={"include_usage": True}):
                if chunk.usage is not None:
                    usage = [chunk.usage.prompt_tokens, chunk.usage.completion_tokens]
                    estimated = (chunk.usage.model_extra or {}).get("estimated")
                    assert chunk.choices == []
                for choice in chunk.choices:
                    if choice.delta.content: pieces.append(choice.delta.content)
                    if choice.finish_reason: finish = choice.finish_reason
            out["stream"] = {"text": "".join(pieces), "usage": usage, "finish": finish, "estimated": estimated}
            out["models"] = sorted(m.id for m in client.models.list().data)
            vectors = client.embeddings.create(model="local", input=["a circuit breaker opens", "Le café"]).data
            floats = client.embeddings.create(model="local", input="a circuit breaker opens", encoding_format="float").data
            out["embeddings"] = [len(vectors), len(vectors[0].embedding), round(sum(x * x for x in vectors[0].embedding), 4),
                                 round(sum(a * b for a, b in zip(vectors[0].embedding, floats[0].embedding)), 4)]
            try:
                client.chat.completions.create(model="whole/mock-1", messages=[{"role": "robot", "content": "x"}])
                out["bad"] = "accepted"
            except openai.BadRequestError as error:
                out["bad"] = [error.status_code, error.body.get("param") if isinstance(error.body, dict) else None]
            try:
                openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
                out["auth"] = "accepted"
            except openai.AuthenticationError as error:
                out["auth"] = error.status_code
            print(json.dumps(out))
            """.write(to: script, atomically: true, encoding: .utf8)
        let run = try runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", script.path, "http://127.0.0.1:\(gateway.adminPort)/v1", token])
        #expect(run.status == 0, "\(run.stderr)")
        let out = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout) \(run.stderr)")
        let wholeAnswer = out["whole"] as? [String: Any]
        #expect(wholeAnswer?["content"] as? String == "pong")
        #expect(wholeAnswer?["finish"] as? String == "stop")
        #expect(wholeAnswer?["usage"] as? [Int] == [4, 1])
        #expect(wholeAnswer?["provider"] as? String == "whole")
        #expect(wholeAnswer?["overhead"] as? String != nil)
        #expect(wholeAnswer?["usage_header"] as? String == "counted" && wholeAnswer?["estimated"] as? Bool == false, "the provider's own usage is marked counted (header and usage.estimated)")
        let streamed = out["stream"] as? [String: Any]
        #expect(streamed?["text"] as? String == "Hello world")
        #expect(streamed?["finish"] as? String == "stop")
        #expect(streamed?["usage"] as? [Int] == [6, 2], "estimated: 'hello there' is 11 bytes / 4 + 4; 'Hello world' 11 / 4")
        #expect(streamed?["estimated"] as? Bool == true, "a stream without the provider's usage says its usage is estimated")
        let models = out["models"] as? [String] ?? []
        #expect(models.contains("streamer/mock-1") && models.contains("whole/mock-1"))
        #expect(!models.contains { $0.hasPrefix("openai/") }, "a provider without its key lists no models")
        #expect(out["embeddings"] as? [Double] == [2, 384, 1, 1], "two unit vectors; base64 and float encodings agree")
        let bad = out["bad"] as? [Any]
        #expect(bad?.first as? Int == 400)
        #expect(bad?.last as? String == "messages[0].role")
        #expect(out["auth"] as? Int == 401)
        let sent = try JSONSerialization.jsonObject(with: Data(try #require(whole.received.first).body)) as? [String: Any]
        #expect(sent?["max_tokens"] as? Int == 20)

        // The operator's commands.
        let environment = ["KB_AUTH_TOKEN": token, "KB_INFERENCE_GATEWAY_ADDR": "127.0.0.1:\(gateway.port)", "KB_INFERENCE_GATEWAY_ADMIN_PORT": "\(gateway.adminPort)"]
        let kb = builtProductsDirectory.appendingPathComponent("kb")
        let providers = try runProgram(kb, ["inference", "providers"], environment: environment)
        #expect(providers.status == 0, "\(providers.stderr)")
        #expect(providers.stdout.contains("whole") && providers.stdout.contains("openai       no key"))
        let complete = try runProgram(kb, ["inference", "complete", "ping", "--model", "whole/mock-1"], environment: environment)
        #expect(complete.status == 0, "\(complete.stderr)")
        #expect(complete.stdout == "pong\n")
        #expect(complete.stderr.contains("[whole mock-1: 4 in, 1 out") && complete.stderr.contains("usage counted]"))
        // --schema: the schema goes to the provider (response_format); "pong" is not JSON,
        // so the gateway asks once more and then fails with SCHEMA_MISMATCH.
        let schemaFile = temporaryDirectory("kb-schema").appendingPathComponent("schema.json")
        try #"{"type":"object","properties":{"answer":{"type":"string"}},"required":["answer"],"additionalProperties":false}"#.write(to: schemaFile, atomically: true, encoding: .utf8)
        let before = whole.received.count
        let schemaRun = try runProgram(kb, ["inference", "complete", "ping", "--model", "whole/mock-1", "--schema", schemaFile.path], environment: environment)
        #expect(schemaRun.status != 0 && schemaRun.stderr.contains("ABORTED"), "\(schemaRun.stdout) \(schemaRun.stderr)")
        let schemaCalls = whole.received.dropFirst(before)
        #expect(schemaCalls.count == 2, "asked once more after an answer off the schema (\(schemaCalls.count) calls)")
        let sentFormat = (try? JSONSerialization.jsonObject(with: Data(try #require(schemaCalls.first).body)) as? [String: Any])?["response_format"] as? [String: Any]
        // "whole" is a local OpenAI-API server: asked as llama.cpp's servers take a schema.
        #expect(sentFormat?["type"] as? String == "json_object" && (sentFormat?["schema"] as? [String: Any])?["required"] as? [String] == ["answer"], "\(String(describing: sentFormat))")
        let notJSON = try runProgram(kb, ["inference", "complete", "ping", "--schema", "/nonexistent/schema.json"], environment: environment)
        #expect(notJSON.status != 0 && notJSON.stderr.contains("cannot read the schema"))
        let streamedCLI = try runProgram(kb, ["inference", "complete", "hello there", "--model", "streamer/mock-1", "--stream"], environment: environment)
        #expect(streamedCLI.status == 0, "\(streamedCLI.stderr)")
        #expect(streamedCLI.stdout == "Hello world\n")
        #expect(streamedCLI.stderr.contains("[streamer: 6 in, 2 out, usage estimated]"))
        let breakers = try runProgram(kb, ["inference", "breakers"], environment: environment)
        #expect(breakers.stdout.contains("streamer     closed    failures 0"))
        let reset = try runProgram(kb, ["inference", "reset", "nope"], environment: environment)
        #expect(reset.status != 0 && reset.stderr.contains("unknown provider"))
    }

    @Test("the front's direct routes in the real process: requests pipelined on one connection are answered in order across the direct path and the router; a head without the token is refused before its body is sent")
    func frontPipelined() async throws {
        let whole = try ScriptedHTTPServer()
        defer { whole.stop() }
        whole.answer("/v1/chat/completions", with: Self.ok)
        let directory = temporaryDirectory("kb-inference")
        let file = try writeProvidersFile("""
            providers:
              \(whole.localProvider("whole"))
            """, in: directory)
        let token = "front-token-0123456789"
        let gateway = try ServiceProcess(
            executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY",
            environment: ["KB_INFERENCE_PROVIDERS_FILE": file.path, "KB_AUTH_TOKEN": token, "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())"]
        )
        try await gateway.waitUntilReady()
        defer { Task { await gateway.stop() } }
        let port = gateway.adminPort
        func chat(_ content: String) -> String {
            let body = #"{"model":"whole/mock-1","messages":[{"role":"user","content":"\#(content)"}],"temperature":0.5}"#
            return "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        }
        let models = "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAuthorization: Bearer \(token)\r\n\r\n"
        // The gateway runs its tasks on its event loops, so a held direct request is started
        // from inside the previous answer's last write: the path the in-process tests cannot take.
        let connection = try RawConnection(port: port)
        connection.send(chat("one") + models + chat("two") + chat("three") + models)
        let answers = (0..<5).map { _ in connection.readResponse() }
        #expect(answers.map { $0?.status } == [200, 200, 200, 200, 200])
        #expect(answers.map { $0?.body.contains(#""object":"chat.completion""#) ?? false } == [true, false, true, true, false], "\(answers.map { $0?.body.prefix(60) ?? "" })")
        #expect(answers.map { $0?.body.contains(#""object":"list""#) ?? false } == [false, true, false, false, true])
        #expect(whole.received.map { String(decoding: $0.body, as: UTF8.self) }.map { body in ["one", "two", "three"].first { body.contains("\"\($0)\"") } ?? "?" } == ["one", "two", "three"])

        let refused = try RawConnection(port: port)
        refused.send("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
        #expect(refused.readResponse()?.status == 401)
    }

    @Test("the completion cache: a deterministic repeat is answered without a provider call, across a restart; no_cache and temperature > 0 bypass it; stats count it")
    func completionCache() async throws {
        let provider = try ScriptedHTTPServer()
        defer { provider.stop() }
        provider.answer("/v1/chat/completions", with: Self.ok)
        let directory = temporaryDirectory("kb-inference")
        let file = try writeProvidersFile("""
            providers:
              \(provider.localProvider("only"))
            """, in: directory)
        let data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let environment = ["KB_INFERENCE_PROVIDERS_FILE": file.path, "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())"]
        func ask(_ client: RPCClient, temperature: Float? = 0, noCache: Bool = false) async throws -> Kb_Inference_V1_CompletionResponse {
            try await client.call(InferenceGatewayMethods.complete, .with {
                $0.messages = [.with { $0.role = "user"; $0.content = "what is 2+2?" }]
                $0.model = "only/mock-1"
                if let temperature { $0.temperature = .with { $0.value = temperature } }
                $0.noCache = noCache
            })
        }
        let first = try ServiceProcess(executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", environment: environment, dataDirectory: data)
        try await first.waitUntilReady()
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: first.port))
        #expect(try await ask(client).cached == false)
        let repeated = try await ask(client)
        #expect(repeated.cached && repeated.content == "pong" && repeated.provider == "only")
        #expect(provider.received.count == 1)
        #expect(try await ask(client, noCache: true).cached == false)
        #expect(try await ask(client, temperature: 0.7).cached == false)
        #expect(try await ask(client, temperature: nil).cached == false, "no temperature: the provider's default, not deterministic")
        #expect(provider.received.count == 4)
        let stats = try await client.call(InferenceGatewayMethods.getCacheStats, .init())
        #expect(stats.caches.first?.hits == 1)
        #expect(stats.caches.first?.misses == 1)
        let metrics = try #require(await httpGet("http://127.0.0.1:\(first.adminPort)/metrics"))
        #expect(metrics.body.contains(#"knowledge_cache_hits_total{cache_type="completion"} 1"#))
        await client.close()
        #expect(await first.stop() == 0)

        let second = try ServiceProcess(executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", environment: environment, dataDirectory: data)
        try await second.waitUntilReady()
        defer { Task { await second.stop() } }
        let restarted = RPCClient(configuration: .init(host: "127.0.0.1", port: second.port))
        defer { Task { await restarted.close() } }
        #expect(try await ask(restarted).cached, "the cache survives a restart")
        #expect(provider.received.count == 4)
    }

    @Test("structured output over RPC and the OpenAI front: the provider is asked with the schema, a valid answer comes back marked schema_valid, a bad schema is INVALID_ARGUMENT naming json_schema, answers that break it twice are ABORTED / SCHEMA_MISMATCH (502 schema_mismatch on the front)")
    func structuredOutput() async throws {
        func answer(_ content: String) -> ScriptedHTTPServer.CannedAnswer {
            let json = String(decoding: try! JSONSerialization.data(withJSONObject: [content]).dropFirst(2).dropLast(2), as: UTF8.self)
            return .init(body: #"{"id":"c","object":"chat.completion","model":"mock-1","choices":[{"index":0,"message":{"role":"assistant","content":"\#(json)"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":8,"total_tokens":12}}"#)
        }
        let provider = try ScriptedHTTPServer()
        defer { provider.stop() }
        let file = try writeProvidersFile("""
            providers:
              \(provider.localProvider("only"))
            """, in: temporaryDirectory("kb-inference"))
        let gateway = try ServiceProcess(executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", environment: ["KB_INFERENCE_PROVIDERS_FILE": file.path, "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())"])
        try await gateway.waitUntilReady()
        defer { Task { await gateway.stop() } }
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: gateway.port))
        defer { Task { await client.close() } }
        let schema = #"{"type":"object","properties":{"answer":{"type":"integer","minimum":0}},"required":["answer"]}"#
        func ask(_ schema: String, name: String = "sum") async throws -> Kb_Inference_V1_CompletionResponse {
            try await client.call(InferenceGatewayMethods.complete, .with {
                $0.messages = [.with { $0.role = "user"; $0.content = "what is 2+2?" }]
                $0.model = "only/mock-1"
                $0.operation = "extract"
                $0.noCache = true
                $0.jsonSchema = schema
                $0.jsonSchemaName = name
            })
        }

        provider.answer("/v1/chat/completions", with: answer(#"{"answer": 4}"#))
        let valid = try await ask(schema)
        #expect(valid.content == #"{"answer": 4}"# && valid.schemaValid && valid.attempts == 1)
        let request = try #require(provider.received.last)
        let sent = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
        let format = try #require(sent["response_format"] as? [String: Any], "a local OpenAI-API server is asked as llama.cpp takes it")
        #expect(format["type"] as? String == "json_object" && (format["schema"] as? [String: Any])?["required"] as? [String] == ["answer"])

        for (bad, name, field) in [("{not json", "sum", "json_schema"), (#"{"type":"object","patternProperties":{}}"#, "sum", "json_schema"), (schema, "no spaces", "json_schema_name")] {
            do {
                _ = try await ask(bad, name: name)
                Issue.record("accepted \(bad)")
            } catch let error as RPCError {
                #expect(error.code == .invalidArgument && error.field == field && error.reason == .invalidFormat, "\(error)")
            }
        }
        let calls = provider.received.count
        provider.answer("/v1/chat/completions", with: answer(#"{"answer": -4}"#), answer("four"))
        do {
            _ = try await ask(schema)
            Issue.record("a broken answer was returned")
        } catch let error as RPCError {
            #expect(error.code == .aborted && error.reason == .schemaMismatch && error.field == "json_schema", "\(error)")
            #expect(error.message.contains("not JSON") && error.message.contains("answer: must be at least 0"), "\(error.message)")
        }
        #expect(provider.received.count == calls + 2, "one retry, on the same provider (the only one)")

        // The OpenAI front: response_format through the same path.
        let http = HTTPClient()
        defer { http.shutdown() }
        let front = "http://127.0.0.1:\(gateway.adminPort)/v1/chat/completions"
        func post(_ body: String) async throws -> (status: Int, object: [String: Any]) {
            let response = try await http.execute(.postJSON(front, body: Array(body.utf8), headers: [("Cache-Control", "no-cache")], timeouts: HTTPTimeouts(total: .seconds(30))))
            let bytes = try await response.body.collect(upTo: 1 << 20)
            return (response.head.status, try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]))
        }
        let frontRequest = #"{"model":"only/mock-1","messages":[{"role":"user","content":"what is 2+2?"}],"response_format":{"type":"json_schema","json_schema":{"name":"sum","schema":\#(schema)}}}"#
        provider.answer("/v1/chat/completions", with: answer(#"{"answer":4}"#))
        let ok = try await post(frontRequest)
        #expect(ok.status == 200)
        #expect((((ok.object["choices"] as? [[String: Any]])?.first?["message"]) as? [String: Any])?["content"] as? String == #"{"answer":4}"#)
        provider.answer("/v1/chat/completions", with: answer("four"), answer("4"))
        let broken = try await post(frontRequest)
        #expect(broken.status == 502)
        #expect((broken.object["error"] as? [String: Any])?["code"] as? String == "schema_mismatch", "\(broken.object)")
        let streamed = try await post(#"{"model":"only/mock-1","stream":true,"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#)
        #expect(streamed.status == 400 && (streamed.object["error"] as? [String: Any])?["param"] as? String == "response_format")
    }

    @Test("Embed serves the local 384-dimensional model through the embedding cache: the engine's own vectors, in order; bad input is refused naming the field")
    func embed() async throws {
        let gateway = try ServiceProcess(executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", environment: ["KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())", "OPENAI_API_KEY": ""])
        try await gateway.waitUntilReady()
        defer { Task { await gateway.stop() } }
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: gateway.port))
        defer { Task { await client.close() } }
        let texts = ["a circuit breaker opens after repeated failures", "Le café est très bon", ""]
        let response = try await client.call(InferenceGatewayMethods.embed, .with { $0.texts = texts })
        #expect(response.dimension == 384 && response.embeddings.count == 3)
        #expect(response.cached == 0)
        let again = try await client.call(InferenceGatewayMethods.embed, .with { $0.texts = [texts[1], "a new text"] })
        #expect(again.cached == 1, "the repeated text comes from the embedding cache")
        #expect(again.embeddings[0].values == response.embeddings[1].values)
        let stats = try await client.call(InferenceGatewayMethods.getCacheStats, .init())
        #expect(stats.caches.first { $0.cacheType == "embedding" }?.hits == 1)
        let reference = try TextEmbedder(threads: 1).embed(texts)
        for (got, expected) in zip(response.embeddings, reference) {
            let cosine = zip(got.values, expected).reduce(Float(0)) { $0 + $1.0 * $1.1 }
            #expect(cosine > 0.99999, "cosine \(cosine)")
        }
        do {
            _ = try await client.call(InferenceGatewayMethods.embed, .with { $0.texts = [] })
            Issue.record("an empty Embed was accepted")
        } catch let error as RPCError {
            #expect(error.code == .invalidArgument && error.field == "texts")
        }
        do {
            _ = try await client.call(InferenceGatewayMethods.embed, .with { $0.texts = ["x"]; $0.dimension = 1536 })
            Issue.record("a 1536-dimensional Embed was answered without an OpenAI key")
        } catch let error as RPCError {
            #expect(error.code == .failedPrecondition && error.message.contains("OPENAI_API_KEY"), "\(error)")
        }
        let health = try #require(await httpGet("http://127.0.0.1:\(gateway.adminPort)/health"))
        #expect(health.body.contains("embeddings") && health.body.contains("OpenBLAS core"))
    }
}
