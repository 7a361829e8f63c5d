import Foundation
import KBHTTPClient
import Yams

/// The providers file (`KB_INFERENCE_PROVIDERS_FILE`, JSON or YAML): providers with their base
/// URLs, models, prices and breaker settings, and the routing strategies of the operations
/// guide's `provider-strategy.json`. What the file leaves out keeps the built-in defaults; API
/// keys never live in it — each provider names the environment variable that holds its key.
public struct ProvidersFile: Sendable, Equatable, Codable {
    /// One provider.
    public struct Provider: Sendable, Equatable, Codable {
        /// The wire format.
        public var api: ProviderAPI
        /// e.g. `https://api.groq.com/openai/v1`.
        public var baseURL: String
        /// The environment variable holding the API key (nil: the provider needs none).
        public var apiKeyEnv: String?
        /// A local server (free, never refused by the budget).
        public var local: Bool
        /// The models it serves; the first is its default.
        public var models: [String]
        /// The embedding models it serves (`Embed` and `/v1/embeddings` by model name, or
        /// `provider/model`); OpenAI's API (`/embeddings`) and Ollama's (`/api/embed`) only.
        public var embeddingModels: [String]
        /// Circuit-breaker settings (the guide's per-provider defaults when absent).
        public var circuitBreaker: CircuitBreaker.Settings?
        /// Per-request limits: connect, total, and silence.
        public var connectTimeoutMs: Int64?
        public var totalTimeoutMs: Int64?
        public var lowSpeedTimeSeconds: Int?
        /// How a request with a JSON Schema asks this provider for it (nil: the API's own way;
        /// `json_object_schema` for local OpenAI-API servers, llama.cpp's).
        public var structuredOutput: ProviderEndpoint.StructuredOutput?

        enum CodingKeys: String, CodingKey {
            case api, baseURL = "base_url", apiKeyEnv = "api_key_env", local, models, embeddingModels = "embedding_models"
            case circuitBreaker = "circuit_breaker", connectTimeoutMs = "connect_timeout_ms", totalTimeoutMs = "total_timeout_ms"
            case lowSpeedTimeSeconds = "low_speed_time_seconds", structuredOutput = "structured_output"
        }

        public init(api: ProviderAPI, baseURL: String, apiKeyEnv: String?, local: Bool = false, models: [String], embeddingModels: [String] = [], circuitBreaker: CircuitBreaker.Settings? = nil, structuredOutput: ProviderEndpoint.StructuredOutput? = nil) {
            self.api = api
            self.baseURL = baseURL
            self.apiKeyEnv = apiKeyEnv
            self.local = local
            self.models = models
            self.embeddingModels = embeddingModels
            self.circuitBreaker = circuitBreaker
            self.structuredOutput = structuredOutput
        }

