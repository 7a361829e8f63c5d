import Foundation

/// Money is kept as integer nano-dollars (1e-9 USD) everywhere inside the service, so sums are
/// exact and the thresholds (exactly 80%, 90%, 100%) do not depend on floating-point rounding.
/// The wire carries USD as doubles.
public enum Nanos {
    /// Nano-dollars per dollar.
    public static let perDollar: Double = 1_000_000_000

    /// `usd` rounded to the nearest nano-dollar.
    public static func from(usd: Double) -> Int64 { Int64((usd * perDollar).rounded()) }

    /// Dollars of `nanos`.
    public static func usd(_ nanos: Int64) -> Double { Double(nanos) / perDollar }
}

/// Per-model prices in USD per million input and output tokens. Defaults cover the providers the
/// operations guide names; `KB_BUDGET_PRICES_FILE` (JSON, README) adds or overrides entries.
/// Local providers cost nothing for any model. An unknown paid model has no price: recording it
/// without an explicit cost is an error, never a silent zero.
public struct PriceTable: Sendable {
    /// One model's price.
    public struct Price: Sendable, Hashable, Codable {
        public var provider: String
        /// The model, or `*` for every model of the provider.
        public var model: String
        public var inputPerMillion: Double
        public var outputPerMillion: Double

        public init(provider: String, model: String, inputPerMillion: Double, outputPerMillion: Double) {
            self.provider = provider
            self.model = model
            self.inputPerMillion = inputPerMillion
            self.outputPerMillion = outputPerMillion
        }

        enum CodingKeys: String, CodingKey {
            case provider, model
            case inputPerMillion = "input_per_million"
            case outputPerMillion = "output_per_million"
        }
    }

    /// The file format of `KB_BUDGET_PRICES_FILE`.
    struct File: Codable {
        var prices: [Price]?
        var localProviders: [String]?
        enum CodingKeys: String, CodingKey {
            case prices
            case localProviders = "local_providers"
        }
    }

