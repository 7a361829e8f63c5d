import Foundation
import Hummingbird
import KBEmbeddings
import KBHTTPClient
import KBProto
import KBRPC
import KBRuntime
import Logging
import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The inference gateway's configuration (README, "Configuration").
public struct InferenceConfiguration: ServiceOwnConfiguration {
    public enum Keys {
        public static let providersFile = ConfigKey<ProvidersFile>(
            "KB_INFERENCE_PROVIDERS_FILE", default: .builtIn, documentedDefault: "unset (built-in providers)",
            meaning: "a JSON or YAML file of providers (`api`, `base_url`, `api_key_env`, `local`, `models`, `circuit_breaker`, timeouts), `strategies` and `activeStrategy`, laid over the built-in ones; API keys come only from the environment (`GROQ_API_KEY`, `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`, `OPENROUTER_API_KEY`)"
        ) { path in
            do {
                return try ProvidersFile.load(path: path)
            } catch {
                throw InvalidConfigValue("\(error)")
            }
        }
        public static let cacheMaxEntries = ConfigKey.integer(
            "KB_INFERENCE_CACHE_MAX_ENTRIES", default: 10_000, range: 0...10_000_000,
            meaning: "answers the completion cache keeps (deterministic requests only: temperature 0); 0 turns it off"
        )
        public static let cacheTTLSeconds = ConfigKey.integer(
            "KB_INFERENCE_CACHE_TTL_SECONDS", default: 86_400, range: 1...31_536_000,
            meaning: "how long a cached answer is served"
        )
        public static let semanticCache = ConfigKey.choice(
            "KB_INFERENCE_SEMANTIC_CACHE", default: "off", from: ["off", "on"],
            meaning: "`on`: a deterministic request (temperature 0, or `use_cache`) whose last user message is close in meaning to a cached one (local 384-dimensional embeddings), with the same model, parameters and earlier messages, is answered from the cache"
        )
        public static let semanticCacheThreshold = ConfigKey<Double>(
            "KB_INFERENCE_SEMANTIC_CACHE_THRESHOLD", default: 0.95,
            meaning: "the cosine similarity (0.5 to 1) a prompt must reach to be answered by the semantic cache"
        ) { raw in
            guard let value = Double(raw), (0.5...1).contains(value) else { throw InvalidConfigValue("'\(raw)' is not a number between 0.5 and 1") }
            return value
        }
        public static let semanticCacheMaxEntries = ConfigKey.integer(
            "KB_INFERENCE_SEMANTIC_CACHE_MAX_ENTRIES", default: 1_000, range: 1...100_000,
            meaning: "answers the semantic cache keeps (least recently used go first); served for `KB_INFERENCE_CACHE_TTL_SECONDS`"
        )
        public static let budgetUnreachable = ConfigKey.choice(
            "KB_INFERENCE_BUDGET_UNREACHABLE", default: "refuse-paid", from: ["refuse-paid", "allow-paid"],
            meaning: "what paid calls do while budget-service (`KB_BUDGET_SERVICE_ADDR`) does not answer: `refuse-paid` (local providers still answer) or `allow-paid` (costs are recorded once it is back)"
        )
        public static let indexer = ConfigKey.choice(
            "KB_INFERENCE_INDEXER", default: "auto", from: ["auto", "on", "off"],
            meaning: "the graph→vector indexer: `on` follows graph-store's change feed and keeps vector-search's `knowledge_384` equal to the graph; `auto` (what `kb up` relies on) is on when `KB_GRAPH_STORE_ADDR` and `KB_VECTOR_SEARCH_ADDR` are both set (`kb up` sets them for the services it starts), off otherwise"
        )
        public static let indexerBatch = ConfigKey.integer(
            "KB_INFERENCE_INDEXER_BATCH", default: 64, range: 1...1024,
            meaning: "changes the indexer reads per poll of the feed and entities it embeds per batch (one UpsertPoints each)"
        )
    }

    public static let keys: [ConfigKeyDocumentation] = [
        Keys.providersFile.documentation, Keys.budgetUnreachable.documentation, Keys.cacheMaxEntries.documentation, Keys.cacheTTLSeconds.documentation,
        Keys.semanticCache.documentation, Keys.semanticCacheThreshold.documentation, Keys.semanticCacheMaxEntries.documentation,
        Keys.indexer.documentation, Keys.indexerBatch.documentation,
    ]

