import Foundation
@testable import InferenceKit
import KBEmbeddings
import KBProto
import KBRPC
import KBTestSupport
import Logging
import Testing

/// The gateway's semantic cache, provider embeddings, the operator's cache commands and the
/// budget gate's drain at shutdown — against real processes and mock providers.
@Suite("inference-gateway: semantic cache, provider embeddings, cache commands, cost drain", .serialized)
struct InferenceGatewayCacheTests {
    static let ok = ScriptedHTTPServer.CannedAnswer(body: #"{"id":"c","object":"chat.completion","model":"mock-1","choices":[{"index":0,"message":{"role":"assistant","content":"use OAuth 2 with PKCE"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#)

    static let question = "How do I implement user authentication in my web app?"
    static let paraphrase = "How can I implement user authentication for my web application?"
    static let unrelated = "What is the boiling point of water at sea level?"

    func ask(_ client: RPCClient, _ prompt: String, system: String? = nil, temperature: Float = 0, useCache: Bool = false, project: String = "") async throws -> Kb_Inference_V1_CompletionResponse {
        try await client.call(InferenceGatewayMethods.complete, .with {
            $0.project = project
            if let system { $0.messages.append(.with { $0.role = "system"; $0.content = system }) }
            $0.messages.append(.with { $0.role = "user"; $0.content = prompt })
            $0.model = "only/mock-1"
            $0.temperature = .with { $0.value = temperature }
            $0.useCache = useCache
        })
    }

    @Test("the semantic cache (on): a paraphrase is answered from the cache with its similarity; unrelated prompts, other system prompts and non-deterministic requests are not; it survives a restart; kb inference cache stats / clear / warm work on it")
    func semanticCache() async throws {
        // The premise, checked with the model itself: the paraphrase is close, the unrelated prompt is not.
        let reference = try TextEmbedder(threads: 1).embed([Self.question, Self.paraphrase, Self.unrelated])
        let close = zip(reference[0], reference[1]).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        let far = zip(reference[0], reference[2]).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        try #require(close >= 0.85 && far < 0.5, "cosines \(close), \(far)")

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
        let environment = [
            "KB_INFERENCE_PROVIDERS_FILE": file.path, "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())",
            "KB_INFERENCE_SEMANTIC_CACHE": "on", "KB_INFERENCE_SEMANTIC_CACHE_THRESHOLD": "0.85",
        ]
        let first = try ServiceProcess(executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", environment: environment, dataDirectory: data)
        try await first.waitUntilReady()
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: first.port))

        let original = try await ask(client, Self.question)
        #expect(!original.cached && original.content == "use OAuth 2 with PKCE")
        let paraphrased = try await ask(client, Self.paraphrase)
        #expect(paraphrased.cached && paraphrased.cacheType == "semantic", "\(paraphrased)")
        #expect(abs(paraphrased.similarity - close) < 0.001, "the similarity reported is the model's cosine: \(paraphrased.similarity) vs \(close)")
        #expect(paraphrased.content == original.content && paraphrased.provider == "only")
        #expect(provider.received.count == 1)
        #expect(try await ask(client, Self.question).cacheType == "completion", "an exact repeat is the completion cache's")
        #expect(try await ask(client, Self.unrelated).cached == false)
        #expect(try await ask(client, Self.paraphrase, system: "Answer in French.").cached == false, "another system prompt is another partition")
        #expect(try await ask(client, Self.paraphrase, temperature: 0.7).cached == false, "not deterministic, and use_cache not set")
        #expect(provider.received.count == 4)
        // use_cache lets a non-deterministic request use (and fill) it, within its own parameters.
        #expect(try await ask(client, Self.question, temperature: 0.7, useCache: true).cached == false)
        let warmCached = try await ask(client, Self.paraphrase, temperature: 0.7, useCache: true)
        #expect(warmCached.cached && warmCached.cacheType == "semantic")
        #expect(provider.received.count == 5)
        // Never across projects; never for prompts longer than the model reads.
        #expect(try await ask(client, Self.paraphrase, project: "other-team").cached == false, "another project's answers are not served")
        let context = String(repeating: "The retrieved document says the service restarts nightly. ", count: 60)
        _ = try await ask(client, context + "Question: when does it restart?", project: "long")
        #expect(try await ask(client, context + "Question: who restarts it?", project: "long").cached == false, "a long prompt's tail decides")
        #expect(provider.received.count == 8)

        let stats = try await client.call(InferenceGatewayMethods.getCacheStats, .init())
        let semantic = try #require(stats.caches.first { $0.cacheType == "semantic" })
        #expect(semantic.hits == 2 && semantic.threshold > 0.84 && semantic.threshold < 0.86, "\(semantic)")
        #expect(semantic.entries == 5, "question, unrelated, the French one, question at 0.7, other-team: \(semantic)")
        let metrics = try #require(await httpGet("http://127.0.0.1:\(first.adminPort)/metrics"))
        #expect(metrics.body.contains(#"knowledge_cache_hits_total{cache_type="semantic"} 2"#))
        await client.close()
        #expect(await first.stop() == 0)

        // Across a restart; then the operator's commands.
        let second = try ServiceProcess(executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", environment: environment, dataDirectory: data)
        try await second.waitUntilReady()
        defer { Task { await second.stop() } }
        let restarted = RPCClient(configuration: .init(host: "127.0.0.1", port: second.port))
        defer { Task { await restarted.close() } }
        let afterRestart = try await ask(restarted, Self.paraphrase)
        #expect(afterRestart.cached && afterRestart.cacheType == "semantic", "the semantic cache survives a restart")
        #expect(provider.received.count == 8)

        let kb = builtProductsDirectory.appendingPathComponent("kb")
        let kbEnvironment = ["KB_INFERENCE_GATEWAY_ADDR": "127.0.0.1:\(second.port)"]
        let statsOutput = try runProgram(kb, ["inference", "cache", "stats"], environment: kbEnvironment)
        #expect(statsOutput.status == 0, "\(statsOutput.stderr)")
        #expect(statsOutput.stdout.contains("semantic") && statsOutput.stdout.contains("threshold 0.850"), "\(statsOutput.stdout)")
        let cleared = try runProgram(kb, ["inference", "cache", "clear", "semantic"], environment: kbEnvironment)
        #expect(cleared.status == 0 && cleared.stdout.contains("removed 5 entries from the semantic cache"), "\(cleared.stdout) \(cleared.stderr)")
        #expect(try await ask(restarted, Self.paraphrase).cached == false, "cleared")
        let wrong = try runProgram(kb, ["inference", "cache", "clear", "semantics"], environment: kbEnvironment)
        #expect(wrong.status != 0 && wrong.stderr.contains("cache_type"), "\(wrong.stderr)")

        // Cache warming: prompts, then texts; a second run finds them cached.
        let prompts = directory.appendingPathComponent("prompts.txt")
        try "# common questions\nHow do I implement authentication?\n\n{\"prompt\": \"Best practices for error handling\"}\n".write(to: prompts, atomically: true, encoding: .utf8)
        let warmed = try runProgram(kb, ["inference", "warm", prompts.path, "--model", "only/mock-1"], environment: kbEnvironment)
        #expect(warmed.status == 0 && warmed.stdout.contains("warmed 2, already cached 0, failed 0"), "\(warmed.stdout) \(warmed.stderr)")
        let rewarmed = try runProgram(kb, ["inference", "warm", prompts.path, "--model", "only/mock-1"], environment: kbEnvironment)
        #expect(rewarmed.stdout.contains("warmed 0, already cached 2, failed 0"), "\(rewarmed.stdout)")
        let texts = directory.appendingPathComponent("texts.txt")
        try "circuit breaker\nsemantic cache\ncircuit breaker\n".write(to: texts, atomically: true, encoding: .utf8)
        let embedded = try runProgram(kb, ["inference", "warm", "--embeddings", texts.path], environment: kbEnvironment)
        #expect(embedded.status == 0 && embedded.stdout.contains("failed 0"), "\(embedded.stdout) \(embedded.stderr)")
        let reembedded = try runProgram(kb, ["inference", "warm", "--embeddings", texts.path], environment: kbEnvironment)
        #expect(reembedded.stdout.contains("warmed 0, already cached 3"), "\(reembedded.stdout)")
    }

    @Test("the semantic cache is off by default: a paraphrase goes to the provider")
    func semanticCacheOffByDefault() async throws {
        let provider = try ScriptedHTTPServer()
        defer { provider.stop() }
        provider.answer("/v1/chat/completions", with: Self.ok)
        let file = try writeProvidersFile("providers:\n  \(provider.localProvider("only"))\n", in: temporaryDirectory("kb-inference"))
        let gateway = try ServiceProcess(executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", environment: ["KB_INFERENCE_PROVIDERS_FILE": file.path, "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())"])
        try await gateway.waitUntilReady()
        defer { Task { await gateway.stop() } }
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: gateway.port))
        defer { Task { await client.close() } }
        _ = try await ask(client, Self.question)
        #expect(try await ask(client, Self.paraphrase).cached == false)
        #expect(provider.received.count == 2)
        let stats = try await client.call(InferenceGatewayMethods.getCacheStats, .init())
        #expect(stats.caches.map(\.cacheType) == ["completion", "embedding"])
    }

    @Test("1536-dimensional embeddings through OpenAI's API (text-embedding-3-small) via Embed and /v1/embeddings, through the embedding cache; without a key it is refused naming the variable")
    func openAIEmbeddings() async throws {
        let openai = try ScriptedHTTPServer()
        defer { openai.stop() }
        func vector(_ seed: Int) -> String { (0..<1536).map { String(format: "%.4f", sin(Double($0 * (seed + 1)) * 0.01)) }.joined(separator: ",") }
        openai.answer("/v1/embeddings", with: .init(body: #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[\#(vector(0))]},{"object":"embedding","index":1,"embedding":[\#(vector(1))]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#),
                       .init(body: #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[\#(vector(2))]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":4,"total_tokens":4}}"#))
        let file = try writeProvidersFile("""
            providers:
              openai: {api: openai, base_url: "\(openai.baseURL)/v1", api_key_env: OPENAI_API_KEY, models: [gpt-4o-mini], embedding_models: [text-embedding-3-small]}
            """, in: temporaryDirectory("kb-inference"))
        let base = ["KB_INFERENCE_PROVIDERS_FILE": file.path, "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())", "KB_INFERENCE_BUDGET_UNREACHABLE": "allow-paid"]
        let gateway = try ServiceProcess(executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", environment: base.merging(["OPENAI_API_KEY": "sk-embed-test-0123456789"]) { $1 })
        try await gateway.waitUntilReady()
        defer { Task { await gateway.stop() } }
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: gateway.port))
        defer { Task { await client.close() } }

        let response = try await client.call(InferenceGatewayMethods.embed, .with { $0.texts = ["first", "second"]; $0.dimension = 1536 })
        #expect(response.dimension == 1536 && response.embeddings.count == 2 && response.model == "text-embedding-3-small")
        #expect(abs(response.embeddings[1].values[3] - Float(sin(3 * 2 * 0.01))) < 0.0001)
        let request = try #require(openai.received.first)
        #expect(request.header("authorization") == "Bearer sk-embed-test-0123456789")
        // The OpenAI front: one cached text, one new.
        let http = try #require(await httpRequest("POST", "http://127.0.0.1:\(gateway.adminPort)/v1/embeddings", body: Data(#"{"model":"text-embedding-3-small","input":["second","third"]}"#.utf8), headers: ["Content-Type": "application/json"]))
        #expect(http.status == 200, "\(http.body)")
        #expect(http.headers["x-kb-provider"] == "openai" && http.headers["x-kb-cached"] == "1", "\(http.headers)")
        let data = try #require(http.json["data"] as? [[String: Any]])
        #expect(data.count == 2 && (data[0]["embedding"] as? [Double])?.count == 1536)
        #expect(openai.received.count == 2)
        let sent = try #require(try JSONSerialization.jsonObject(with: Data(openai.received[1].body)) as? [String: Any])
        #expect(sent["input"] as? [String] == ["third"], "only the text the cache lacks is sent")
        let models = try #require(await httpGet("http://127.0.0.1:\(gateway.adminPort)/v1/models"))
        #expect(models.body.contains(#"openai\/text-embedding-3-small"#) || models.body.contains("openai/text-embedding-3-small"))

        let keyless = try ServiceProcess(executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY", environment: base.merging(["OPENAI_API_KEY": ""]) { $1 })
        try await keyless.waitUntilReady()
        defer { Task { await keyless.stop() } }
        let keylessClient = RPCClient(configuration: .init(host: "127.0.0.1", port: keyless.port))
        defer { Task { await keylessClient.close() } }
        do {
            _ = try await keylessClient.call(InferenceGatewayMethods.embed, .with { $0.texts = ["x"]; $0.dimension = 1536 })
            Issue.record("a 1536-dimensional Embed was answered without OPENAI_API_KEY")
        } catch let error as RPCError {
            #expect(error.code == .failedPrecondition && error.message.contains("OPENAI_API_KEY"), "\(error)")
        }
        #expect(openai.received.count == 2)
    }

    @Test("at shutdown the budget gate records the costs budget-service could not take while it was down (drain); what stays unrecordable is counted and logged")
    func drainRecordsPendingCosts() async throws {
        let port = freePort()
        var configuration = RPCClient.Configuration(host: "127.0.0.1", port: port)
        configuration.failFast = true
        let client = RPCClient(configuration: configuration)
        defer { Task { await client.close() } }
        let gate = BudgetServiceGate(client: client, failOpen: true, logger: Logger(label: "test"))
        let admission = Admission(provider: "openai", model: "gpt-4o", operation: "extract", project: "p", requestId: "drain-1:openai", estimatedInputTokens: 10, maximumOutputTokens: 100)
        gate.settle(admission, reservationId: "", usage: TokenUsage(inputTokens: 10, outputTokens: 100), latencyMs: 5)
        for _ in 0..<200 where gate.pendingRecordings == 0 { try await Task.sleep(for: .milliseconds(25)) }
        #expect(gate.pendingRecordings == 1, "budget-service is down: the recording waits")
        #expect(await gate.drain(timeout: .milliseconds(200)) == 1, "still down: counted as not recorded (and logged)")

        let budget = try ServiceProcess(executable: "budget-service", envPrefix: "KB_BUDGET_SERVICE", environment: ["KB_BUDGET_SERVICE_PORT": "\(port)"])
        try await budget.waitUntilReady()
        defer { Task { await budget.stop() } }
        #expect(await gate.drain() == 0)
        #expect(gate.pendingRecordings == 0)
        let budgetClient = RPCClient(configuration: .init(host: "127.0.0.1", port: budget.port))
        defer { Task { await budgetClient.close() } }
        let events = try await budgetClient.call(BudgetMethods.listEvents, .with { $0.limit = 10 })
        #expect(events.events.map(\.requestID) == ["drain-1:openai"])
        #expect(events.events.first?.inputTokens == 10 && events.events.first?.outputTokens == 100)
    }
}
