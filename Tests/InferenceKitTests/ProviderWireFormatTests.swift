import Foundation
import InferenceKit
import KBHTTPClient
import KBTestSupport
import Testing

/// Each provider's exact wire format, non-streaming and streaming, with usage and every failure,
/// spoken by a loopback mock server.
@Suite("Provider adapters against mock servers that speak each provider's wire format", .serialized)
struct ProviderWireFormatTests {
    static let key = "sk-test-0123456789abcdefSECRET"
    static let chat = ChatRequest(
        messages: [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Say hello")],
        model: "m-1", maxTokens: 50, temperature: 0
    )

    func withProvider(_ api: ProviderAPI, key: String? = ProviderWireFormatTests.key, lowSpeed: Bool = false, structuredOutput: ProviderEndpoint.StructuredOutput? = nil, _ body: (ScriptedHTTPServer, ProviderClient) async throws -> Void) async throws {
        let server = try ScriptedHTTPServer()
        let http = HTTPClient()
        defer {
            http.shutdown()
            server.stop()
        }
        let base = api == .openAI ? server.baseURL + "/v1" : server.baseURL
        let timeouts = lowSpeed ? HTTPTimeouts(total: .seconds(30), lowSpeedBytesPerSecond: 1, lowSpeedTime: .seconds(1)) : HTTPTimeouts(total: .seconds(30))
        try await body(server, ProviderClient(name: api.rawValue, endpoint: ProviderEndpoint(api: api, baseURL: base, apiKey: key, timeouts: timeouts, structuredOutput: structuredOutput), http: http))
    }

    func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    func collect(_ stream: ProviderEvents) async throws -> (text: String, usage: TokenUsage?, finish: String?) {
        var text = "", usage: TokenUsage?, finish: String?
        for try await event in stream {
            switch event {
            case .text(let piece): text += piece
            case .usage(let latest): usage = latest
            case .finished(let reason): finish = reason
            }
        }
        return (text, usage, finish)
    }

    func failure(_ body: () async throws -> Void) async -> ProviderFailure? {
        do {
            try await body()
            return nil
        } catch let failure as ProviderFailure {
            return failure
        } catch {
            Issue.record("not a ProviderFailure: \(error)")
            return nil
        }
    }

    // MARK: OpenAI-compatible

    @Test("OpenAI: the request, a whole answer with usage, and a stream with include_usage and [DONE]")
    func openAI() async throws {
        try await withProvider(.openAI) { server, client in
            server.answer("/v1/chat/completions", with: .init(body: """
                {"id":"chatcmpl-1","object":"chat.completion","created":1733000000,"model":"m-1-2024","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15},"system_fingerprint":"fp"}
                """), .stream([
                    #"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m-1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"# + "\n\n",
                    #"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m-1","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],"usage":null}"# + "\n\n",
                    #"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m-1","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}],"usage":null}"# + "\n\n" +
                    #"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m-1","choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":null}"# + "\n\n",
                    #"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m-1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}"# + "\n\n",
                    "data: [DONE]\n\n",
                ]))
            let result = try await client.complete(Self.chat)
            #expect(result == ChatResult(content: "Hello!", finishReason: "stop", usage: TokenUsage(inputTokens: 12, outputTokens: 3), model: "m-1-2024"))
            let request = try #require(server.received.first)
            #expect(request.path == "/v1/chat/completions")
            #expect(request.header("authorization") == "Bearer \(Self.key)")
            let body = try json(request.body)
            #expect(body["model"] as? String == "m-1")
            #expect(body["max_tokens"] as? Int == 50)
            #expect((body["messages"] as? [[String: String]])?.map { $0["role"]! } == ["system", "user"])
            #expect(body["stream"] == nil)

            let streamed = try await collect(try await client.stream(Self.chat))
            #expect(streamed.text == "Hello")
            #expect(streamed.usage == TokenUsage(inputTokens: 12, outputTokens: 2))
            #expect(streamed.finish == "length")
            let streamBody = try json(try #require(server.received.last).body)
            #expect(streamBody["stream"] as? Bool == true)
            #expect((streamBody["stream_options"] as? [String: Bool])?["include_usage"] == true)
        }
    }

    @Test("OpenAI errors: 429 with retry-after is transient, insufficient_quota is exhausted, 401 is configuration (key redacted), context length is the request's, 5xx transient")
    func openAIErrors() async throws {
        try await withProvider(.openAI) { server, client in
            server.answer("/v1/chat/completions",
                with: .init(status: 429, headers: [("Content-Type", "application/json"), ("retry-after", "7")], body: #"{"error":{"message":"Rate limit reached for m-1","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#),
                .init(status: 429, body: #"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#),
                .init(status: 401, body: #"{"error":{"message":"Incorrect API key provided: \#(Self.key). You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#),
                .init(status: 400, body: #"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#),
                .init(status: 503, headers: [("Content-Type", "text/html")], body: "<html>Service Unavailable</html>"),
                .init(body: "{not json")
            )
            let limited = await failure { _ = try await client.complete(Self.chat) }
            #expect(limited?.kind == .transient && limited?.status == 429 && limited?.retryAfterMs == 7000)
            #expect(limited?.message.contains("rate_limit_exceeded") == true)
            #expect(await failure { _ = try await client.complete(Self.chat) }?.kind == .exhausted)
            let unauthorized = await failure { _ = try await client.complete(Self.chat) }
            #expect(unauthorized?.kind == .configuration)
            #expect(unauthorized?.message.contains("SECRET") == false, "the key never appears in an error")
            #expect(unauthorized?.message.contains("sk-test-") == false)
            let tooLong = await failure { _ = try await client.complete(Self.chat) }
            #expect(tooLong?.kind == .request && tooLong?.message.contains("context_length_exceeded") == true)
            #expect(await failure { _ = try await client.complete(Self.chat) }?.kind == .transient)
            let malformed = await failure { _ = try await client.complete(Self.chat) }
            #expect(malformed?.kind == .transient && malformed?.message.contains("malformed") == true)
        }
    }

    @Test("a stream cut before [DONE] (reset mid-stream, or a clean end without the marker) fails transient after the text that came")
    func cutStreams() async throws {
        try await withProvider(.openAI) { server, client in
            let first = #"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m-1","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"# + "\n\n"
            server.answer("/v1/chat/completions", with: .stream([first], ending: .reset), .stream([first]))
            for _ in 0..<2 {
                var text = ""
                let cut = await failure {
                    for try await event in try await client.stream(Self.chat) {
                        if case .text(let piece) = event { text += piece }
                    }
                }
                #expect(text == "Hel")
                #expect(cut?.kind == .transient, "\(String(describing: cut))")
            }
        }
    }

    @Test("a provider that hangs with no bytes fails transient at the low-speed limit")
    func hang() async throws {
        try await withProvider(.openAI, lowSpeed: true) { server, client in
            server.answer("/v1/chat/completions", with: .stream([], ending: .hang))
            let hung = await failure { _ = try await collect(try await client.stream(Self.chat)) }
            #expect(hung?.kind == .transient)
        }
    }

    // MARK: Anthropic

    @Test("Anthropic Messages: system apart, x-api-key and version headers, content blocks, and the SSE events with cumulative usage")
    func anthropic() async throws {
        try await withProvider(.anthropic) { server, client in
            server.answer("/v1/messages", with: .init(body: """
                {"id":"msg_01","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hello"},{"type":"text","text":" there"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":21,"output_tokens":50}}
                """), .stream([
                    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
                    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n",
                    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
                    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
                    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
                    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                ]), .init(status: 529, body: #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
                .stream(["event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
                         "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"])
            )
            let result = try await client.complete(Self.chat)
            #expect(result == ChatResult(content: "Hello there", finishReason: "length", usage: TokenUsage(inputTokens: 21, outputTokens: 50), model: "claude-x"))
            let request = try #require(server.received.first)
            #expect(request.header("x-api-key") == Self.key && request.header("anthropic-version") == "2023-06-01")
            #expect(request.header("authorization") == nil)
            let body = try json(request.body)
            #expect(body["system"] as? String == "Be brief.")
            #expect((body["messages"] as? [[String: String]])?.map { $0["role"]! } == ["user"])
            #expect(body["max_tokens"] as? Int == 50)

            let streamed = try await collect(try await client.stream(Self.chat))
            #expect(streamed.text == "Hello!")
            #expect(streamed.usage == TokenUsage(inputTokens: 25, outputTokens: 15), "message_delta's usage is cumulative: it replaces, not adds")
            #expect(streamed.finish == "stop")

            let overloaded = await failure { _ = try await client.complete(Self.chat) }
            #expect(overloaded?.kind == .transient && overloaded?.status == 529)
            let midStream = await failure { _ = try await collect(try await client.stream(Self.chat)) }
            #expect(midStream?.kind == .transient && midStream?.message.contains("overloaded_error") == true)
        }
    }

    // MARK: Gemini

    @Test("Gemini: contents with model/user roles, systemInstruction, generationConfig, the key in a header; SSE stream ends at finishReason")
    func gemini() async throws {
        try await withProvider(.gemini) { server, client in
            server.answer("/v1beta/models/m-1:generateContent", with: .init(body: """
                {"candidates":[{"content":{"parts":[{"text":"Hi"},{"text":"!"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":2,"totalTokenCount":10},"modelVersion":"gemini-x"}
                """), .init(status: 429, body: #"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Generate Content API requests per day'","status":"RESOURCE_EXHAUSTED"}}"#))
            server.answer("/v1beta/models/m-1:streamGenerateContent", with: .stream([
                "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,\"candidatesTokenCount\": 1,\"totalTokenCount\": 9},\"modelVersion\": \"gemini-x\"}\r\n\r\n",
                "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 8,\"candidatesTokenCount\": 2,\"totalTokenCount\": 10},\"modelVersion\": \"gemini-x\"}\r\n\r\n",
            ]))
            let result = try await client.complete(Self.chat)
            #expect(result == ChatResult(content: "Hi!", finishReason: "stop", usage: TokenUsage(inputTokens: 8, outputTokens: 2), model: "gemini-x"))
            let request = try #require(server.received.first)
            #expect(request.header("x-goog-api-key") == Self.key)
            #expect(!request.path.contains("key="), "the key stays out of the URL")
            let body = try json(request.body)
            #expect(((body["systemInstruction"] as? [String: Any])?["parts"] as? [[String: String]])?.first?["text"] == "Be brief.")
            #expect((body["contents"] as? [[String: Any]])?.map { $0["role"] as! String } == ["user"])
            #expect((body["generationConfig"] as? [String: Any])?["maxOutputTokens"] as? Int == 50)

            let streamed = try await collect(try await client.stream(Self.chat))
            #expect(streamed.text == "Hello" && streamed.finish == "stop" && streamed.usage == TokenUsage(inputTokens: 8, outputTokens: 2))
            #expect(try #require(server.received.last).path == "/v1beta/models/m-1:streamGenerateContent?alt=sse")

            let daily = await failure { _ = try await client.complete(Self.chat) }
            #expect(daily?.kind == .exhausted, "a daily RESOURCE_EXHAUSTED takes the provider out")
        }
    }

    // MARK: Ollama

    @Test("Ollama: /api/chat with options, a whole answer, and the NDJSON stream ending at done:true with counts")
    func ollama() async throws {
        try await withProvider(.ollama, key: nil) { server, client in
            server.answer("/api/chat", with: .init(body: """
                {"model":"llama3.2","created_at":"2024-12-01T00:00:00Z","message":{"role":"assistant","content":"Hello!"},"done_reason":"stop","done":true,"total_duration":5,"load_duration":1,"prompt_eval_count":26,"prompt_eval_duration":1,"eval_count":3,"eval_duration":1}
                """), .stream([
                    "{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n",
                    "{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},\"done\":false}\n{\"model\":\"llama3.2\",\"created_at\":\"t\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done_reason\":\"stop\",\"done\":true,\"prompt_eval_count\":26,\"eval_count\":2}\n",
                ], contentType: "application/x-ndjson"), .init(status: 404, body: #"{"error":"model \"m-1\" not found, try pulling it first"}"#))
            let result = try await client.complete(Self.chat)
            #expect(result == ChatResult(content: "Hello!", finishReason: "stop", usage: TokenUsage(inputTokens: 26, outputTokens: 3), model: "llama3.2"))
            let body = try json(try #require(server.received.first).body)
            #expect(body["stream"] as? Bool == false)
            #expect((body["options"] as? [String: Any])?["num_predict"] as? Int == 50)
            #expect(try #require(server.received.first).header("authorization") == nil)

            let streamed = try await collect(try await client.stream(Self.chat))
            #expect(streamed.text == "Hello" && streamed.usage == TokenUsage(inputTokens: 26, outputTokens: 2) && streamed.finish == "stop")
            let missing = await failure { _ = try await client.complete(Self.chat) }
            #expect(missing?.kind == .request && missing?.message.contains("not found") == true)
        }
    }

    // MARK: Structured output

    static let schemaText = #"{"type":"object","properties":{"name":{"type":"string"},"confidence":{"type":"number","minimum":0,"maximum":1}},"required":["name","confidence"],"additionalProperties":false}"#
    static var schemaValue: JSONValue { JSONValue.parse(schemaText)! }
    static var structured: ChatRequest {
        var chat = Self.chat
        chat.schema = try! OutputSchema(text: schemaText, name: "knowledge_item")
        return chat
    }

    /// The request body as typed JSON (booleans apart from numbers).
    func value(_ bytes: [UInt8]) throws -> [String: JSONValue] {
        guard case .object(let object)? = JSONValue.parse(String(decoding: bytes, as: UTF8.self)) else { throw ProviderFailure(.request, "not an object") }
        return object
    }

    @Test("OpenAI with a schema: response_format json_schema with name, the schema as given and strict when the schema fits strict mode; a schema strict mode refuses goes with strict false")
    func openAISchema() async throws {
        try await withProvider(.openAI) { server, client in
            let answer = ScriptedHTTPServer.CannedAnswer(body: #"{"id":"c","object":"chat.completion","model":"m-1","choices":[{"index":0,"message":{"role":"assistant","content":"{\"name\":\"x\",\"confidence\":0.9}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}"#)
            server.answer("/v1/chat/completions", with: answer, answer)
            let result = try await client.complete(Self.structured)
            #expect(result.content == #"{"name":"x","confidence":0.9}"#)
            let body = try value(try #require(server.received.first).body)
            #expect(body["response_format"] == .object([
                "type": .string("json_schema"),
                "json_schema": .object(["name": .string("knowledge_item"), "schema": Self.schemaValue, "strict": .bool(true)]),
            ]))
            #expect(body["messages"].map { if case .array(let items) = $0 { items.count } else { 0 } } == 2, "no instruction added: the provider is given the schema")

            var loose = Self.chat
            loose.schema = try OutputSchema(text: #"{"type":"object","properties":{"name":{"type":"string","minLength":1}},"required":["name"]}"#)
            _ = try await client.complete(loose)
            guard case .object(let format)? = try value(try #require(server.received.last).body)["response_format"], case .object(let schema)? = format["json_schema"] else {
                Issue.record("no response_format")
                return
            }
            #expect(schema["strict"] == .bool(false) && schema["name"] == .string("output"))
        }
    }

    @Test("llama.cpp (a local OpenAI-API server): response_format json_object with the schema, which llama-cpp-python turns into a grammar; JSON mode (Groq) sends json_object and tells the model the schema in a system message")
    func llamaCppAndJSONModeSchema() async throws {
        let answer = ScriptedHTTPServer.CannedAnswer(body: #"{"id":"c","object":"chat.completion","model":"m-1","choices":[{"index":0,"message":{"role":"assistant","content":"{}"},"finish_reason":"stop"}]}"#)
        #expect(ProviderEndpoint(api: .openAI, baseURL: "http://127.0.0.1:1/v1", apiKey: nil, local: true).structuredOutput == .jsonObjectSchema, "the local default")
        #expect(ProvidersFile.builtIn.providers["local"]!.endpoint(apiKey: nil).structuredOutput == .jsonObjectSchema)
        #expect(ProvidersFile.builtIn.providers["groq"]!.endpoint(apiKey: nil).structuredOutput == .jsonObject)
        #expect(ProvidersFile.builtIn.providers["openai"]!.endpoint(apiKey: nil).structuredOutput == .native)
        try await withProvider(.openAI, key: nil, structuredOutput: .jsonObjectSchema) { server, client in
            server.answer("/v1/chat/completions", with: answer)
            _ = try await client.complete(Self.structured)
            let body = try value(try #require(server.received.first).body)
            #expect(body["response_format"] == .object(["type": .string("json_object"), "schema": Self.schemaValue]))
        }
        try await withProvider(.openAI, structuredOutput: .jsonObject) { server, client in
            server.answer("/v1/chat/completions", with: answer)
            _ = try await client.complete(Self.structured)
            let body = try json(try #require(server.received.first).body)
            #expect(body["response_format"] as? [String: String] == ["type": "json_object"])
            let messages = try #require(body["messages"] as? [[String: String]])
            #expect(messages.map { $0["role"]! } == ["system", "system", "user"])
            #expect(messages[1]["content"]?.contains(Self.schemaText) == true, "the schema is in the instruction: \(messages[1])")
        }
    }

    @Test("Anthropic with a schema: one forced tool whose input_schema is the schema; the tool_use block's input is read back as the answer")
    func anthropicSchema() async throws {
        try await withProvider(.anthropic) { server, client in
            server.answer("/v1/messages", with: .init(body: """
                {"id":"msg_01","type":"message","role":"assistant","model":"claude-x","content":[{"type":"tool_use","id":"toolu_01","name":"knowledge_item","input":{"name":"retry with backoff","confidence":0.8}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":410,"output_tokens":38}}
                """))
            let result = try await client.complete(Self.structured)
            #expect(JSONValue.parse(result.content) == .object(["name": .string("retry with backoff"), "confidence": .number(0.8)]))
            #expect(result.finishReason == "stop" && result.usage == TokenUsage(inputTokens: 410, outputTokens: 38))
            let body = try value(try #require(server.received.first).body)
            guard case .array(let tools)? = body["tools"], case .object(let tool)? = tools.first else {
                Issue.record("no tools")
                return
            }
            #expect(tools.count == 1)
            #expect(tool["name"] == .string("knowledge_item") && tool["input_schema"] == Self.schemaValue)
            if case .string(let description)? = tool["description"] { #expect(!description.isEmpty) } else { Issue.record("no description") }
            #expect(body["tool_choice"] == .object(["type": .string("tool"), "name": .string("knowledge_item")]))
            #expect(body["system"] == .string("Be brief."))
        }
    }

    @Test("Gemini with a schema: generationConfig.responseMimeType application/json and responseJsonSchema (JSON Schema as it is); Ollama: format is the schema")
    func geminiAndOllamaSchema() async throws {
        try await withProvider(.gemini) { server, client in
            server.answer("/v1beta/models/m-1:generateContent", with: .init(body: #"""
                {"candidates":[{"content":{"parts":[{"text":"{\"name\": \"x\", \"confidence\": 1}"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":9}}
                """#))
            let result = try await client.complete(Self.structured)
            #expect(JSONValue.parse(result.content) == .object(["name": .string("x"), "confidence": .number(1)]))
            let body = try value(try #require(server.received.first).body)
            #expect(body["generationConfig"] == .object([
                "maxOutputTokens": .number(50), "temperature": .number(0),
                "responseMimeType": .string("application/json"), "responseJsonSchema": Self.schemaValue,
            ]))
        }
        try await withProvider(.ollama, key: nil) { server, client in
            server.answer("/api/chat", with: .init(body: #"{"model":"llama3.2","message":{"role":"assistant","content":"{\"name\":\"x\",\"confidence\":0}"},"done_reason":"stop","done":true,"prompt_eval_count":26,"eval_count":9}"#))
            let result = try await client.complete(Self.structured)
            #expect(result.content == #"{"name":"x","confidence":0}"#)
            let body = try value(try #require(server.received.first).body)
            #expect(body["format"] == Self.schemaValue)
            #expect(body["stream"] == .bool(false))
        }
    }

    @Test("a schema is for whole completions: a stream with one is the request's failure before any call")
    func schemaStreamRefused() async throws {
        try await withProvider(.openAI) { server, client in
            let refused = await failure { _ = try await client.stream(Self.structured) }
            #expect(refused?.kind == .request)
            #expect(server.received.isEmpty)
        }
    }

    @Test("a provider's retry-after cannot overflow anything: infinite, huge and dated values are bounded to a day")
    func retryAfterBounds() {
        for value in ["1e400", "99999999999999999999", "-5", "soon"] {
            let failure = ProviderFailure.answer(status: 429, head: HTTPResponseHead(status: 429, headers: [("Retry-After", value)]), body: [])
            #expect(failure.kind == .transient)
            #expect((failure.retryAfterMs ?? 0) <= 86_400_000, "\(value)")
        }
        let ms = ProviderFailure.answer(status: 429, head: HTTPResponseHead(status: 429, headers: [("retry-after-ms", "inf")]), body: [])
        #expect((ms.retryAfterMs ?? 0) <= 86_400_000)
        let gemini = ProviderFailure.answer(status: 400, head: HTTPResponseHead(status: 400), body: Array(#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#.utf8))
        #expect(gemini.kind == .configuration, "a refused key lets the router try the next provider")
    }

    // MARK: Embeddings

    @Test("embeddings: OpenAI's /embeddings (dimensions only when asked, float format) and Ollama's /api/embed; malformed answers are transient failures")
    func embeddings() async throws {
        try await withProvider(.openAI) { server, client in
            server.answer("/v1/embeddings", with: .init(body: #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,-1]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":3,"total_tokens":3}}"#),
                          .init(body: #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,"x"]}]}"#),
                          .init(body: #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1,2]}]}"#),
                          .init(status: 401, body: #"{"error":{"message":"Incorrect API key provided: \#(Self.key)","type":"invalid_request_error","code":"invalid_api_key"}}"#))
            let result = try await client.embed(["hello"], model: "text-embedding-3-small", dimensions: 256)
            #expect(result == EmbeddingResult(vectors: [[0.25, -1]], inputTokens: 3, model: "text-embedding-3-small"))
            let body = try json(try #require(server.received.first).body)
            #expect(body["dimensions"] as? Int == 256 && body["encoding_format"] as? String == "float")
            let malformed = await failure { _ = try await client.embed(["hello"], model: "m", dimensions: nil) }
            #expect(malformed?.kind == .transient)
            let miscounted = await failure { _ = try await client.embed(["one", "two"], model: "m", dimensions: nil) }
            #expect(miscounted?.message.contains("1 vectors for 2 texts") == true)
            let refused = await failure { _ = try await client.embed(["hello"], model: "m", dimensions: nil) }
            #expect(refused?.kind == .configuration)
            #expect(refused?.message.contains(Self.key) == false)
        }
        try await withProvider(.ollama, key: nil) { server, client in
            server.answer("/api/embed", with: .init(body: #"{"model":"nomic-embed-text","embeddings":[[0.5,0.5],[1,0]],"total_duration":1,"prompt_eval_count":9}"#))
            let result = try await client.embed(["a", "b"], model: "nomic-embed-text", dimensions: nil)
            #expect(result.vectors == [[0.5, 0.5], [1, 0]] && result.inputTokens == 9)
            let body = try json(try #require(server.received.first).body)
            #expect(body["input"] as? [String] == ["a", "b"] && body["dimensions"] == nil)
        }
    }

    @Test("embeddings are sent in batches (256 texts, or 200,000 estimated tokens) and come back in the texts' order with the tokens summed; an answer past the gateway's bound is the request's failure, not the provider's")
    func embeddingBatches() async throws {
        func answer(_ range: Range<Int>) -> ScriptedHTTPServer.CannedAnswer {
            let items = range.enumerated().map { position, text in #"{"object":"embedding","index":\#(position),"embedding":[\#(text),1]}"# }
            return .init(body: #"{"object":"list","data":[\#(items.joined(separator: ","))],"model":"text-embedding-3-small","usage":{"prompt_tokens":\#(range.count),"total_tokens":\#(range.count)}}"#)
        }
        try await withProvider(.openAI) { server, client in
            server.answer("/v1/embeddings", with: answer(0..<256), answer(256..<512), answer(512..<600))
            let texts = (0..<600).map { "text \($0)" }
            let result = try await client.embed(texts, model: "text-embedding-3-small", dimensions: nil)
            #expect(result.vectors.map { Int($0[0]) } == Array(0..<600))
            #expect(result.inputTokens == 600)
            let sizes = try server.received.map { try #require(try json($0.body)["input"] as? [String]).count }
            #expect(sizes == [256, 256, 88])
            #expect(ProviderClient.embeddingBatches(Array(repeating: String(repeating: "x", count: 900_000), count: 3)) == [0..<1, 1..<2, 2..<3], "each text over the token bound alone")
            #expect(ProviderClient.embeddingBatches(Array(repeating: String(repeating: "x", count: 300_000), count: 5)) == [0..<2, 2..<4, 4..<5], "75,000 tokens each: two per batch")

            var small = client
            small.maximumAnswerBytes = 16
            server.answer("/v1/embeddings", with: answer(0..<1))
            let tooLarge = await failure { _ = try await small.embed(["a"], model: "text-embedding-3-small", dimensions: nil) }
            #expect(tooLarge?.kind == .request)
        }
    }
}
