import Foundation

/// The OpenAI front's request body and answers as typed JSON: read with `JSONValue.parse(bytes:)`
/// into structs and written with `JSONWriter`, no `[String: Any]` tree (the gateway's hot path).
extension OpenAICompatibleFront {
    /// `POST /v1/chat/completions`' body, as far as the gateway reads it (other fields are
    /// ignored), read from `JSONValue.parse(bytes:)`'s tree. A member of the wrong type throws
    /// the error naming it as OpenAI names parameters (`messages[0].content`); null is absent.
    struct ChatBody {
        struct Message {
            var role: String?
            var content: Content?
        }

        /// A message's content: a string, or an array of parts (only text parts are accepted).
        enum Content {
            case text(String)
            case parts([Part])

            struct Part {
                var type: String?
                var text: String?
            }
        }

        /// `{"type": "json_schema", "json_schema": {name, schema, strict}}`, `{"type": "json_object"}` or `{"type": "text"}`.
        struct ResponseFormat {
            struct Schema {
                var name: String?
                var schema: JSONValue?
                var strict: Bool?
            }

            var type: String?
            var json_schema: Schema?
        }

        var messages: [Message]?
        var model: String?
        var response_format: ResponseFormat?
        /// Numbers, checked to be positive integers after decoding (1.5 is refused by name).
        var max_tokens: Double?
        var max_completion_tokens: Double?
        var temperature: Double?
        var stream: Bool?
        var include_usage: Bool?
        /// `metadata.operation` and `.project`; values of other types are ignored.
        var operation: String?
        var project: String?

        /// A step of a member's path: an object key or an array index.
        enum Step { case key(String), index(Int) }

        init(_ top: [String: JSONValue]) throws {
            if let items = try Self.member(top["messages"], [.key("messages")], \.arrayValue) {
                var messages: [Message] = []
                messages.reserveCapacity(items.count)
                for (index, item) in items.enumerated() {
                    let path: [Step] = [.key("messages"), .index(index)]
                    guard case .object(let fields) = item else { throw requestError(at: path) }
                    var message = Message(role: try Self.member(fields["role"], path + [.key("role")], \.stringValue))
                    switch fields["content"] {
                    case nil, .null?: break
                    case .string(let text)?: message.content = .text(text)
                    case .array(let items)?:
                        var parts: [Content.Part] = []
                        for item in items {
                            guard case .object(let part) = item, let type = Self.optional(part["type"], \.stringValue), let text = Self.optional(part["text"], \.stringValue) else {
                                throw requestError(at: path + [.key("content")])
                            }
                            parts.append(Content.Part(type: type, text: text))
                        }
                        message.content = .parts(parts)
                    default: throw requestError(at: path + [.key("content")])
                    }
                    messages.append(message)
                }
                self.messages = messages
            }
            model = try Self.member(top["model"], [.key("model")], \.stringValue)
            if let format = try Self.member(top["response_format"], [.key("response_format")], \.objectValue) {
                let path: [Step] = [.key("response_format")]
                var responseFormat = ResponseFormat(type: try Self.member(format["type"], path + [.key("type")], \.stringValue))
                if let schema = try Self.member(format["json_schema"], path + [.key("json_schema")], \.objectValue) {
                    let path = path + [.key("json_schema")]
                    responseFormat.json_schema = ResponseFormat.Schema(
                        name: try Self.member(schema["name"], path + [.key("name")], \.stringValue),
                        schema: schema["schema"] == .null ? nil : schema["schema"],
                        strict: try Self.member(schema["strict"], path + [.key("strict")], \.boolValue)
                    )
                }
                response_format = responseFormat
            }
            max_tokens = try Self.member(top["max_tokens"], [.key("max_tokens")], \.numberValue)
            max_completion_tokens = try Self.member(top["max_completion_tokens"], [.key("max_completion_tokens")], \.numberValue)
            temperature = try Self.member(top["temperature"], [.key("temperature")], \.numberValue)
            stream = try Self.member(top["stream"], [.key("stream")], \.boolValue)
            if let options = try Self.member(top["stream_options"], [.key("stream_options")], \.objectValue) {
                include_usage = try Self.member(options["include_usage"], [.key("stream_options"), .key("include_usage")], \.boolValue)
            }
            if let metadata = try Self.member(top["metadata"], [.key("metadata")], \.objectValue) {
                operation = Self.optional(metadata["operation"], \.stringValue) ?? nil
                project = Self.optional(metadata["project"], \.stringValue) ?? nil
            }
        }

