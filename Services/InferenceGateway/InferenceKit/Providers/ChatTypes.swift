import Foundation
import KBHTTPClient

/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable, Codable {
    /// `system`, `user` or `assistant`.
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A chat completion as the gateway asks a provider for it.
public struct ChatRequest: Sendable, Equatable {
    public var messages: [ChatMessage]
    /// The provider's model name.
    public var model: String
    /// nil: the provider's default (Anthropic requires one: the adapter sends 1024).
    public var maxTokens: Int?
    /// nil: the provider's default.
    public var temperature: Double?
    /// Structured output: the JSON Schema the answer must follow (nil: free text).
    public var schema: OutputSchema?

    public init(messages: [ChatMessage], model: String, maxTokens: Int? = nil, temperature: Double? = nil, schema: OutputSchema? = nil) {
        self.messages = messages
        self.model = model
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.schema = schema
    }
}

/// Tokens a call used.
public struct TokenUsage: Sendable, Equatable {
    public var inputTokens: Int
    public var outputTokens: Int
    /// True when the provider did not report usage and the gateway estimated it.
    public var estimated: Bool

    public init(inputTokens: Int, outputTokens: Int, estimated: Bool = false) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.estimated = estimated
    }
}

/// A provider's whole answer.
public struct ChatResult: Sendable, Equatable {
    public var content: String
    /// Normalised: `stop`, `length`, `content_filter`, `tool_calls`, or the provider's own word.
    public var finishReason: String
    public var usage: TokenUsage?
    /// The model that answered, as the provider names it.
    public var model: String

    public init(content: String, finishReason: String, usage: TokenUsage?, model: String) {
        self.content = content
        self.finishReason = finishReason
        self.usage = usage
        self.model = model
    }
}

/// One event of a streamed answer.
public enum ChatStreamEvent: Sendable, Equatable {
    /// More text.
    case text(String)
    /// Usage so far (Anthropic's is cumulative: the last one counts).
    case usage(TokenUsage)
    /// The provider's end marker arrived, with its finish reason. A stream that ends without it
    /// was cut (`ProviderFailure.Kind.transient`).
    case finished(reason: String)
}

/// Why a provider call failed, classified as the provider means it.
public struct ProviderFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Try again later / elsewhere: 429, 5xx, 529, connection errors, timeouts, cut streams.
        /// Counts toward the circuit breaker.
        case transient
        /// The request is wrong (400, 404 model, 422, context too long): no retry, no breaker.
        case request
        /// The provider's configuration is wrong (401, 403: key missing or refused): no retry, no breaker.
        case configuration
        /// Quota or spend exhausted: the provider is out until its reset, no re-probing.
        case exhausted
        /// The caller cancelled.
        case cancelled
    }

    public var kind: Kind
    /// The HTTP status, when the provider answered.
    public var status: Int?
    /// What the provider said (keys redacted).
    public var message: String
    /// How long the provider asked to wait (`retry-after`, `retry-after-ms`), in milliseconds.
    public var retryAfterMs: Int64?

    public init(_ kind: Kind, status: Int? = nil, _ message: String, retryAfterMs: Int64? = nil) {
        self.kind = kind
        self.status = status
        self.message = message
        self.retryAfterMs = retryAfterMs
    }

    public var description: String {
        "\(kind.rawValue)\(status.map { " (HTTP \($0))" } ?? ""): \(message)"
    }

    /// Whether another attempt (this provider later, or the next one) may succeed.
    public var isRetryable: Bool { kind == .transient }

    /// A transport failure of the HTTP client, classified.
    public static func transport(_ error: HTTPClientError) -> ProviderFailure {
        switch error.kind {
        case .cancelled: ProviderFailure(.cancelled, error.message)
        case .invalidRequest: ProviderFailure(.configuration, error.message)
        case .connect, .timedOut, .tooSlow, .connectionLost, .tooLarge, .shutDown, .other: ProviderFailure(.transient, "\(error.kind.rawValue): \(error.message)")
        }
    }

    /// An HTTP error answer, classified by status and the provider's error body.
    public static func answer(status: Int, head: HTTPResponseHead, body: [UInt8], now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) -> ProviderFailure {
        let message = errorMessage(body) ?? "HTTP \(status)"
        let text = String(decoding: body.prefix(64 << 10), as: UTF8.self).lowercased()
        let retryAfter = retryAfterMs(head, now: now)
        let quotaWords = ["insufficient_quota", "enforced_spend_limit_reached", "billing_hard_limit", "credit balance is too low", "insufficient credits", "perday", "per day"]
        if status == 402 || ((status == 429 || status == 403 || status == 400) && quotaWords.contains(where: text.contains)) {
            return ProviderFailure(.exhausted, status: status, message, retryAfterMs: retryAfter)
        }
        // Gemini answers a refused key with 400 INVALID_ARGUMENT / API_KEY_INVALID: configuration, not the request.
        if status == 400, text.contains("api_key_invalid") || text.contains("api key not valid") {
            return ProviderFailure(.configuration, status: status, message)
        }
        switch status {
        case 429, 408, 409, 425, 500...599:
            return ProviderFailure(.transient, status: status, message, retryAfterMs: retryAfter)
        case 401, 403:
            return ProviderFailure(.configuration, status: status, message)
        default:
            return ProviderFailure(.request, status: status, message)
        }
    }

    /// The message of an error body in the shapes providers use: `{"error": {"message"}}`
    /// (OpenAI, Anthropic, Gemini, OpenRouter), `{"error": "text"}` (Ollama), `{"message"}`.
    static func errorMessage(_ body: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.prefix(1 << 20))) as? [String: Any] else {
            let text = String(decoding: body.prefix(500), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? nil : text
        }
        if let error = object["error"] as? [String: Any] {
            let message = error["message"] as? String ?? ""
            let code = (error["code"] as? String) ?? (error["type"] as? String) ?? (error["status"] as? String)
            return [code, message].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
        }
        if let error = object["error"] as? String { return error }
        return object["message"] as? String
    }

    /// `retry-after-ms`, or `retry-after` in seconds or as an HTTP date.
    static func retryAfterMs(_ head: HTTPResponseHead, now: Int64) -> Int64? {
        // At most a day: a provider's number must not overflow anything (1e400 is +inf).
        let day = 86_400_000.0
        if let value = head.header("retry-after-ms"), let ms = Double(value), ms.isFinite, ms >= 0 { return Int64(min(ms, day)) }
        guard let value = head.header("retry-after")?.trimmingCharacters(in: .whitespaces) else { return nil }
        if let seconds = Double(value), seconds.isFinite, seconds >= 0 { return Int64(min(seconds * 1000, day)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return min(Int64(day), max(0, Int64(date.timeIntervalSince1970 * 1000) - now))
    }
}

/// Removes secrets from text that may reach logs, errors or metrics.
public struct SecretRedactor: Sendable {
    let secrets: [String]

    public init(secrets: [String]) {
        self.secrets = secrets.filter { $0.count >= 8 }
    }

    public func redact(_ text: String) -> String {
        var text = text
        for secret in secrets {
            text = text.replacingOccurrences(of: secret, with: "[redacted]")
            // Providers echo a key's ends ("sk-abc...xyz"): drop any 8+ character piece of it.
            let prefix = String(secret.prefix(8)), suffix = String(secret.suffix(8))
            text = text.replacingOccurrences(of: prefix, with: "[redacted]").replacingOccurrences(of: suffix, with: "[redacted]")
        }
        return text
    }
}