    /// The completion cache's file inside the service's data folder.
    public static let cacheFileName = "cache.db"

    public var providers: ProvidersFile
    /// Where budget-service is.
    public var budgetClient: RPCClient.Configuration
    /// Paid calls go while budget-service does not answer.
    public var allowPaidWithoutBudget: Bool
    public var cacheMaxEntries: Int
    public var cacheTTL: Duration
    /// The semantic cache's threshold (nil: the cache is off) and size.
    public var semanticCacheThreshold: Double?
    public var semanticCacheMaxEntries: Int
    /// The local embedding engine's settings (`KB_EMBEDDING_MODEL_DIR`, `KB_EMBEDDING_THREADS`).
    public var embeddings: EmbeddingConfiguration
    /// The indexer's peers and batch size; nil when it is off.
    public var indexer: KnowledgeIndexer.Configuration?

    public init(source: ConfigSource, shared: ServiceConfiguration) throws {
        providers = try source.value(of: Keys.providersFile)
        allowPaidWithoutBudget = try source.value(of: Keys.budgetUnreachable) == "allow-paid"
        cacheMaxEntries = try source.value(of: Keys.cacheMaxEntries)
        cacheTTL = .seconds(try source.value(of: Keys.cacheTTLSeconds))
        let threshold = try source.value(of: Keys.semanticCacheThreshold)
        semanticCacheThreshold = try source.value(of: Keys.semanticCache) == "on" ? threshold : nil
        semanticCacheMaxEntries = try source.value(of: Keys.semanticCacheMaxEntries)
        embeddings = try EmbeddingConfiguration(source: source)
        budgetClient = try source.clientConfiguration(for: .budgetService)
        budgetClient.failFast = true
        let graphSet = try source.value(of: ServiceConfiguration.Keys.address(.graphStore)) != nil
        let vectorsSet = try source.value(of: ServiceConfiguration.Keys.address(.vectorSearch)) != nil
        switch try source.value(of: Keys.indexer) {
        case "on", "auto" where graphSet && vectorsSet:
            indexer = KnowledgeIndexer.Configuration(
                graph: try source.clientConfiguration(for: .graphStore), vectors: try source.clientConfiguration(for: .vectorSearch),
                batchSize: try source.value(of: Keys.indexerBatch)
            )
        default:
            indexer = nil
        }
    }
}

/// The inference gateway as a running thing: the router over the providers, the RPC methods,
/// health per provider, the breaker gauges and the guide's circuit-breaker endpoints.
///
/// Paid calls are admitted by budget-service first and recorded after (`BudgetServiceGate`).
/// The OpenAI-compatible front (`/v1/chat/completions`, `/v1/models`) is on the admin port.
/// Exact repeats of deterministic requests are answered from the completion cache, prompts close
/// in meaning from the semantic cache (when on). `Embed` serves the local 384-dimensional model
/// (KBEmbeddings) and providers' embedding models (OpenAI's `text-embedding-3-small`, 1536
/// dimensions; Ollama's), through the embedding cache.
public final class InferenceGatewayService: Service, Sendable {
    public let router: InferenceRouter
    let http: HTTPClient
    let budget: BudgetServiceGate
    let budgetClient: RPCClient
    let cache: ResponseCache?
    let semanticCache: SemanticCache?
    /// The local 384-dimensional embedding engine, or why it could not be loaded.
    let embedder: Result<TextEmbedder, Error>
    /// The graph→vector indexer, when on (`KB_INFERENCE_INDEXER`).
    public let indexer: KnowledgeIndexer?
    let logger: Logger
    let metrics = RequestMetrics()