    /// Why a price table could not be read.
    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
    }

    private var prices: [String: Price]
    /// Providers whose calls are free and never blocked.
    public private(set) var localProviders: Set<String>

    /// Providers running on the operator's machines: free, never blocked.
    public static let defaultLocalProviders: Set<String> = ["local", "ollama", "llamacpp", "llama.cpp", "vllm", "lmstudio"]

    /// List prices (USD per million tokens) as published by each provider; check them against
    /// the providers' pages and override in `KB_BUDGET_PRICES_FILE` when they change.
    public static let defaultPrices: [Price] = [
        // Groq
        Price(provider: "groq", model: "llama-3.3-70b-versatile", inputPerMillion: 0.59, outputPerMillion: 0.79),
        Price(provider: "groq", model: "llama-3.1-70b-versatile", inputPerMillion: 0.59, outputPerMillion: 0.79),
        Price(provider: "groq", model: "llama-3.1-8b-instant", inputPerMillion: 0.05, outputPerMillion: 0.08),
        Price(provider: "groq", model: "mixtral-8x7b-32768", inputPerMillion: 0.24, outputPerMillion: 0.24),
        Price(provider: "groq", model: "gemma2-9b-it", inputPerMillion: 0.20, outputPerMillion: 0.20),
        // OpenRouter (vendor/model names)
        Price(provider: "openrouter", model: "meta-llama/llama-3.3-70b-instruct", inputPerMillion: 0.13, outputPerMillion: 0.40),
        Price(provider: "openrouter", model: "meta-llama/llama-3.1-8b-instruct", inputPerMillion: 0.02, outputPerMillion: 0.05),
        Price(provider: "openrouter", model: "anthropic/claude-3.5-sonnet", inputPerMillion: 3.00, outputPerMillion: 15.00),
        Price(provider: "openrouter", model: "anthropic/claude-3.5-haiku", inputPerMillion: 0.80, outputPerMillion: 4.00),
        Price(provider: "openrouter", model: "openai/gpt-4o-mini", inputPerMillion: 0.15, outputPerMillion: 0.60),
        Price(provider: "openrouter", model: "openai/gpt-4o", inputPerMillion: 2.50, outputPerMillion: 10.00),
        Price(provider: "openrouter", model: "google/gemini-2.0-flash-001", inputPerMillion: 0.10, outputPerMillion: 0.40),
        Price(provider: "openrouter", model: "deepseek/deepseek-chat", inputPerMillion: 0.27, outputPerMillion: 1.10),
        // OpenAI
        Price(provider: "openai", model: "gpt-4o", inputPerMillion: 2.50, outputPerMillion: 10.00),
        Price(provider: "openai", model: "gpt-4o-mini", inputPerMillion: 0.15, outputPerMillion: 0.60),
        Price(provider: "openai", model: "gpt-4.1", inputPerMillion: 2.00, outputPerMillion: 8.00),
        Price(provider: "openai", model: "gpt-4.1-mini", inputPerMillion: 0.40, outputPerMillion: 1.60),
        Price(provider: "openai", model: "gpt-4.1-nano", inputPerMillion: 0.10, outputPerMillion: 0.40),
        Price(provider: "openai", model: "text-embedding-3-small", inputPerMillion: 0.02, outputPerMillion: 0),
        Price(provider: "openai", model: "text-embedding-3-large", inputPerMillion: 0.13, outputPerMillion: 0),
        // Anthropic
        Price(provider: "anthropic", model: "claude-3-5-sonnet-latest", inputPerMillion: 3.00, outputPerMillion: 15.00),
        Price(provider: "anthropic", model: "claude-sonnet-4-0", inputPerMillion: 3.00, outputPerMillion: 15.00),
        Price(provider: "anthropic", model: "claude-3-5-haiku-latest", inputPerMillion: 0.80, outputPerMillion: 4.00),
        Price(provider: "anthropic", model: "claude-3-haiku-20240307", inputPerMillion: 0.25, outputPerMillion: 1.25),
        Price(provider: "anthropic", model: "claude-opus-4-0", inputPerMillion: 15.00, outputPerMillion: 75.00),
        // Google Gemini
        Price(provider: "gemini", model: "gemini-1.5-flash", inputPerMillion: 0.075, outputPerMillion: 0.30),
        Price(provider: "gemini", model: "gemini-1.5-pro", inputPerMillion: 1.25, outputPerMillion: 5.00),
        Price(provider: "gemini", model: "gemini-2.0-flash", inputPerMillion: 0.10, outputPerMillion: 0.40),
        Price(provider: "gemini", model: "gemini-2.5-flash", inputPerMillion: 0.30, outputPerMillion: 2.50),
        Price(provider: "gemini", model: "gemini-2.5-pro", inputPerMillion: 1.25, outputPerMillion: 10.00),
        Price(provider: "gemini", model: "text-embedding-004", inputPerMillion: 0, outputPerMillion: 0),
    ]

    /// The default table.
    public init() {
        self.init(prices: Self.defaultPrices, localProviders: Self.defaultLocalProviders)
    }

    /// A table of exactly these entries.
    public init(prices: [Price], localProviders: Set<String>) {
        self.prices = [:]
        self.localProviders = Set(localProviders.map { $0.lowercased() })
        for price in prices { self.prices[Self.key(price.provider, price.model)] = price }
    }

    /// The defaults with the entries of a JSON price file laid over them:
    /// `{"prices": [{"provider", "model", "input_per_million", "output_per_million"}], "local_providers": [...]}`.
    public static func loading(file: URL) throws -> PriceTable {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw Error(description: "cannot read the price file \(file.path): \(error.localizedDescription)")
        }
        let decoded: File
        do { decoded = try JSONDecoder().decode(File.self, from: data) } catch {
            throw Error(description: "the price file \(file.path) is not valid: \(error)")
        }
        var table = PriceTable()
        for (index, price) in (decoded.prices ?? []).enumerated() {
            guard !price.provider.isEmpty, !price.model.isEmpty else {
                throw Error(description: "the price file \(file.path): prices[\(index)] needs a provider and a model")
            }
            guard price.inputPerMillion.isFinite, price.outputPerMillion.isFinite, price.inputPerMillion >= 0, price.outputPerMillion >= 0 else {
                throw Error(description: "the price file \(file.path): prices[\(index)] has a negative or non-finite price")
            }
            table.prices[key(price.provider, price.model)] = price
        }
        if let local = decoded.localProviders { table.localProviders.formUnion(local.map { $0.lowercased() }) }
        return table
    }

    /// True for a provider whose calls are free (a local model server).
    public func isLocal(provider: String) -> Bool { localProviders.contains(provider.lowercased()) }

    /// The price of `model` at `provider`: its own entry, else the provider's `*` entry; nil when unknown.
    public func price(provider: String, model: String) -> Price? {
        if isLocal(provider: provider) { return Price(provider: provider, model: model, inputPerMillion: 0, outputPerMillion: 0) }
        return prices[Self.key(provider, model)] ?? prices[Self.key(provider, "*")]
    }

    /// The cost in nano-dollars of a call, nil when the model has no price.
    public func costNanos(provider: String, model: String, inputTokens: Int64, outputTokens: Int64) -> Int64? {
        guard let price = price(provider: provider, model: model) else { return nil }
        // USD per million tokens = nano-dollars per thousandth of a token: × 1000 per token.
        let nanos = Double(inputTokens) * price.inputPerMillion * 1000 + Double(outputTokens) * price.outputPerMillion * 1000
        return Int64(nanos.rounded())
    }

    /// Every entry, sorted by provider and model.
    public var all: [Price] {
        prices.values.sorted { ($0.provider, $0.model) < ($1.provider, $1.model) }
    }

    private static func key(_ provider: String, _ model: String) -> String {
        provider.lowercased() + "\u{1F}" + model.lowercased()
    }
}
