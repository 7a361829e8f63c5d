import Foundation
import KBHTTPClient

/// The wire format a provider speaks.
public enum ProviderAPI: String, Sendable, Codable, CaseIterable {
    /// `POST {base}/chat/completions` (OpenAI, Groq, OpenRouter, llama.cpp, vLLM, LM Studio).
    case openAI = "openai"
    /// `POST {base}/v1/messages` (Anthropic Messages).
    case anthropic
    /// `POST {base}/v1beta/models/{model}:generateContent` / `:streamGenerateContent?alt=sse`.
    case gemini
    /// `POST {base}/api/chat` (NDJSON when streaming), `/api/embed`.
    case ollama
}

/// Where and how to call one provider.
public struct ProviderEndpoint: Sendable {
    public var api: ProviderAPI
    /// e.g. `https://api.openai.com/v1`, `https://api.anthropic.com`, `http://127.0.0.1:11434`.
    public var baseURL: String
    /// nil for servers that need none (local ones).
    public var apiKey: String?
    public var timeouts: HTTPTimeouts
    /// How a request with a JSON Schema asks for it (nil: the API's own way, `.defaultFor`).
    public var structuredOutput: StructuredOutput

    public init(api: ProviderAPI, baseURL: String, apiKey: String?, timeouts: HTTPTimeouts = HTTPTimeouts(), structuredOutput: StructuredOutput? = nil, local: Bool = false) {
        self.api = api
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.timeouts = timeouts
        self.structuredOutput = structuredOutput ?? .defaultFor(api: api, local: local)
    }

    /// How a provider is asked for an answer that follows a JSON Schema (providers file:
    /// `structured_output`). Whatever the provider does, the gateway checks the answer.
    public enum StructuredOutput: String, Sendable, Codable, CaseIterable {
        /// The API's own schema-constrained output: OpenAI's `response_format: {"type":
        /// "json_schema", "json_schema": {name, schema, strict}}`, Anthropic's forced tool
        /// (`tools: [{name, description, input_schema}]`, `tool_choice: {"type": "tool", name}`,
        /// the `tool_use` block's `input` read back as the answer), Gemini's
        /// `generationConfig.responseMimeType: "application/json"` with `responseJsonSchema`,
        /// Ollama's `format: <schema>`.
        case native
        /// OpenAI's API as llama.cpp's servers take it: `response_format: {"type":
        /// "json_object", "schema": <schema>}` (llama-cpp-python turns the schema into a grammar
        /// that constrains the model's tokens; it refuses `json_schema`).
        case jsonObjectSchema = "json_object_schema"
        /// OpenAI's API JSON mode without a schema (`{"type": "json_object"}`), the schema in a
        /// system message: for servers whose models have no structured outputs (Groq's Llama 3.1).
        case jsonObject = "json_object"
        /// Nothing but the schema in a system message.
        case prompt

        /// `json_object_schema` for a local OpenAI-API server (llama.cpp's), else `native`.
        public static func defaultFor(api: ProviderAPI, local: Bool) -> StructuredOutput {
            api == .openAI && local ? .jsonObjectSchema : .native
        }
    }
}

/// A provider's wire format: the request it takes and the answers and streams it gives.
/// Pure functions over bytes, so each format is tested on the exact bytes providers send.
public struct ProviderCodec: Sendable {
    public let endpoint: ProviderEndpoint

    public init(endpoint: ProviderEndpoint) { self.endpoint = endpoint }

    // MARK: Requests