        /// An optional member of one type: nil when absent or null, the type error at `path` otherwise.
        static func member<T>(_ value: JSONValue?, _ path: [Step], _ kind: KeyPath<JSONValue, T?>) throws -> T? {
            guard let value, value != .null else { return nil }
            guard let typed = value[keyPath: kind] else { throw requestError(at: path) }
            return typed
        }

        /// `.some(nil)` when absent or null, `.some(value)` when of the type, nil otherwise.
        static func optional<T>(_ value: JSONValue?, _ kind: KeyPath<JSONValue, T?>) -> T?? {
            guard let value, value != .null else { return .some(nil) }
            return value[keyPath: kind].map { .some($0) } ?? nil
        }
    }

    /// The request body as a gateway request; the error names the parameter.
    static func parse(_ data: Data) throws -> (chat: GatewayChat, stream: Bool, includeUsage: Bool) {
        // The schema's text is kept as the caller wrote it: its property order is the order the
        // model is asked to write them in.
        guard let (document, schemaText) = JSONValue.parse(bytes: data, keepingTextAt: ["response_format", "json_schema", "schema"]),
              case .object(let top) = document else {
            throw RequestError(param: nil, message: "the body must be a JSON object")
        }
        let body = try ChatBody(top)
        guard let messages = body.messages, !messages.isEmpty else {
            throw RequestError(param: "messages", message: "'messages' must be a non-empty array of {role, content}")
        }
        var chatMessages: [ChatMessage] = []
        chatMessages.reserveCapacity(messages.count)
        for (index, message) in messages.enumerated() {
            let role = message.role ?? ""
            guard ["system", "developer", "user", "assistant"].contains(role) else {
                throw RequestError(param: "messages[\(index)].role", message: "role must be system, developer, user or assistant (found \(role.debugDescription))")
            }
            let content: String
            switch message.content {
            case .text(let text)?:
                content = text
            case .parts(let parts)?:
                guard parts.allSatisfy({ $0.type == "text" }) else {
                    throw RequestError(param: "messages[\(index)].content", message: "only text content parts are supported")
                }
                content = parts.compactMap(\.text).joined()
            case nil:
                throw RequestError(param: "messages[\(index)].content", message: "content must be a string or an array of text parts")
            }
            chatMessages.append(ChatMessage(role: role == "developer" ? "system" : role, content: content))
        }
        var maxTokens: Int?
        if let value = body.max_completion_tokens ?? body.max_tokens {
            guard value >= 1, value <= 1e9, value == value.rounded() else { throw RequestError(param: "max_tokens", message: "max_tokens must be a positive integer") }
            maxTokens = Int(value)
        }
        if let temperature = body.temperature, !(0...2).contains(temperature) {
            throw RequestError(param: "temperature", message: "temperature must be a number between 0 and 2")
        }
        let model = body.model ?? ""
        var schema: OutputSchema?
        if let format = body.response_format {
            switch format.type {
            case "text"?, nil:
                break
            case "json_object"?:
                // OpenAI's JSON mode: any JSON object, asked and checked as the schema {"type": "object"}.
                schema = try OutputSchema(text: #"{"type":"object"}"#, name: "json_object")
            case "json_schema"?:
                guard let value = format.json_schema?.schema else {
                    throw RequestError(param: "response_format.json_schema.schema", message: "response_format of type json_schema needs json_schema.schema (a JSON Schema object)")
                }
                // Re-serialised only when it repeats a key (a provider keeping the first of them
                // would enforce another schema than the gateway checks with).
                let text = schemaText ?? value.text
                do {
                    schema = try OutputSchema(text: text, name: format.json_schema?.name ?? "")
                } catch let invalid as OutputSchema.Invalid {
                    let param = invalid.field == "json_schema_name" ? "response_format.json_schema.name" : "response_format.json_schema.schema"
                    throw RequestError(param: param, message: "\(param): \(invalid.message)")
                }
            case let other?:
                throw RequestError(param: "response_format.type", message: "response_format.type must be text, json_object or json_schema (found \(other.debugDescription))")
            }
            if schema != nil, body.stream == true {
                throw RequestError(param: "response_format", message: "structured output (response_format json_schema or json_object) is for whole completions only: drop stream or response_format")
            }
        }
        var chat = GatewayChat(
            messages: chatMessages, model: model == "auto" ? "" : model, maxTokens: maxTokens, temperature: body.temperature,
            operation: body.operation ?? "chat", project: body.project ?? ""
        )
        chat.schema = schema
        return (chat, body.stream ?? false, body.include_usage ?? false)
    }

    /// A type error at `path`, named as OpenAI names parameters (`messages[0].content`).
    static func requestError(at path: [ChatBody.Step]) -> RequestError {
        var param = ""
        var names: [String] = []
        for step in path {
            switch step {
            case .index(let index): param += "[\(index)]"
            case .key(let name):
                param += (param.isEmpty ? "" : ".") + name
                names.append(name)
            }
        }
        switch names.first {
        case "max_tokens", "max_completion_tokens":
            return RequestError(param: "max_tokens", message: "max_tokens must be a positive integer")
        case "temperature":
            return RequestError(param: "temperature", message: "temperature must be a number between 0 and 2")
        case "messages" where path.count == 1:
            return RequestError(param: "messages", message: "'messages' must be a non-empty array of {role, content}")
        case "messages" where names.last == "content" && names.count == 2:
            return RequestError(param: param, message: "content must be a string or an array of text parts")
        default:
            return RequestError(param: param, message: "\(param) has the wrong type")
        }
    }

    // MARK: Answers

    /// OpenAI's `chat.completion` object.
    static func completionJSON(id: String, created: Int, model: String, content: String, finishReason: String, usage: TokenUsage) -> [UInt8] {
        var json = JSONWriter(capacity: 256 + content.utf8.count)
        json.object { json in
            json.field("id") { $0.string(id) }
            json.field("object") { $0.string("chat.completion") }
            json.field("created") { $0.number(created) }
            json.field("model") { $0.string(model) }
            json.field("choices") {
                $0.array { json in
                    json.object { json in
                        json.field("index") { $0.number(0) }
                        json.field("message") {
                            $0.object { json in
                                json.field("role") { $0.string("assistant") }
                                json.field("content") { $0.string(content) }
                            }
                        }
                        json.field("finish_reason") { $0.string(finishReason) }
                        json.field("logprobs") { $0.null() }
                    }
                }
            }
            json.field("usage") { usageJSON(&$0, usage) }
        }
        return json.bytes
    }

    /// One `chat.completion.chunk`: a delta (role on the first, content), a finish reason, or
    /// (`usage` set) the last chunk with `choices: []`.
    static func chunkJSON(id: String, created: Int, model: String, role: Bool, content: String?, finishReason: String?, usage: TokenUsage? = nil) -> [UInt8] {
        var json = JSONWriter(capacity: 192 + (content?.utf8.count ?? 0))
        json.object { json in
            json.field("id") { $0.string(id) }
            json.field("object") { $0.string("chat.completion.chunk") }
            json.field("created") { $0.number(created) }
            json.field("model") { $0.string(model) }
            json.field("choices") {
                $0.array { json in
                    guard usage == nil else { return }
                    json.object { json in
                        json.field("index") { $0.number(0) }
                        json.field("delta") {
                            $0.object { json in
                                if role { json.field("role") { $0.string("assistant") } }
                                if let content { json.field("content") { $0.string(content) } }
                            }
                        }
                        json.field("finish_reason") { $0.optional(finishReason) }
                        json.field("logprobs") { $0.null() }
                    }
                }
            }
            if let usage { json.field("usage") { usageJSON(&$0, usage) } }
        }
        return json.bytes
    }

    /// OpenAI's usage object, plus `estimated`: false when the numbers are the provider's own
    /// count, true when the provider reported none and they are the gateway's estimate
    /// (llama.cpp's servers send no usage in streams). OpenAI's clients keep unknown fields
    /// (`usage.model_extra` in the Python package).
    static func usageJSON(_ json: inout JSONWriter, _ usage: TokenUsage) {
        json.object { json in
            json.field("prompt_tokens") { $0.number(usage.inputTokens) }
            json.field("completion_tokens") { $0.number(usage.outputTokens) }
            json.field("total_tokens") { $0.number(usage.inputTokens + usage.outputTokens) }
            json.field("estimated") { $0.bool(usage.estimated) }
        }
    }

    /// OpenAI's error object.
    static func errorJSON(message: String, type: String, param: String?, code: String?) -> [UInt8] {
        var json = JSONWriter()
        json.object { json in
            json.field("error") {
                $0.object { json in
                    json.field("message") { $0.string(message) }
                    json.field("type") { $0.string(type) }
                    json.field("param") { $0.optional(param) }
                    json.field("code") { $0.optional(code) }
                }
            }
        }
        return json.bytes
    }
}