        /// Where and how to call it, with `apiKey`.
        public func endpoint(apiKey: String?) -> ProviderEndpoint {
            ProviderEndpoint(api: api, baseURL: baseURL, apiKey: apiKey, timeouts: timeouts, structuredOutput: structuredOutput, local: local)
        }

        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            api = try container.decode(ProviderAPI.self, forKey: .api)
            baseURL = try container.decode(String.self, forKey: .baseURL)
            guard baseURL.hasPrefix("http://") || baseURL.hasPrefix("https://") else {
                throw DecodingError.dataCorruptedError(forKey: .baseURL, in: container, debugDescription: "must start with http:// or https:// (found \(baseURL.debugDescription))")
            }
            apiKeyEnv = try container.decodeIfPresent(String.self, forKey: .apiKeyEnv)
            local = try container.decodeIfPresent(Bool.self, forKey: .local) ?? false
            models = try container.decodeIfPresent([String].self, forKey: .models) ?? []
            embeddingModels = try container.decodeIfPresent([String].self, forKey: .embeddingModels) ?? []
            if !embeddingModels.isEmpty, api != .openAI, api != .ollama {
                throw DecodingError.dataCorruptedError(forKey: .embeddingModels, in: container, debugDescription: "embeddings are served over OpenAI's and Ollama's APIs only (this provider's api is \(api.rawValue))")
            }
            circuitBreaker = try container.decodeIfPresent(CircuitBreaker.Settings.self, forKey: .circuitBreaker)
            if let settings = circuitBreaker, settings.failureThreshold < 1 || settings.resetTimeoutMs < 1 || settings.halfOpenRequests < 1 {
                throw DecodingError.dataCorruptedError(forKey: .circuitBreaker, in: container, debugDescription: "failureThreshold, resetTimeout and halfOpenRequests must be at least 1")
            }
            connectTimeoutMs = try container.decodeIfPresent(Int64.self, forKey: .connectTimeoutMs)
            totalTimeoutMs = try container.decodeIfPresent(Int64.self, forKey: .totalTimeoutMs)
            lowSpeedTimeSeconds = try container.decodeIfPresent(Int.self, forKey: .lowSpeedTimeSeconds)
            if let raw = try container.decodeIfPresent(String.self, forKey: .structuredOutput) {
                guard let mode = ProviderEndpoint.StructuredOutput(rawValue: raw) else {
                    throw DecodingError.dataCorruptedError(forKey: .structuredOutput, in: container, debugDescription: "must be one of \(ProviderEndpoint.StructuredOutput.allCases.map(\.rawValue).joined(separator: ", ")) (found \(raw.debugDescription))")
                }
                guard api == .openAI || mode == .native || mode == .prompt else {
                    throw DecodingError.dataCorruptedError(forKey: .structuredOutput, in: container, debugDescription: "\(raw) is a way of OpenAI's API; this provider's api is \(api.rawValue) (native or prompt)")
                }
                structuredOutput = mode
            }
        }