    /// The HTTP request for a chat completion.
    public func request(_ chat: ChatRequest, stream: Bool) throws -> HTTPRequest {
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json")]
        var json = JSONWriter(capacity: 128 + chat.messages.reduce(0) { $0 + $1.content.utf8.count + 32 })
        let url: String
        func messages(_ json: inout JSONWriter, _ list: [ChatMessage]) {
            json.array { json in
                for message in list {
                    json.object { json in
                        json.field("role") { $0.string(message.role) }
                        json.field("content") { $0.string(message.content) }
                    }
                }
            }
        }
        let mode = endpoint.structuredOutput
        var chat = chat
        if let schema = chat.schema, stream {
            throw ProviderFailure(.request, "structured output (json_schema \(schema.name)) is for whole completions only, not streams")
        }
        if let schema = chat.schema, mode == .jsonObject || mode == .prompt {
            // The provider is not given the schema any other way: the model is told it.
            let index = chat.messages.lastIndex { $0.role == "system" }.map { $0 + 1 } ?? 0
            chat.messages.insert(ChatMessage(role: "system", content: schema.instruction), at: index)
        }
        let system = chat.messages.filter { $0.role == "system" }.map(\.content)
        let conversation = chat.messages.filter { $0.role != "system" }
        switch endpoint.api {
        case .openAI:
            url = endpoint.baseURL + "/chat/completions"
            if let key = endpoint.apiKey { headers.append(("Authorization", "Bearer \(key)")) }
            json.object { json in
                json.field("model") { $0.string(chat.model) }
                json.field("messages") { messages(&$0, chat.messages) }
                if let maxTokens = chat.maxTokens { json.field("max_tokens") { $0.number(maxTokens) } }
                if let temperature = chat.temperature { json.field("temperature") { $0.number(temperature) } }
                if let schema = chat.schema, mode != .prompt {
                    json.field("response_format") {
                        $0.object { json in
                            switch mode {
                            case .native:
                                json.field("type") { $0.string("json_schema") }
                                json.field("json_schema") {
                                    $0.object { json in
                                        json.field("name") { $0.string(schema.name) }
                                        json.field("schema") { $0.raw(schema.text) }
                                        // Strict mode refuses schemas outside its subset: asked only when the schema fits it.
                                        json.field("strict") { $0.bool(schema.schema.fitsOpenAIStrictMode) }
                                    }
                                }
                            case .jsonObjectSchema:
                                json.field("type") { $0.string("json_object") }
                                json.field("schema") { $0.raw(schema.text) }
                            case .jsonObject, .prompt:
                                json.field("type") { $0.string("json_object") }
                            }
                        }
                    }
                }
                if stream {
                    json.field("stream") { $0.bool(true) }
                    json.field("stream_options") { $0.object { $0.field("include_usage") { $0.bool(true) } } }
                }
            }
        case .anthropic:
            url = endpoint.baseURL + "/v1/messages"
            if let key = endpoint.apiKey { headers.append(("x-api-key", key)) }
            headers.append(("anthropic-version", "2023-06-01"))
            json.object { json in
                json.field("model") { $0.string(chat.model) }
                json.field("max_tokens") { $0.number(chat.maxTokens ?? 1024) }
                if !system.isEmpty { json.field("system") { $0.string(system.joined(separator: "\n\n")) } }
                json.field("messages") { messages(&$0, conversation) }
                if let temperature = chat.temperature { json.field("temperature") { $0.number(temperature) } }
                if let schema = chat.schema, mode == .native {
                    // Anthropic's structured output: one tool whose input is the answer, forced.
                    json.field("tools") {
                        $0.array {
                            $0.object { json in
                                json.field("name") { $0.string(schema.name) }
                                json.field("description") { $0.string("Give the answer as this tool's input, following its schema.") }
                                json.field("input_schema") { $0.raw(schema.text) }
                            }
                        }
                    }
                    json.field("tool_choice") {
                        $0.object { json in
                            json.field("type") { $0.string("tool") }
                            json.field("name") { $0.string(schema.name) }
                        }
                    }
                }
                if stream { json.field("stream") { $0.bool(true) } }
            }
        case .gemini:
            let model = chat.model.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? chat.model
            url = endpoint.baseURL + "/v1beta/models/\(model)" + (stream ? ":streamGenerateContent?alt=sse" : ":generateContent")
            if let key = endpoint.apiKey { headers.append(("x-goog-api-key", key)) }
            func parts(_ json: inout JSONWriter, _ text: String) {
                json.array { $0.object { $0.field("text") { $0.string(text) } } }
            }
            json.object { json in
                json.field("contents") {
                    $0.array { json in
                        for message in conversation {
                            json.object { json in
                                json.field("role") { $0.string(message.role == "assistant" ? "model" : "user") }
                                json.field("parts") { parts(&$0, message.content) }
                            }
                        }
                    }
                }
                if !system.isEmpty { json.field("systemInstruction") { $0.object { $0.field("parts") { parts(&$0, system.joined(separator: "\n\n")) } } } }
                let schema = mode == .native ? chat.schema : nil
                if chat.maxTokens != nil || chat.temperature != nil || schema != nil {
                    json.field("generationConfig") {
                        $0.object { json in
                            if let maxTokens = chat.maxTokens { json.field("maxOutputTokens") { $0.number(maxTokens) } }
                            if let temperature = chat.temperature { json.field("temperature") { $0.number(temperature) } }
                            if let schema {
                                // responseJsonSchema takes JSON Schema as it is (responseSchema is OpenAPI's subset).
                                json.field("responseMimeType") { $0.string("application/json") }
                                json.field("responseJsonSchema") { $0.raw(schema.text) }
                            }
                        }
                    }
                }
            }
        case .ollama:
            url = endpoint.baseURL + "/api/chat"
            if let key = endpoint.apiKey { headers.append(("Authorization", "Bearer \(key)")) }
            json.object { json in
                json.field("model") { $0.string(chat.model) }
                json.field("messages") { messages(&$0, chat.messages) }
                json.field("stream") { $0.bool(stream) }
                if let schema = chat.schema, mode == .native { json.field("format") { $0.raw(schema.text) } }
                if chat.maxTokens != nil || chat.temperature != nil {
                    json.field("options") {
                        $0.object { json in
                            if let maxTokens = chat.maxTokens { json.field("num_predict") { $0.number(maxTokens) } }
                            if let temperature = chat.temperature { json.field("temperature") { $0.number(temperature) } }
                        }
                    }
                }
            }
        }
        return HTTPRequest(method: "POST", url: url, headers: headers, body: json.bytes, timeouts: endpoint.timeouts)
    }

