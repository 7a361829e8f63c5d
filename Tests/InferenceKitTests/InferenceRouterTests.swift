import Foundation
import InferenceKit
import KBHTTPClient
import KBTestSupport
import Logging
import Testing

/// Routing over mock providers: strategy order, retries, fallback, breakers, deadlines, streams.
@Suite("Inference router over mock providers", .serialized)
struct InferenceRouterTests {
    static let ok = ScriptedHTTPServer.CannedAnswer(body: #"{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"answer"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#)
    static let unavailable = ScriptedHTTPServer.CannedAnswer(status: 503, body: #"{"error":{"message":"upstream unavailable","type":"server_error"}}"#)
    static let badRequest = ScriptedHTTPServer.CannedAnswer(status: 400, body: #"{"error":{"message":"messages: required","type":"invalid_request_error"}}"#)
    static func chunk(_ text: String) -> String {
        #"data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"\#(text)"},"finish_reason":null}]}"# + "\n\n"
    }
    static let streamOK = ScriptedHTTPServer.CannedAnswer.stream([chunk("Hel"), chunk("lo"), #"data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"# + "\n\n", "data: [DONE]\n\n"])

    struct Mocks {
        let servers: [String: ScriptedHTTPServer]
        let http = HTTPClient()
        func stop() {
            http.shutdown()
            for server in servers.values { server.stop() }
        }
        func requests(_ name: String) -> Int { servers[name]!.received.count }
    }

    /// Providers `a` (local), `b` and `c` (paid, keys in the environment), `nokey` (paid, no key).
    func withRouter(priority: [String] = ["a", "b", "c", "nokey"], breaker: CircuitBreaker.Settings = .standard, strategy: ProvidersFile.Strategy? = nil, embeddingModels: [String] = [], budget: BudgetGate? = nil, cache: ResponseCache? = nil, _ body: (InferenceRouter, Mocks) async throws -> Void) async throws {
        var servers: [String: ScriptedHTTPServer] = [:]
        for name in ["a", "b", "c", "nokey"] { servers[name] = try ScriptedHTTPServer() }
        let mocks = Mocks(servers: servers)
        defer { mocks.stop() }
        var providers: [String: ProvidersFile.Provider] = [:]
        for (name, server) in servers {
            var provider = ProvidersFile.Provider(api: .openAI, baseURL: server.baseURL + "/v1", apiKeyEnv: name == "a" ? nil : "KEY_\(name.uppercased())", local: name == "a", models: ["\(name)-model"], embeddingModels: embeddingModels, circuitBreaker: breaker)
            provider.lowSpeedTimeSeconds = 30
            providers[name] = provider
        }
        let file = ProvidersFile(providers: providers, strategies: ["test": strategy ?? .init(priority: priority)], activeStrategy: "test")
        var retry = RetryPolicy()
        retry.initialBackoff = .milliseconds(10)
        let router = InferenceRouter(file: file, environment: ["KEY_B": "key-b-0123456789", "KEY_C": "key-c-0123456789"], http: mocks.http, budget: budget, cache: cache, retry: retry)
        try await body(router, mocks)
    }

    static let chat = GatewayChat(messages: [ChatMessage(role: "user", content: "hi")])
    static var deadline: ContinuousClock.Instant { .now + .seconds(20) }

    @Test("transient failures are retried, then the next provider answers; every attempt is reported")
    func fallback() async throws {
        try await withRouter { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: Self.unavailable)
            mocks.servers["b"]!.answer("/v1/chat/completions", with: Self.ok)
            let answer = try await router.complete(Self.chat, deadline: Self.deadline)
            #expect(answer.provider == "b")
            #expect(answer.result.content == "answer")
            #expect(answer.attempts.map(\.provider) == ["a", "a", "b"])
            #expect(answer.attempts.last?.outcome == "ok")
            #expect(answer.attempts.first?.outcome.contains("HTTP 503") == true)
            #expect(mocks.requests("a") == 2)
            #expect(router.routes["a"]!.breaker.snapshot.failures == 2)
            // The model asked for is the provider's default.
            let sent = try JSONSerialization.jsonObject(with: Data(mocks.servers["b"]!.received[0].body)) as? [String: Any]
            #expect(sent?["model"] as? String == "b-model")
        }
    }

    @Test("an open circuit is skipped without a call; a provider without its key is never called")
    func breakersAndKeys() async throws {
        try await withRouter(priority: ["nokey", "a", "b"], breaker: .init(failureThreshold: 2, resetTimeoutMs: 60_000, halfOpenRequests: 1)) { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: Self.unavailable)
            mocks.servers["b"]!.answer("/v1/chat/completions", with: Self.ok)
            _ = try await router.complete(Self.chat, deadline: Self.deadline)
            #expect(router.routes["a"]!.breaker.snapshot.state == .open)
            let second = try await router.complete(Self.chat, deadline: Self.deadline)
            #expect(second.attempts.map(\.outcome).contains("skipped: circuit open"))
            #expect(second.attempts.first?.outcome.contains("not configured") == true)
            #expect(mocks.requests("a") == 2, "no call while the circuit is open")
            #expect(mocks.requests("nokey") == 0)
            #expect(router.routes["nokey"]!.configured == false)
        }
    }

    @Test("a request error stops the chain (no retry, no breaker); retry-after is honoured on the same provider")
    func requestErrorsAndRetryAfter() async throws {
        try await withRouter { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: Self.badRequest)
            do {
                _ = try await router.complete(Self.chat, deadline: Self.deadline)
                Issue.record("a 400 was retried elsewhere")
            } catch let failure as RoutingFailure {
                #expect(failure.kind == .request)
            }
            #expect(mocks.requests("b") == 0)
            #expect(router.routes["a"]!.breaker.snapshot.failures == 0)

            mocks.servers["a"]!.answer("/v1/chat/completions", with: .init(status: 429, headers: [("Content-Type", "application/json"), ("retry-after-ms", "150")], body: #"{"error":{"message":"slow down"}}"#), Self.ok)
            let started = ContinuousClock.now
            let answer = try await router.complete(Self.chat, deadline: Self.deadline)
            #expect(answer.provider == "a")
            #expect(ContinuousClock.now - started >= .milliseconds(150), "the retry waited for retry-after")
        }
    }

    @Test("the request's deadline bounds the whole chain: a hanging provider does not pass it, later providers are not tried after it")
    func deadline() async throws {
        try await withRouter { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: .stream([], ending: .hang))
            mocks.servers["b"]!.answer("/v1/chat/completions", with: Self.ok)
            do {
                _ = try await router.complete(Self.chat, deadline: .now + .milliseconds(500))
                Issue.record("answered past the deadline")
            } catch let failure as RoutingFailure {
                #expect(failure.message.contains("deadline"))
            }
            #expect(mocks.requests("b") == 0)
        }
    }

    @Test("the deadline bounds a stream too: a provider that stalls mid-answer ends the stream with an error at the deadline, and its breaker does not count it")
    func streamDeadline() async throws {
        try await withRouter { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: .stream([Self.chunk("Hel")], ending: .hang))
            let started = ContinuousClock.now
            var text = ""
            do {
                for try await event in router.stream(Self.chat, deadline: .now + .milliseconds(700)) {
                    if case .text(let piece) = event { text += piece }
                }
                Issue.record("the stream ended cleanly past its deadline")
            } catch let failure as RoutingFailure {
                #expect(failure.message.contains("after text was sent"), "\(failure)")
            }
            let elapsed = ContinuousClock.now - started
            #expect(text == "Hel")
            #expect(elapsed >= .milliseconds(600) && elapsed < .seconds(5), "\(elapsed)")
            #expect(router.routes["a"]!.breaker.snapshot.failures == 0, "the caller's deadline is not the provider's failure")
        }
    }

    @Test("local-only never calls a paid provider; prefer-local puts local ones first; provider/model picks one")
    func localOnlyAndModels() async throws {
        try await withRouter(priority: ["b", "c", "a"]) { router, mocks in
            for name in ["a", "b", "c"] { mocks.servers[name]!.answer("/v1/chat/completions", with: Self.ok) }
            var chat = Self.chat
            chat.localOnly = true
            #expect(try await router.complete(chat, deadline: Self.deadline).provider == "a")
            chat.localOnly = false
            chat.preferLocal = true
            #expect(try await router.complete(chat, deadline: Self.deadline).provider == "a")
            #expect(mocks.requests("b") == 0 && mocks.requests("c") == 0)
            chat.preferLocal = false
            chat.model = "c/special-model"
            let answer = try await router.complete(chat, deadline: Self.deadline)
            #expect(answer.provider == "c")
            let sent = try JSONSerialization.jsonObject(with: Data(mocks.servers["c"]!.received[0].body)) as? [String: Any]
            #expect(sent?["model"] as? String == "special-model")
            chat.model = "b-model"
            #expect(try await router.complete(chat, deadline: Self.deadline).provider == "b")

            // Only paid providers left and local-only: refused without a call.
            let none = GatewayChat(messages: Self.chat.messages, model: "b-model", localOnly: true)
            await #expect(throws: RoutingFailure.self) { _ = try await router.complete(none, deadline: Self.deadline) }
        }
    }

    func collect(_ stream: AsyncThrowingStream<GatewayStreamEvent, Error>) async -> (events: [GatewayStreamEvent], error: Error?) {
        var events: [GatewayStreamEvent] = []
        do {
            for try await event in stream { events.append(event) }
            return (events, nil)
        } catch {
            return (events, error)
        }
    }

    @Test("a stream that fails before its first text falls back; one that fails after it ends with an error, never a clean end")
    func streamFallback() async throws {
        try await withRouter { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: .stream([": nothing yet\n\n"], ending: .reset))
            mocks.servers["b"]!.answer("/v1/chat/completions", with: Self.streamOK)
            let fellBack = await collect(router.stream(Self.chat, deadline: Self.deadline))
            #expect(fellBack.error == nil)
            #expect(fellBack.events == [.provider("b", model: "b-model"), .text("Hel"), .text("lo"), .finished(reason: "stop")])

            mocks.servers["a"]!.answer("/v1/chat/completions", with: .stream([Self.chunk("par")], ending: .reset))
            let cut = await collect(router.stream(Self.chat, deadline: Self.deadline))
            #expect(cut.events == [.provider("a", model: "a-model"), .text("par")])
            #expect((cut.error as? RoutingFailure)?.message.contains("after text was sent") == true)
            #expect(mocks.requests("b") == 1, "no fallback once text reached the caller")
        }
    }

    // MARK: Hedged requests

    @Test("hedged requests: a provider that hangs past hedgeAfterMs is raced by the next one; the first answer wins and the loser is cancelled")
    func hedgedRequestWins() async throws {
        try await withRouter(strategy: .init(priority: ["a", "b", "c", "nokey"], parallelRequests: true, hedgeAfterMs: 100)) { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: .stream([], ending: .hang))
            mocks.servers["b"]!.answer("/v1/chat/completions", with: Self.ok)
            let started = ContinuousClock.now
            let answer = try await router.complete(Self.chat, deadline: Self.deadline)
            let elapsed = ContinuousClock.now - started
            #expect(answer.provider == "b")
            #expect(elapsed < .seconds(10), "the hanging provider is not waited for (low-speed limit 30 s): \(elapsed)")
            #expect(mocks.requests("a") == 1 && mocks.requests("b") == 1 && mocks.requests("c") == 0)
            let loser = try #require(answer.attempts.first { $0.provider == "a" })
            #expect(loser.outcome == "cancelled: b answered first (hedged request)", "\(answer.attempts)")
            #expect(router.routes["a"]!.breaker.snapshot.failures == 0, "a cancelled loser is not a provider failure")
        }
    }