        /// The HTTP time limits.
        public var timeouts: HTTPTimeouts {
            var timeouts = HTTPTimeouts()
            if let connectTimeoutMs { timeouts.connect = .milliseconds(connectTimeoutMs) }
            if let totalTimeoutMs { timeouts.total = .milliseconds(totalTimeoutMs) }
            if let lowSpeedTimeSeconds { timeouts.lowSpeedTime = .seconds(lowSpeedTimeSeconds) }
            return timeouts
        }
    }

    /// A routing strategy: providers in the order they are tried.
    public struct Strategy: Sendable, Equatable, Codable {
        public var priority: [String]
        /// Order by measured latency (moving average) instead of `priority`.
        public var byLatency: Bool?
        /// Hedged requests: ask the second provider too and take the first answer (the other
        /// call is cancelled and its reservation released). Whole completions only; streams
        /// are never hedged.
        public var parallelRequests: Bool?
        /// With `parallelRequests`: ask the second provider only when the first has not answered
        /// after this many milliseconds (unset or 0: both at once, as the guide's strategy does).
        public var hedgeAfterMs: Int?

        public init(priority: [String], byLatency: Bool? = nil, parallelRequests: Bool? = nil, hedgeAfterMs: Int? = nil) {
            self.priority = priority
            self.byLatency = byLatency
            self.parallelRequests = parallelRequests
            self.hedgeAfterMs = hedgeAfterMs
        }
    }

    public var providers: [String: Provider]
    public var strategies: [String: Strategy]
    public var activeStrategy: String

    enum CodingKeys: String, CodingKey { case providers, strategies, activeStrategy }

    public init(providers: [String: Provider], strategies: [String: Strategy], activeStrategy: String) {
        self.providers = providers
        self.strategies = strategies
        self.activeStrategy = activeStrategy
    }

    /// The built-in providers and the guide's three strategies.
    public static let builtIn = ProvidersFile(
        providers: [
            // Groq's Llama models have JSON mode but no structured outputs.
            "groq": Provider(api: .openAI, baseURL: "https://api.groq.com/openai/v1", apiKeyEnv: "GROQ_API_KEY", models: ["llama-3.1-8b-instant", "llama-3.3-70b-versatile"], structuredOutput: .jsonObject),
            "openai": Provider(api: .openAI, baseURL: "https://api.openai.com/v1", apiKeyEnv: "OPENAI_API_KEY", models: ["gpt-4o-mini", "gpt-4o"], embeddingModels: ["text-embedding-3-small", "text-embedding-3-large"]),
            "openrouter": Provider(api: .openAI, baseURL: "https://openrouter.ai/api/v1", apiKeyEnv: "OPENROUTER_API_KEY", models: ["meta-llama/llama-3.1-8b-instruct"]),
            "anthropic": Provider(api: .anthropic, baseURL: "https://api.anthropic.com", apiKeyEnv: "ANTHROPIC_API_KEY", models: ["claude-3-5-haiku-latest", "claude-sonnet-4-5"]),
            "gemini": Provider(api: .gemini, baseURL: "https://generativelanguage.googleapis.com", apiKeyEnv: "GEMINI_API_KEY", models: ["gemini-2.0-flash"]),
            // llama.cpp's server (or vLLM, LM Studio) on this machine.
            "local": Provider(api: .openAI, baseURL: "http://127.0.0.1:8081/v1", apiKeyEnv: nil, local: true, models: ["local"]),
            "ollama": Provider(api: .ollama, baseURL: "http://127.0.0.1:11434", apiKeyEnv: nil, local: true, models: ["llama3.2"], embeddingModels: ["nomic-embed-text"]),
        ],
        strategies: [
            "cost-optimized": Strategy(priority: ["local", "ollama", "groq", "gemini", "openai", "anthropic", "openrouter"]),
            "latency-optimized": Strategy(priority: ["groq", "local", "ollama", "gemini", "openai", "anthropic", "openrouter"], byLatency: true, parallelRequests: false),
            "quality-optimized": Strategy(priority: ["anthropic", "openai", "groq", "local", "ollama"]),
        ],
        activeStrategy: "cost-optimized"
    )

    /// Reads a providers file (JSON, or YAML by its extension or when it is not JSON) laid over
    /// the built-in one; the error names the file and what is wrong.
    public static func load(path: String) throws -> ProvidersFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ProvidersFileError("cannot read the providers file \(path)")
        }
        return try parse(data, name: path)
    }

    /// Parses a providers file's bytes laid over the built-in one.
    public static func parse(_ data: Data, name: String) throws -> ProvidersFile {
        let overlay: Overlay
        do {
            let text = String(decoding: data, as: UTF8.self)
            let looksLikeJSON = text.drop { $0.isWhitespace }.first == "{"
            overlay = looksLikeJSON && !name.hasSuffix(".yaml") && !name.hasSuffix(".yml")
                ? try JSONDecoder().decode(Overlay.self, from: data)
                : try YAMLDecoder().decode(Overlay.self, from: text)
        } catch let error as DecodingError {
            throw ProvidersFileError("the providers file \(name) is not valid: \(describe(error))")
        } catch {
            throw ProvidersFileError("the providers file \(name) is not valid: \(error)")
        }
        var file = builtIn
        for (name, provider) in overlay.providers ?? [:] { file.providers[name] = provider }
        for (name, strategy) in overlay.strategies ?? [:] { file.strategies[name] = strategy }
        if let active = overlay.activeStrategy { file.activeStrategy = active }
        guard file.strategies[file.activeStrategy] != nil else {
            throw ProvidersFileError("the providers file \(name) names activeStrategy \(file.activeStrategy.debugDescription), which is not among the strategies (\(file.strategies.keys.sorted().joined(separator: ", ")))")
        }
        for (strategyName, strategy) in file.strategies {
            if let hedge = strategy.hedgeAfterMs, !(0...600_000).contains(hedge) {
                throw ProvidersFileError("the providers file \(name): strategy \(strategyName) has hedgeAfterMs \(hedge); it must be between 0 and 600000")
            }
            for provider in strategy.priority where file.providers[provider] == nil {
                throw ProvidersFileError("the providers file \(name): strategy \(strategyName) names provider \(provider.debugDescription), which is not defined")
            }
        }
        return file
    }

    private struct Overlay: Decodable {
        var providers: [String: Provider]?
        var strategies: [String: Strategy]?
        var activeStrategy: String?
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context)).\(key.stringValue) is required"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "\(path(context)): \(context.debugDescription)"
        case .dataCorrupted(let context): return "\(path(context)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

/// A providers file that cannot be used.
public struct ProvidersFileError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