    // MARK: Whole answers

    /// A successful (2xx) non-streamed answer; `schema`: the one the request asked for (an
    /// Anthropic answer to it is its forced tool's input).
    public func result(_ body: [UInt8], schema: OutputSchema? = nil) throws -> ChatResult {
        if endpoint.api == .openAI, let answer = OpenAIChatAnswer.decode(body), let choice = answer.choices?.first, let message = choice.message {
            // The hot path (every local server speaks it): typed, without a dictionary tree.
            return ChatResult(content: message.content ?? "", finishReason: choice.finish_reason ?? "stop", usage: answer.usage?.tokens, model: answer.model ?? "")
        }
        let object = try Self.object(body)
        switch endpoint.api {
        case .openAI:
            guard let choice = (object["choices"] as? [[String: Any]])?.first, let message = choice["message"] as? [String: Any] else {
                throw Self.malformed("no choices[0].message")
            }
            let usage = (object["usage"] as? [String: Any]).map { TokenUsage(inputTokens: Self.int($0["prompt_tokens"]), outputTokens: Self.int($0["completion_tokens"])) }
            return ChatResult(content: message["content"] as? String ?? "", finishReason: choice["finish_reason"] as? String ?? "stop", usage: usage, model: object["model"] as? String ?? "")
        case .anthropic:
            guard let content = object["content"] as? [[String: Any]] else { throw Self.malformed("no content") }
            let usage = (object["usage"] as? [String: Any]).map { TokenUsage(inputTokens: Self.int($0["input_tokens"]), outputTokens: Self.int($0["output_tokens"])) }
            if let schema, let tool = content.first(where: { $0["type"] as? String == "tool_use" && $0["name"] as? String == schema.name }), let input = tool["input"] {
                // The forced tool's input is the answer (the gateway's own call, not a tool the caller runs).
                let data = (try? JSONSerialization.data(withJSONObject: input, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
                let finish = object["stop_reason"] as? String == "tool_use" ? "stop" : Self.anthropicFinish(object["stop_reason"] as? String)
                return ChatResult(content: String(decoding: data, as: UTF8.self), finishReason: finish, usage: usage, model: object["model"] as? String ?? "")
            }
            let text = content.filter { $0["type"] as? String == "text" }.compactMap { $0["text"] as? String }.joined()
            return ChatResult(content: text, finishReason: Self.anthropicFinish(object["stop_reason"] as? String), usage: usage, model: object["model"] as? String ?? "")
        case .gemini:
            let (text, finish) = try Self.geminiCandidate(object)
            guard let finish else { throw Self.malformed("no candidates[0].finishReason") }
            return ChatResult(content: text, finishReason: finish, usage: Self.geminiUsage(object), model: object["modelVersion"] as? String ?? "")
        case .ollama:
            guard let message = object["message"] as? [String: Any] else { throw Self.malformed("no message") }
            return ChatResult(
                content: message["content"] as? String ?? "", finishReason: Self.ollamaFinish(object["done_reason"] as? String),
                usage: Self.ollamaUsage(object), model: object["model"] as? String ?? ""
            )
        }
    }

    // MARK: Streams

    /// The events of a successful (2xx) streamed answer. The sequence throws a `transient`
    /// failure when the stream ends before the provider's end marker, and the provider's failure
    /// when it sends an error inside the stream. Parsed as the reader pulls (no task between).
    public func events(_ body: HTTPBody) -> ProviderEvents {
        ProviderEvents(body: body, api: endpoint.api)
    }

    /// Turns a provider's stream into events; `ended` once its end marker arrived.
    struct StreamParser {
        let api: ProviderAPI
        var ended = false
        var finishReason: String?
        var inputTokens = 0

        var endMarker: String {
            switch api {
            case .openAI: "data: [DONE]"
            case .anthropic: "event: message_stop"
            case .gemini: "a candidate with finishReason"
            case .ollama: "a line with \"done\": true"
            }
        }

        mutating func sse(_ event: ServerSentEvent) throws -> [ChatStreamEvent] {
            switch api {
            case .openAI:
                if event.data == "[DONE]" {
                    ended = true
                    return [.finished(reason: finishReason ?? "stop")]
                }
                if let chunk = OpenAIChatAnswer.decode(event.data.utf8), !chunk.error {
                    var events: [ChatStreamEvent] = []
                    if let choice = chunk.choices?.first {
                        if let text = choice.delta?.content, !text.isEmpty { events.append(.text(text)) }
                        if let reason = choice.finish_reason { finishReason = reason }
                    }
                    if let usage = chunk.usage?.tokens { events.append(.usage(usage)) }
                    return events
                }
                let object = try ProviderCodec.object(Array(event.data.utf8))
                if object["error"] != nil { throw ProviderCodec.streamError(object) }
                var events: [ChatStreamEvent] = []
                if let choice = (object["choices"] as? [[String: Any]])?.first {
                    if let text = (choice["delta"] as? [String: Any])?["content"] as? String, !text.isEmpty { events.append(.text(text)) }
                    if let reason = choice["finish_reason"] as? String { finishReason = reason }
                }
                if let usage = object["usage"] as? [String: Any] {
                    events.append(.usage(TokenUsage(inputTokens: ProviderCodec.int(usage["prompt_tokens"]), outputTokens: ProviderCodec.int(usage["completion_tokens"]))))
                }
                return events
            case .anthropic:
                let object = try ProviderCodec.object(Array(event.data.utf8))
                switch object["type"] as? String ?? event.event {
                case "message_start":
                    let usage = (object["message"] as? [String: Any])?["usage"] as? [String: Any]
                    inputTokens = ProviderCodec.int(usage?["input_tokens"])
                    return [.usage(TokenUsage(inputTokens: inputTokens, outputTokens: ProviderCodec.int(usage?["output_tokens"])))]
                case "content_block_delta":
                    let delta = object["delta"] as? [String: Any]
                    if delta?["type"] as? String == "text_delta", let text = delta?["text"] as? String, !text.isEmpty { return [.text(text)] }
                    return []
                case "message_delta":
                    if let reason = (object["delta"] as? [String: Any])?["stop_reason"] as? String { finishReason = ProviderCodec.anthropicFinish(reason) }
                    guard let usage = object["usage"] as? [String: Any] else { return [] }
                    // Cumulative: the latest replaces what came before.
                    if usage["input_tokens"] != nil { inputTokens = ProviderCodec.int(usage["input_tokens"]) }
                    return [.usage(TokenUsage(inputTokens: inputTokens, outputTokens: ProviderCodec.int(usage["output_tokens"])))]
                case "message_stop":
                    ended = true
                    return [.finished(reason: finishReason ?? "stop")]
                case "error":
                    throw ProviderCodec.streamError(object)
                default:
                    return []  // ping, content_block_start / stop
                }
            case .gemini:
                let object = try ProviderCodec.object(Array(event.data.utf8))
                if object["error"] != nil { throw ProviderCodec.streamError(object) }
                if let blocked = (object["promptFeedback"] as? [String: Any])?["blockReason"] as? String {
                    throw ProviderFailure(.request, "the prompt was blocked: \(blocked)")
                }
                let (text, finish) = try ProviderCodec.geminiCandidate(object, allowEmpty: true)
                var events: [ChatStreamEvent] = text.isEmpty ? [] : [.text(text)]
                if let usage = ProviderCodec.geminiUsage(object) { events.append(.usage(usage)) }
                if let finish {
                    ended = true
                    events.append(.finished(reason: finish))
                }
                return events
            case .ollama:
                return []
            }
        }

        mutating func ndjson(_ line: [UInt8]) throws -> [ChatStreamEvent] {
            let object = try ProviderCodec.object(line)
            if let error = object["error"] as? String { throw ProviderFailure(.transient, error) }
            var events: [ChatStreamEvent] = []
            if let text = (object["message"] as? [String: Any])?["content"] as? String, !text.isEmpty { events.append(.text(text)) }
            if object["done"] as? Bool == true {
                if let usage = ProviderCodec.ollamaUsage(object) { events.append(.usage(usage)) }
                ended = true
                events.append(.finished(reason: ProviderCodec.ollamaFinish(object["done_reason"] as? String)))
            }
            return events
        }
    }

    // MARK: Helpers

    static func object(_ bytes: [UInt8]) throws -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw malformed("the answer is not a JSON object: \(String(decoding: bytes.prefix(200), as: UTF8.self))")
        }
        return object
    }