    /// A budget that allows everything and prices a token at $0.001 (recording each settlement).
    final class PricingBudget: BudgetGate, @unchecked Sendable {
        let lock = NSLock()
        var settled: [(provider: String, usage: TokenUsage?)] = []
        var mode: BudgetMode { .normal }
        func admit(_ admission: Admission) async -> AdmissionDecision { .allowed(reservationId: "r-\(admission.requestId)") }
        func settle(_ admission: Admission, reservationId: String, usage: TokenUsage?, latencyMs: Int64) -> Double? {
            lock.withLock { settled.append((admission.provider, usage)) }
            return usage.map { Double($0.inputTokens + $0.outputTokens) * 0.001 }
        }
    }

    @Test("hedged requests: the cancelled loser's billed prompt is part of the answer's cost")
    func hedgedCostIncludesLoser() async throws {
        let budget = PricingBudget()
        try await withRouter(strategy: .init(priority: ["b", "c"], parallelRequests: true, hedgeAfterMs: 100), budget: budget) { router, mocks in
            mocks.servers["b"]!.answer("/v1/chat/completions", with: .stream([], ending: .hang))
            mocks.servers["c"]!.answer("/v1/chat/completions", with: Self.ok)
            let answer = try await router.complete(Self.chat, deadline: Self.deadline)
            #expect(answer.provider == "c")
            let loser = try #require(budget.lock.withLock { budget.settled.first { $0.provider == "b" } })
            let loserTokens = try #require(loser.usage)
            #expect(loserTokens.estimated && loserTokens.outputTokens == 0)
            // The winner's 5 + 1 counted tokens and the loser's estimated prompt.
            #expect(abs(answer.costUSD - Double(6 + loserTokens.inputTokens) * 0.001) < 1e-9, "\(answer.costUSD)")
        }
    }