    /// `dataDirectory`: where the completion cache's file lives (nil: memory only).
    public init(configuration: InferenceConfiguration, dataDirectory: URL?, environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger) {
        http = HTTPClient()
        budgetClient = RPCClient(configuration: configuration.budgetClient)
        budget = BudgetServiceGate(client: budgetClient, failOpen: configuration.allowPaidWithoutBudget, logger: logger)
        let cache = configuration.cacheMaxEntries == 0 ? nil : ResponseCache(
            path: dataDirectory?.appendingPathComponent(InferenceConfiguration.cacheFileName).path,
            capacity: configuration.cacheMaxEntries, ttl: configuration.cacheTTL, logger: logger
        )
        self.cache = cache
        let embedder = Result { try TextEmbedder(configuration: configuration.embeddings, logger: logger) }
        self.embedder = embedder
        semanticCache = configuration.semanticCacheThreshold.map { threshold in
            SemanticCache(database: cache?.database, threshold: Float(threshold), capacity: configuration.semanticCacheMaxEntries, ttl: configuration.cacheTTL, logger: logger)
        }
        let router = InferenceRouter(
            file: configuration.providers, environment: environment, http: http, budget: budget, cache: cache,
            semantic: semanticCache.map { semantic in
                (semantic, { text in
                    // A prompt longer than the model reads (256 word pieces) is compared by its
                    // beginning only: two such prompts could look alike and differ later, so they
                    // are not answered by meaning. Prompts are not put in the embedding cache.
                    guard let engine = try? embedder.get(), engine.tokenizer.tokenIDs(text).count < engine.tokenizer.maxTokens else { return nil }
                    return try? await Self.localVectors([text], engine: engine, cache: nil).vectors.first
                })
            }
        )
        self.router = router
        if case .failure(let error) = embedder {
            logger.error("the local embedding model cannot be loaded; Embed answers FAILED_PRECONDITION until it is installed", metadata: ["error": "\(error)"])
        }
        indexer = configuration.indexer.map { indexing in
            KnowledgeIndexer(configuration: indexing, engine: embedder, provider: Self.providerModel(router), dataDirectory: dataDirectory, logger: logger)
        }
        self.logger = logger
        let configured = router.routes.values.filter(\.configured).map(\.name).sorted()
        logger.info("inference providers", metadata: [
            "configured": "\(configured.joined(separator: ","))",
            "not_configured": "\(router.routes.values.filter { !$0.configured }.map(\.name).sorted().joined(separator: ","))",
            "strategy": "\(configuration.providers.activeStrategy)",
        ])
    }

    /// `knowledge_1536` with OpenAI's `text-embedding-3-small` when a configured provider serves
    /// it (`OPENAI_API_KEY` set), else nil. Through the router (breakers, budget, costs), not the
    /// embedding cache (entities would crowd out what it is for).
    static func providerModel(_ router: InferenceRouter) -> ProviderModel? {
        let model = "text-embedding-3-small"
        guard router.embeddingPlan(model: model, localOnly: false).contains(where: { $0.route.configured }) else { return nil }
        return ProviderModel(collection: "knowledge_1536", dimension: 1536, model: model) { texts in
            try await router.embed(texts, model: model, dimensions: nil, project: "indexer", deadline: .now + .seconds(120)).result.vectors
        }
    }