    static func malformed(_ detail: String) -> ProviderFailure {
        ProviderFailure(.transient, "malformed answer: \(detail)")
    }

    static func streamError(_ object: [String: Any]) -> ProviderFailure {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        let message = ProviderFailure.errorMessage([UInt8](data)) ?? "an error event in the stream"
        let lowered = message.lowercased()
        if lowered.contains("insufficient_quota") || lowered.contains("per day") { return ProviderFailure(.exhausted, message) }
        if lowered.contains("invalid_request") || lowered.contains("authentication") || lowered.contains("permission") {
            return ProviderFailure(.request, message)
        }
        return ProviderFailure(.transient, message)  // overloaded_error, api_error, server errors
    }

    static func int(_ value: Any?) -> Int {
        switch value {
        case let value as Int: value
        case let value as Double: value.isFinite ? Int(max(-1e15, min(1e15, value))) : 0
        case let value as NSNumber: value.intValue
        default: 0
        }
    }

    static func anthropicFinish(_ reason: String?) -> String {
        switch reason {
        case "end_turn", "stop_sequence", nil: "stop"
        case "max_tokens": "length"
        case "tool_use": "tool_calls"
        case let other?: other
        }
    }

    static func ollamaFinish(_ reason: String?) -> String {
        reason == "length" ? "length" : "stop"
    }