    @Test("hedged requests: a first provider answering before hedgeAfterMs leaves the second uncalled; both failing moves on to the third")
    func hedgedRequestNotNeeded() async throws {
        try await withRouter(strategy: .init(priority: ["a", "b", "c", "nokey"], parallelRequests: true, hedgeAfterMs: 5_000)) { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: Self.ok)
            mocks.servers["b"]!.answer("/v1/chat/completions", with: Self.ok)
            let answer = try await router.complete(Self.chat, deadline: Self.deadline)
            #expect(answer.provider == "a")
            #expect(mocks.requests("b") == 0)
            #expect(answer.attempts.map(\.provider) == ["a"])
        }
        try await withRouter(strategy: .init(priority: ["a", "b", "c", "nokey"], parallelRequests: true)) { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: Self.unavailable)
            mocks.servers["b"]!.answer("/v1/chat/completions", with: Self.unavailable)
            mocks.servers["c"]!.answer("/v1/chat/completions", with: Self.ok)
            let answer = try await router.complete(Self.chat, deadline: Self.deadline)
            #expect(answer.provider == "c")
            #expect(mocks.requests("a") == 2 && mocks.requests("b") == 2, "both raced providers get their retries")
            #expect(Set(answer.attempts.map(\.provider)) == ["a", "b", "c"])
        }
    }

    @Test("hedged requests: a request the provider refuses (400) is not raced further")
    func hedgedRequestRefused() async throws {
        try await withRouter(strategy: .init(priority: ["a", "b", "c", "nokey"], parallelRequests: true, hedgeAfterMs: 0)) { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: Self.badRequest)
            mocks.servers["b"]!.answer("/v1/chat/completions", with: .stream([], ending: .hang))
            await #expect(throws: RoutingFailure.self) { try await router.complete(Self.chat, deadline: Self.deadline) }
            #expect(mocks.requests("c") == 0)
        }
    }

    // MARK: Embeddings from providers

    @Test("embeddings keep the request's deadline: a provider that hangs is given up at it, later providers are not tried, and its breaker does not count it")
    func embeddingsDeadline() async throws {
        try await withRouter(embeddingModels: ["text-embedding-3-small"]) { router, mocks in
            mocks.servers["a"]!.answer("/v1/embeddings", with: .stream([], ending: .hang))
            mocks.servers["b"]!.answer("/v1/embeddings", with: Self.unavailable)
            let started = ContinuousClock.now
            do {
                _ = try await router.embed(["first"], model: "text-embedding-3-small", dimensions: nil, deadline: .now + .milliseconds(600))
                Issue.record("answered past the deadline")
            } catch let failure as RoutingFailure {
                #expect(failure.message.contains("deadline"), "\(failure)")
            }
            let elapsed = ContinuousClock.now - started
            #expect(elapsed >= .milliseconds(500) && elapsed < .seconds(5), "\(elapsed)")
            #expect(mocks.requests("b") == 0)
            #expect(router.routes["a"]!.breaker.snapshot.failures == 0)
        }
    }

    @Test("provider embeddings: OpenAI's wire format, in the texts' order; a failing provider falls back to the next serving the model; an unknown model is refused")
    func providerEmbeddings() async throws {
        try await withRouter(embeddingModels: ["text-embedding-3-small"]) { router, mocks in
            mocks.servers["a"]!.answer("/v1/embeddings", with: Self.unavailable)
            // Out of order on purpose: OpenAI's `index` decides.
            mocks.servers["b"]!.answer("/v1/embeddings", with: .init(body: #"{"object":"list","data":[{"object":"embedding","index":1,"embedding":[0.0,1.0,0.5]},{"object":"embedding","index":0,"embedding":[1.0,0.0,-0.5]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":7,"total_tokens":7}}"#))
            let answer = try await router.embed(["first", "second"], model: "text-embedding-3-small", dimensions: nil, deadline: Self.deadline)
            #expect(answer.provider == "b")
            #expect(answer.result.vectors == [[1, 0, -0.5], [0, 1, 0.5]])
            #expect(answer.result.inputTokens == 7)
            let sent = try #require(mocks.servers["b"]!.received.first)
            let body = try #require(try JSONSerialization.jsonObject(with: Data(sent.body)) as? [String: Any])
            #expect(body["model"] as? String == "text-embedding-3-small")
            #expect(body["input"] as? [String] == ["first", "second"])
            #expect(sent.header("authorization") == "Bearer key-b-0123456789")
            await #expect(throws: RoutingFailure.self) { try await router.embed(["x"], model: "no-such-model", dimensions: nil, deadline: Self.deadline) }
            let pinned = try await router.embed(["x", "y"], model: "b/text-embedding-3-small", dimensions: nil, deadline: Self.deadline)
            #expect(pinned.provider == "b")
        }
    }

    // MARK: Structured output

    static func answer(_ content: String) -> ScriptedHTTPServer.CannedAnswer {
        let array = try! JSONSerialization.data(withJSONObject: [content])
        let json = String(decoding: array.dropFirst(2).dropLast(2), as: UTF8.self)  // the string's escaped text, without ["..."]
        return .init(body: #"{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"\#(json)"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#)
    }
    static let itemSchema = try! OutputSchema(text: #"{"type":"object","properties":{"name":{"type":"string","minLength":1},"confidence":{"type":"number","minimum":0,"maximum":1}},"required":["name","confidence"],"additionalProperties":false}"#, name: "item")
    static var structured: GatewayChat {
        var chat = GatewayChat(messages: [ChatMessage(role: "user", content: "extract")], temperature: 0, operation: "extract")
        chat.schema = itemSchema
        return chat
    }

    @Test("a structured answer that follows the schema is returned as its JSON (a code fence around it dropped), with one attempt")
    func schemaValidPasses() async throws {
        try await withRouter { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: Self.answer("```json\n{\"name\":\"retry\",\"confidence\":0.75}\n```"))
            let answer = try await router.complete(Self.structured, deadline: Self.deadline)
            #expect(answer.result.content == #"{"name":"retry","confidence":0.75}"#)
            #expect(answer.provider == "a" && answer.attempts.map(\.outcome) == ["ok"])
        }
    }

    @Test("an answer that breaks the schema is retried once on the next provider of the plan; its attempt says why")
    func schemaInvalidRetriedOnNext() async throws {
        try await withRouter { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: Self.answer(#"{"name":"retry","confidence":1.5}"#))
            mocks.servers["b"]!.answer("/v1/chat/completions", with: Self.answer(#"{"name":"retry","confidence":0.5}"#))
            let answer = try await router.complete(Self.structured, deadline: Self.deadline)
            #expect(answer.provider == "b")
            #expect(answer.result.content == #"{"name":"retry","confidence":0.5}"#)
            #expect(answer.attempts.map(\.provider) == ["a", "b"])
            #expect(answer.attempts[0].outcome == "invalid output: confidence: must be at most 1 (found 1.5)")
            #expect(mocks.requests("a") == 1, "a broken answer is not a transient failure: no retry on the same provider while another is left")
            #expect(router.routes["a"]!.breaker.snapshot.failures == 0, "a broken answer is not the provider's failure")
        }
    }

    @Test("two answers that break the schema end in SchemaMismatch (never a half answer); with one provider the retry goes to it again")
    func schemaInvalidTwiceFails() async throws {
        try await withRouter { router, mocks in
            mocks.servers["a"]!.answer("/v1/chat/completions", with: Self.answer("Sure! Here is the item: retry"), Self.answer(#"{"name":"","confidence":0.5}"#))
            var local = Self.structured
            local.localOnly = true
            do {
                let answer = try await router.complete(local, deadline: Self.deadline)
                Issue.record("a broken answer was returned: \(answer.result.content)")
            } catch let mismatch as SchemaMismatch {
                #expect(mismatch.problem == "name: must be at least 1 characters long (found 0)")
                #expect(mismatch.attempts.count == 2)
                #expect(mismatch.attempts[0].outcome.hasPrefix("invalid output: the answer is not JSON"))
            }
            #expect(mocks.requests("a") == 2)
            #expect(mocks.requests("b") == 0)
        }
    }

    @Test("cache keys carry the schema: the same prompt with another schema (or its properties reordered) or none is another entry, re-indented the same; a valid structured answer is cached, a broken one never")
    func schemaCacheKeys() async throws {
        let cache = ResponseCache(path: nil, capacity: 100, ttl: .seconds(600), logger: Logger(label: "test"))
        try await withRouter(cache: cache) { router, mocks in
            var free = Self.structured
            free.schema = nil
            var other = Self.structured
            other.schema = try OutputSchema(text: #"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#, name: "item")
            mocks.servers["a"]!.answer("/v1/chat/completions",
                with: Self.answer("no json"), Self.answer("still none"),  // broken twice: not cached
                Self.answer(#"{"name":"n","confidence":0.1}"#), Self.answer("free text"), Self.answer(#"{"name":"m"}"#))
            var local = Self.structured
            local.localOnly = true
            await #expect(throws: SchemaMismatch.self) { _ = try await router.complete(local, deadline: Self.deadline) }
            let first = try await router.complete(local, deadline: Self.deadline)
            #expect(!first.cached && first.result.content == #"{"name":"n","confidence":0.1}"#, "the broken answers were not cached")
            free.localOnly = true
            other.localOnly = true
            #expect(try await router.complete(free, deadline: Self.deadline).result.content == "free text")
            #expect(try await router.complete(other, deadline: Self.deadline).result.content == #"{"name":"m"}"#)
            let again = try await router.complete(local, deadline: Self.deadline)
            #expect(again.cached && again.result.content == first.result.content)
            #expect(mocks.requests("a") == 5)
            #expect(ResponseCache.key(messages: local.messages, model: "", maxTokens: nil, temperature: 0, schema: Self.itemSchema)
                != ResponseCache.key(messages: local.messages, model: "", maxTokens: nil, temperature: 0, schema: try OutputSchema(text: Self.itemSchema.text, name: "other")))
            // The same schema re-indented shares the key; its properties in another order, or a
            // space inside one of its strings, do not.
            let key = { (text: String) in
                ResponseCache.key(messages: local.messages, model: "", maxTokens: nil, temperature: 0, schema: try OutputSchema(text: text, name: "item"))
            }
            let indented = "{\n  \"type\" : \"object\",\n\t\"properties\": {\"name\": {\"type\": \"string\", \"minLength\": 1},\r\n \"confidence\": {\"type\":\"number\",\"minimum\":0,\"maximum\":1}},\n  \"required\": [ \"name\", \"confidence\" ], \"additionalProperties\": false\n}\n"
            #expect(try key(indented) == key(Self.itemSchema.text))
            #expect(try key(#"{"properties":{"name":{"type":"string","minLength":1},"confidence":{"type":"number","minimum":0,"maximum":1}},"type":"object","required":["name","confidence"],"additionalProperties":false}"#) != key(Self.itemSchema.text))
            #expect(try key(#"{"type":"object","description":"a b"}"#) != key(#"{"type":"object","description":"ab"}"#))
            #expect(try key(#"{"type":"object","description":"a \" b"}"#) == key(#"{ "type" : "object" , "description" : "a \" b" }"#))
            #expect(try OutputSchema(text: #"{ "type" : "object" , "description" : "x \" y\\ " , "required" : [ "a" , "b" ] }"#).compactText == #"{"type":"object","description":"x \" y\\ ","required":["a","b"]}"#)
        }
    }

    @Test("a stream with a schema is refused as the request's fault, before any provider is called")
    func schemaStreamRefused() async throws {
        try await withRouter { router, mocks in
            do {
                for try await _ in router.stream(Self.structured, deadline: Self.deadline) {}
                Issue.record("a structured stream was served")
            } catch let failure as RoutingFailure {
                #expect(failure.kind == .request && failure.message.contains("whole completions"))
            }
            #expect(mocks.requests("a") == 0)
        }
    }
}