    /// Publishes the breaker gauges every second; closes the HTTP client at shutdown.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var ticks = 0
            while !Task.isCancelled {
                self.publish()
                if ticks % 10 == 0 { self.publishCacheSizes() }
                ticks += 1
                await self.budget.tick()
                try await Task.sleep(for: .seconds(1))
            }
        }
        // Costs of calls that finished are recorded before the gateway goes (or logged, if they cannot be).
        _ = await budget.drain()
        http.shutdown()
        await budgetClient.close()
    }

    func publish() {
        for route in router.routes.values {
            Gauge(label: "knowledge_circuit_breaker_state", dimensions: [("provider", route.name)]).record(route.breaker.snapshot.state.rawValue)
        }
    }

    /// The caches' sizes (`knowledge_cache_size{cache_type}`), every ten seconds.
    func publishCacheSizes() {
        for stats in cacheStats() {
            Gauge(label: "knowledge_cache_size", dimensions: [("cache_type", stats.cacheType)]).record(stats.entries)
        }
    }

    // MARK: RPC

    public func register(on rpc: inout RPCRouter) {
        rpc.register(InferenceGatewayMethods.complete) { request, context in try await self.complete(request, context: context) }
        rpc.register(InferenceGatewayMethods.listProviders, on: .eventLoop) { _, _ in self.listProviders() }
        rpc.register(InferenceGatewayMethods.getCircuitBreakers, on: .eventLoop) { _, _ in
            .with { $0.breakers = self.router.routes.keys.sorted().map { self.breakerStatus(self.router.routes[$0]!) } }
        }
        rpc.register(InferenceGatewayMethods.resetCircuitBreaker, on: .eventLoop) { request, context in
            guard let route = self.router.routes[request.provider] else {
                throw RPCError(.notFound, field: "provider", reason: .notFound, "unknown provider \(request.provider.debugDescription) (known: \(self.router.routes.keys.sorted().joined(separator: ", ")))")
            }
            route.breaker.reset()
            context.logger.notice("circuit breaker reset", metadata: ["provider": "\(route.name)"])
            self.publish()
            return self.breakerStatus(route)
        }
        rpc.register(InferenceGatewayMethods.embed) { request, context in try await self.embed(request, context: context) }
        rpc.register(InferenceGatewayMethods.clearCache, on: .threadPool) { request, context in
            let kinds = ["completion", "semantic", "embedding"]
            guard request.cacheType.isEmpty || kinds.contains(request.cacheType) else {
                throw RPCError.invalidArgument(field: "cache_type", reason: .unknownValue, "must be completion, semantic, embedding or empty for all (found \(request.cacheType.debugDescription))")
            }
            var removed: Int64 = 0
            let all = request.cacheType.isEmpty
            if all || request.cacheType == "completion" { removed += try self.cache?.clearCompletions() ?? 0 }
            if all || request.cacheType == "semantic" { removed += try self.semanticCache?.clear() ?? 0 }
            if all || request.cacheType == "embedding" { removed += try self.cache?.clearEmbeddings() ?? 0 }
            context.logger.notice("cache cleared", metadata: ["cache_type": "\(all ? "all" : request.cacheType)", "removed": "\(removed)"])
            return .with { $0.removed = removed }
        }
        rpc.register(InferenceGatewayMethods.getCacheStats, on: .threadPool) { _, _ in .with { $0.caches = self.cacheStats() } }
    }

    /// Each cache's size and counters (`GetCacheStats`, `kb inference cache stats`).
    func cacheStats() -> [Kb_Inference_V1_CacheStats] {
        func entry(_ type: String, _ stats: (entries: Int64, hits: Int64, misses: Int64, evictions: Int64), capacity: Int, ttl: Int64, threshold: Double = 0) -> Kb_Inference_V1_CacheStats {
            .with {
                $0.cacheType = type
                $0.entries = stats.entries
                $0.hits = stats.hits
                $0.misses = stats.misses
                $0.evictions = stats.evictions
                $0.hitRate = stats.hits + stats.misses == 0 ? 0 : Double(stats.hits) / Double(stats.hits + stats.misses)
                $0.capacity = Int64(capacity)
                $0.ttlSeconds = ttl
                $0.threshold = threshold
            }
        }
        var caches: [Kb_Inference_V1_CacheStats] = []
        if let cache {
            caches.append(entry("completion", cache.stats, capacity: cache.capacity, ttl: cache.ttlMs / 1000))
        }
        if let semanticCache {
            caches.append(entry("semantic", semanticCache.stats, capacity: semanticCache.capacity, ttl: semanticCache.ttlMs / 1000, threshold: Double(semanticCache.threshold)))
        }
        if let cache {
            caches.append(entry("embedding", cache.embeddingStats, capacity: cache.capacity, ttl: 0))
        }
        return caches
    }

    func complete(_ request: Kb_Inference_V1_CompletionRequest, context: RPCContext) async throws -> Kb_Inference_V1_CompletionResponse {
        guard !request.messages.isEmpty else { throw RPCError.invalidArgument(field: "messages", reason: .required, "at least one message is required") }
        for (index, message) in request.messages.enumerated() where !["system", "user", "assistant"].contains(message.role) {
            throw RPCError.invalidArgument(field: "messages[\(index)].role", reason: .unknownValue, "must be system, user or assistant (found \(message.role.debugDescription))")
        }
        guard request.maxTokens >= 0 else { throw RPCError.invalidArgument(field: "max_tokens", reason: .outOfRange, "must not be negative") }
        if request.hasTemperature, !(0...2).contains(request.temperature.value) {
            throw RPCError.invalidArgument(field: "temperature", reason: .outOfRange, "must be between 0 and 2 (found \(request.temperature.value))")
        }
        let chat = GatewayChat(
            messages: request.messages.map { ChatMessage(role: $0.role, content: $0.content) },
            model: request.model, provider: request.provider,
            maxTokens: request.maxTokens > 0 ? Int(request.maxTokens) : nil,
            temperature: request.hasTemperature ? Double(request.temperature.value) : nil,
            localOnly: request.localOnly,
            requestId: request.requestID, operation: request.operation, project: request.project
        )
        var cachable = chat
        cachable.noCache = request.noCache
        cachable.useSemanticCache = request.useCache
        cachable.strategy = request.strategy
        if !request.jsonSchema.isEmpty {
            do {
                cachable.schema = try OutputSchema(text: request.jsonSchema, name: request.jsonSchemaName)
            } catch let invalid as OutputSchema.Invalid {
                throw RPCError.invalidArgument(field: invalid.field, reason: .invalidFormat, invalid.message)
            }
        } else if !request.jsonSchemaName.isEmpty {
            throw RPCError.invalidArgument(field: "json_schema", reason: .required, "json_schema_name is set: the schema it names is required too")
        }
        let started = ContinuousClock.now
        do {
            let answer = try await router.complete(cachable, deadline: context.deadline)
            let elapsed = ContinuousClock.now - started
            completed(answer, operation: request.operation, elapsed: elapsed)
            return .with {
                $0.content = answer.result.content
                $0.provider = answer.provider
                $0.model = answer.result.model.isEmpty ? (answer.attempts.last?.model ?? "") : answer.result.model
                $0.inputTokens = Int64(answer.result.usage?.inputTokens ?? 0)
                $0.outputTokens = Int64(answer.result.usage?.outputTokens ?? 0)
                $0.usageEstimated = answer.result.usage?.estimated ?? false
                $0.latencyMs = elapsed.milliseconds
                $0.finishReason = answer.result.finishReason
                $0.cached = answer.cached
                $0.cacheType = answer.cacheType
                $0.similarity = answer.similarity
                $0.attempts = Int32(answer.attempts.count)
                $0.costUsd = answer.costUSD
                $0.schemaValid = cachable.schema != nil
            }
        } catch let mismatch as SchemaMismatch {
            context.logger.warning("completion did not follow its schema", metadata: ["error": "\(mismatch)"])
            throw Self.rpcError(mismatch)
        } catch let failure as RoutingFailure {
            publish()
            for attempt in failure.attempts where attempt.outcome != "ok" && !attempt.outcome.hasPrefix("skipped") {
                Counter(label: "knowledge_inference_errors_total", dimensions: [("provider", attempt.provider)]).increment()
            }
            context.logger.warning("completion failed", metadata: ["error": "\(failure)"])
            throw Self.rpcError(failure)
        }
    }

    /// Metrics of a completed call: latency, tokens, fallbacks, the gateway's own overhead.
    func completed(_ answer: GatewayAnswer, operation: String, elapsed: Duration) {
        guard !answer.cached else { return }  // the cache's own counters count it
        let handles = metrics.handles(provider: answer.provider, operation: operation.isEmpty ? "complete" : operation)
        handles.latency.record(duration: elapsed)
        metrics.overhead.recordNanoseconds(max(0, elapsed.nanoseconds - answer.providerNanoseconds))
        if let usage = answer.result.usage {
            handles.inputTokens.increment(by: usage.inputTokens)
            handles.outputTokens.increment(by: usage.outputTokens)
        }
        if answer.attempts.count > 1 {
            handles.fallbacks.increment(by: answer.attempts.count - 1)
            publish()  // a fallback: some breaker may have changed state
        }
    }

    /// The most texts and characters one `Embed` takes.
    static let maximumEmbedTexts = 1024
    static let maximumEmbedCharacters = 100_000

    /// The names `Embed` and `/v1/embeddings` take for the local model.
    static let localEmbeddingNames: Set<String> = ["", "local", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"]

    /// `Embed`: the local engine (all-MiniLM-L6-v2, 384 dimensions) for the local names, else a
    /// provider's embedding model (`text-embedding-3-small`, 1536) — through the embedding cache.
    func embed(_ request: Kb_Inference_V1_EmbedRequest, context: RPCContext) async throws -> Kb_Inference_V1_EmbedResponse {
        guard !request.texts.isEmpty else { throw RPCError.invalidArgument(field: "texts", reason: .required, "at least one text is required") }
        guard request.texts.count <= Self.maximumEmbedTexts else {
            throw RPCError.invalidArgument(field: "texts", reason: .tooMany, "at most \(Self.maximumEmbedTexts) texts per call (found \(request.texts.count))")
        }
        for (index, text) in request.texts.enumerated() where text.utf8.count > Self.maximumEmbedCharacters {
            throw RPCError.invalidArgument(field: "texts[\(index)]", reason: .tooLong, "at most \(Self.maximumEmbedCharacters) bytes (the model reads its first 256 tokens)")
        }
        guard request.dimension >= 0, request.dimension <= 4096 else {
            throw RPCError.invalidArgument(field: "dimension", reason: .outOfRange, "must be between 0 (the model's own) and 4096")
        }
        var model = request.model
        if model.isEmpty, request.dimension == 1536 { model = "text-embedding-3-small" }
        let answer = try await embeddings(request.texts, model: model, dimension: Int(request.dimension), deadline: context.deadline)
        return .with {
            $0.embeddings = answer.vectors.map { vector in .with { $0.values = vector } }
            $0.model = answer.model
            $0.dimension = Int32(answer.vectors.first?.count ?? 0)
            $0.cached = Int32(answer.cached)
        }
    }

    /// Vectors of `texts` under `model` (a local name, a provider's embedding model, or
    /// `provider/model`), the cached ones from the embedding cache. Throws RPC errors.
    func embeddings(_ texts: [String], model: String, dimension: Int, deadline: ContinuousClock.Instant) async throws -> (vectors: [[Float]], model: String, cached: Int, provider: String, costUSD: Double) {
        if Self.localEmbeddingNames.contains(model.lowercased()) {
            guard dimension == 0 || dimension == TextEmbedder.dimension else {
                throw RPCError.invalidArgument(field: "dimension", reason: .unknownValue, "the local model's vectors have \(TextEmbedder.dimension) dimensions (for 1536 ask for text-embedding-3-small)")
            }
            let engine: TextEmbedder
            switch embedder {
            case .success(let loaded): engine = loaded
            case .failure(let error): throw RPCError(.failedPrecondition, "the local embedding model is not available: \(error)")
            }
            let (vectors, cached) = try await Self.localVectors(texts, engine: engine, cache: cache)
            return (vectors, TextEmbedder.modelName, cached, "local", 0)
        }
        // A provider's model, cached by model name (and dimension): one model's vector for a text
        // is the same whichever provider serving it computed it.
        let plan = router.embeddingPlan(model: model, localOnly: false)
        guard let first = plan.first else {
            throw RPCError.invalidArgument(field: "model", reason: .unknownValue, "no configured provider serves the embedding model \(model.debugDescription): use the local model (empty, \"local\") or one listed in a provider's embedding_models (built in: openai/text-embedding-3-small, 1536 dimensions, with OPENAI_API_KEY)")
        }
        // Asking a model for its own width is asking for its vectors: one cache entry for both.
        let nativeWidths = ["text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536]
        let dimension = nativeWidths[first.model] == dimension ? 0 : dimension
        let cacheModel = first.model + (dimension > 0 ? "@\(dimension)" : "")
        var vectors: [[Float]?] = texts.map { cache?.embedding(model: cacheModel, text: $0) }
        let missing = vectors.indices.filter { vectors[$0] == nil }
        var provider = first.route.name, cost = 0.0
        if !missing.isEmpty {
            let started = ContinuousClock.now
            let answer: GatewayEmbeddings
            do {
                // Only OpenAI's text-embedding-3 models take `dimensions` (older ones refuse it); for
                // others the answer's width is checked against the request below.
                let shorten = dimension > 0 && first.model.hasPrefix("text-embedding-3") ? dimension : nil
                answer = try await router.embed(missing.map { texts[$0] }, model: model, dimensions: shorten, deadline: deadline)
            } catch let failure as RoutingFailure {
                for attempt in failure.attempts where attempt.outcome != "ok" && !attempt.outcome.hasPrefix("skipped") {
                    Counter(label: "knowledge_inference_errors_total", dimensions: [("provider", attempt.provider)]).increment()
                }
                throw Self.rpcError(failure)
            }
            Timer(label: "knowledge_inference_latency_seconds", dimensions: [("provider", answer.provider), ("operation", "embed")]).record(duration: ContinuousClock.now - started)
            if dimension > 0, let width = answer.result.vectors.first?.count, width != dimension {
                throw RPCError(.failedPrecondition, "\(answer.provider)/\(first.model) answered \(width)-dimensional vectors, not \(dimension)")
            }
            for (index, vector) in zip(missing, answer.result.vectors) { vectors[index] = vector }
            cache?.storeEmbeddings(model: cacheModel, zip(missing, answer.result.vectors).map { (texts[$0.0], $0.1) })
            provider = answer.provider
            cost = answer.costUSD
        }
        return (vectors.map { $0 ?? [] }, first.model, texts.count - missing.count, provider, cost)
    }

    /// The local model's vectors of `texts`, through the embedding cache; computed on the
    /// blocking pool (a batch takes milliseconds of CPU).
    static func localVectors(_ texts: [String], engine: TextEmbedder, cache: ResponseCache?) async throws -> (vectors: [[Float]], cached: Int) {
        let model = TextEmbedder.modelName
        var vectors: [[Float]?] = texts.map { cache?.embedding(model: model, text: $0) }
        let missing = vectors.indices.filter { vectors[$0] == nil }
        guard !missing.isEmpty else { return (vectors.map { $0 ?? [] }, texts.count) }
        let started = ContinuousClock.now
        let computed = try await NIOThreadPool.singleton.runIfActive { engine.embed(missing.map { texts[$0] }) }
        Timer(label: "knowledge_inference_latency_seconds", dimensions: [("provider", "local"), ("operation", "embed")]).record(duration: ContinuousClock.now - started)
        for (index, vector) in zip(missing, computed) { vectors[index] = vector }
        cache?.storeEmbeddings(model: model, zip(missing, computed).map { (texts[$0.0], $0.1) })
        return (vectors.map { $0 ?? [] }, texts.count - missing.count)
    }

    /// Answers that broke the schema: `ABORTED`, reason `SCHEMA_MISMATCH` (no provider failure
    /// maps to `ABORTED`, so a caller tells the two apart by the code alone).
    static func rpcError(_ mismatch: SchemaMismatch) -> RPCError {
        RPCError(code: .aborted, message: "json_schema: \(mismatch.description)", field: "json_schema", reason: .schemaMismatch)
    }

    static func rpcError(_ failure: RoutingFailure) -> RPCError {
        switch failure.kind {
        case .request: RPCError(.invalidArgument, failure.description)
        case .configuration: RPCError(.failedPrecondition, failure.description)
        case .exhausted: RPCError(.resourceExhausted, failure.description)
        case .cancelled: RPCError(.cancelled, failure.description)
        case .transient: failure.message.contains("deadline") ? RPCError(.deadlineExceeded, failure.description) : RPCError(.unavailable, failure.description)
        }
    }

    func listProviders() -> Kb_Inference_V1_ListProvidersResponse {
        .with {
            $0.providers = router.routes.keys.sorted().map { name in
                let route = router.routes[name]!
                return .with {
                    $0.name = name
                    $0.models = route.provider.models
                    $0.local = route.provider.local
                    $0.configured = route.configured
                    $0.circuit = Kb_Inference_V1_CircuitState(rawValue: route.breaker.snapshot.state.rawValue) ?? .circuitClosed
                }
            }
        }
    }

    func breakerStatus(_ route: InferenceRouter.Route) -> Kb_Inference_V1_CircuitBreakerStatus {
        let snapshot = route.breaker.snapshot
        return .with {
            $0.provider = route.name
            $0.state = Kb_Inference_V1_CircuitState(rawValue: snapshot.state.rawValue) ?? .circuitClosed
            $0.consecutiveFailures = Int32(clamping: snapshot.failures)
            $0.lastFailureMs = snapshot.lastFailureMs
            $0.nextAttemptMs = snapshot.nextAttemptMs
        }
    }

    // MARK: Health and admin routes

    public func registerHealth(on health: HealthRegistry) {
        indexer?.registerHealth(on: health)
        let embedder = self.embedder
        health.register("embeddings") {
            switch embedder {
            case .success(let engine): ComponentHealth(.healthy, ["model": "all-MiniLM-L6-v2", "dimension": 384, "backend": .string(engine.backendDescription)])
            case .failure(let error): ComponentHealth(.degraded, ["model": "all-MiniLM-L6-v2", "error": .string("\(error)")])
            }
        }
        if let cache {
            health.register("cache") {
                if let problem = cache.fileProblem {
                    return ComponentHealth(.degraded, ["engine": "sqlite", "mode": "memory only", "error": .string(problem)])
                }
                return ComponentHealth(.healthy, ["engine": "sqlite", "capacity": .integer(Int64(cache.capacity))])
            }
        }
        for name in router.routes.keys.sorted() {
            let route = router.routes[name]!
            health.register("provider_\(name)") {
                let snapshot = route.breaker.snapshot
                var details: [String: HealthDetail] = [
                    "circuitBreaker": .string(snapshot.state.name.lowercased()),
                    "configured": .string(route.configured ? "yes" : "no (\(route.provider.apiKeyEnv ?? "") is not set)"),
                ]
                if snapshot.state == .open { details["reason"] = .string(snapshot.reason) }
                // An unconfigured provider is not a fault of the gateway; an open circuit degrades it.
                return ComponentHealth(snapshot.state == .open ? .degraded : .healthy, details)
            }
        }
    }

    /// `GET /internal/circuit-breakers` (also the guide's `/internal/circuit-breaker/status`):
    /// `{provider: {state, failures, lastFailure, nextAttempt}}`; `POST
    /// /internal/circuit-breakers/{provider}/reset` (also `/internal/circuit-breaker/reset/{provider}`).
    public func addAdminRoutes(to router: Router<BasicRequestContext>, configuration: ServiceConfiguration) {
        let status: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in self.breakersJSON() }
        router.get("/internal/circuit-breakers", use: status)
        router.get("/internal/circuit-breaker/status", use: status)
        let token = configuration.authToken
        let reset: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, context in
            if let token, !BearerToken.matches(request.headers[.authorization], token: token) {
                return APIError(.unauthorized, "unauthenticated", "missing or wrong 'Authorization: Bearer <KB_AUTH_TOKEN>'").response
            }
            let name = context.parameters.get("provider") ?? ""
            guard let route = self.router.routes[name] else {
                return APIError(.notFound, "not_found", field: "provider", reason: .notFound, "unknown provider \(name.debugDescription)").response
            }
            route.breaker.reset()
            self.logger.notice("circuit breaker reset by an operator", metadata: ["provider": "\(name)"])
            self.publish()
            return self.breakersJSON()
        }
        router.post("/internal/circuit-breakers/:provider/reset", use: reset)
        router.post("/internal/circuit-breaker/reset/:provider", use: reset)
        OpenAICompatibleFront.add(to: router, gateway: self, authToken: token)
        KnowledgeIndexer.addAdminRoutes(indexer, to: router, authToken: token)
    }

    /// The OpenAI front's two POST routes, answered from the pipeline (`HTTPDirectRoute`).
    public func directAdminRoutes(configuration: ServiceConfiguration) -> [HTTPDirectRoute] {
        ["/v1/chat/completions", "/v1/embeddings"].map {
            HTTPDirectRoute(.post, $0, maximumBody: OpenAICompatibleFront.maximumBody, bearerToken: configuration.authToken)
        }
    }

    func breakersJSON() -> Response {
        var object: [String: Any] = [:]
        let iso = ISO8601DateFormatter()
        for (name, route) in router.routes {
            let snapshot = route.breaker.snapshot
            var entry: [String: Any] = ["state": snapshot.state.name.lowercased().replacingOccurrences(of: "_", with: "-"), "failures": snapshot.failures, "configured": route.configured]
            if snapshot.lastFailureMs > 0 { entry["lastFailure"] = iso.string(from: Date(timeIntervalSince1970: Double(snapshot.lastFailureMs) / 1000)) }
            if snapshot.state == .open {
                entry["nextAttempt"] = iso.string(from: Date(timeIntervalSince1970: Double(snapshot.nextAttemptMs) / 1000))
                entry["reason"] = snapshot.reason
            }
            object[name] = entry
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension InferenceGatewayService: RPCService {
    public var lifecycleServices: [any Service] { [self] + (indexer.map { [$0] } ?? []) }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int64 { nanoseconds / 1_000_000 }
}