    static func ollamaUsage(_ object: [String: Any]) -> TokenUsage? {
        guard object["prompt_eval_count"] != nil || object["eval_count"] != nil else { return nil }
        return TokenUsage(inputTokens: int(object["prompt_eval_count"]), outputTokens: int(object["eval_count"]))
    }

    static func geminiUsage(_ object: [String: Any]) -> TokenUsage? {
        guard let usage = object["usageMetadata"] as? [String: Any] else { return nil }
        return TokenUsage(inputTokens: int(usage["promptTokenCount"]), outputTokens: int(usage["candidatesTokenCount"]))
    }

    static func geminiCandidate(_ object: [String: Any], allowEmpty: Bool = false) throws -> (text: String, finish: String?) {
        guard let candidate = (object["candidates"] as? [[String: Any]])?.first else {
            if allowEmpty { return ("", nil) }
            let blocked = (object["promptFeedback"] as? [String: Any])?["blockReason"] as? String
            throw blocked.map { ProviderFailure(.request, "the prompt was blocked: \($0)") } ?? malformed("no candidates")
        }
        let parts = (candidate["content"] as? [String: Any])?["parts"] as? [[String: Any]] ?? []
        let text = parts.compactMap { $0["text"] as? String }.joined()
        let finish: String? = (candidate["finishReason"] as? String).map {
            switch $0 {
            case "STOP": "stop"
            case "MAX_TOKENS": "length"
            case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT": "content_filter"
            default: $0.lowercased()
            }
        }
        return (text, finish)
    }
}

/// An OpenAI chat answer or stream chunk, as far as the gateway reads it. Decoded typed (the hot
/// path); anything it cannot read this way (an unexpected type somewhere) goes the dictionary way.
struct OpenAIChatAnswer {
    struct Choice {
        var message: Message?
        var delta: Message?
        var finish_reason: String?
    }

    struct Message {
        var content: String?
    }

    struct Usage {
        var prompt_tokens: Int?
        var completion_tokens: Int?

        var tokens: TokenUsage { TokenUsage(inputTokens: prompt_tokens ?? 0, outputTokens: completion_tokens ?? 0) }
    }

    var choices: [Choice]?
    var usage: Usage?
    var model: String?
    /// Whether an `error` member is there (and not null).
    var error: Bool = false

    /// The answer or chunk, read from `JSONValue.parse(bytes:)`'s tree; nil when it is not JSON
    /// or a member has another type than OpenAI gives it (content as parts, a fractional count):
    /// the caller then reads it the lenient dictionary way.
    static func decode<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> OpenAIChatAnswer? {
        guard case .object(let top)? = JSONValue.parse(bytes: bytes) else { return nil }
        var answer = OpenAIChatAnswer()
        switch top["choices"] {
        case nil, .null?: break
        case .array(let items)?:
            var choices: [Choice] = []
            choices.reserveCapacity(items.count)
            for item in items {
                guard case .object(let fields) = item,
                      let message = readMessage(fields["message"]), let delta = readMessage(fields["delta"]),
                      let reason = optionalString(fields["finish_reason"]) else { return nil }
                choices.append(Choice(message: message, delta: delta, finish_reason: reason))
            }
            answer.choices = choices
        default: return nil
        }
        switch top["usage"] {
        case nil, .null?: break
        case .object(let fields)?:
            guard let prompt = optionalInt(fields["prompt_tokens"]), let completion = optionalInt(fields["completion_tokens"]) else { return nil }
            answer.usage = Usage(prompt_tokens: prompt, completion_tokens: completion)
        default: return nil
        }
        guard let model = optionalString(top["model"]) else { return nil }
        answer.model = model
        if let error = top["error"], error != .null { answer.error = true }
        return answer
    }

    /// An optional member: `.some(nil)` when absent or null, nil when of another type.
    private static func optionalString(_ value: JSONValue?) -> String?? {
        switch value {
        case nil, .null?: .some(nil)
        case .string(let text)?: .some(text)
        default: nil
        }
    }

    private static func optionalInt(_ value: JSONValue?) -> Int?? {
        switch value {
        case nil, .null?: return .some(nil)
        case .number(let number)? where number == number.rounded() && abs(number) < 1e15: return .some(Int(number))
        default: return nil
        }
    }

    private static func readMessage(_ value: JSONValue?) -> Message?? {
        switch value {
        case nil, .null?: return .some(nil)
        case .object(let fields)?:
            guard let content = optionalString(fields["content"]) else { return nil }
            return .some(Message(content: content))
        default: return nil
        }
    }
}
