import Foundation
import KBHTTPClient
import Synchronization

/// A chat completion as a gateway client asks for it.
public struct GatewayChat: Sendable {
    public var messages: [ChatMessage]
    /// A model name (routes to the providers serving it), `provider/model`, or empty (each
    /// provider's default model).
    public var model: String
    /// Try this provider first (then the strategy's order).
    public var provider: String
    /// A strategy other than the active one.
    public var strategy: String
    public var maxTokens: Int?
    public var temperature: Double?
    /// Never call a paid provider.
    public var localOnly: Bool
    /// Local providers first, then the strategy's order.
    public var preferLocal: Bool
    /// The caller's id of the request (budget records carry it, with the provider); empty: one is made.
    public var requestId: String
    /// What the call is for (`extract`, ...) and for which project: cost reports group by them.
    public var operation: String
    public var project: String
    /// Neither read nor fill the completion cache.
    public var noCache = false
    /// Let the semantic cache answer even a request that is not deterministic.
    public var useSemanticCache = false
    /// Structured output: the JSON Schema the answer must follow (nil: free text). Whole
    /// completions only; the answer is checked against it (one retry, then `SchemaMismatch`).
    public var schema: OutputSchema?

    /// A random (version 4) UUID, lower case, from `arc4random_buf` (getrandom):
    /// Foundation's `UUID()` opens, reads and closes /dev/urandom on Linux, on every request.
    public static func newRequestId() -> String {
        var bytes: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &bytes) { raw in
            // One getrandom(2) for the 16 bytes (SystemRandomNumberGenerator makes one per word).
            arc4random_buf(raw.baseAddress!, 16)
            raw[6] = raw[6] & 0x0F | 0x40
            raw[8] = raw[8] & 0x3F | 0x80
            let digits = Array("0123456789abcdef".utf8)
            var text: [UInt8] = []
            text.reserveCapacity(36)
            for index in 0..<16 {
                if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
                text.append(digits[Int(raw[index] >> 4)])
                text.append(digits[Int(raw[index] & 0x0F)])
            }
            return String(decoding: text, as: UTF8.self)
        }
    }

    public init(messages: [ChatMessage], model: String = "", provider: String = "", strategy: String = "", maxTokens: Int? = nil, temperature: Double? = nil, localOnly: Bool = false, preferLocal: Bool = false, requestId: String = "", operation: String = "", project: String = "") {
        self.requestId = requestId.isEmpty ? Self.newRequestId() : requestId
        self.operation = operation
        self.project = project
        self.messages = messages
        self.model = model
        self.provider = provider
        self.strategy = strategy
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.localOnly = localOnly
        self.preferLocal = preferLocal
    }
}

/// One try of one provider.
public struct Attempt: Sendable, Equatable {
    public var provider: String
    public var model: String
    /// `ok`, or the failure (`transient (HTTP 503): ...`), or `skipped: circuit open`.
    public var outcome: String
    public var milliseconds: Int64
}

/// The answer, who gave it, and what it took.
public struct GatewayAnswer: Sendable {
    public var result: ChatResult
    public var provider: String
    public var attempts: [Attempt]
    /// Time spent waiting on providers (the rest of the request's time is the gateway's own).
    public var providerNanoseconds: Int64
    /// Served from a cache (no provider was called).
    public var cached = false
    /// With `cached`: `completion` (an exact repeat) or `semantic` (a prompt close in meaning).
    public var cacheType = ""
    /// With a semantic hit: the prompt's cosine similarity to the cached one.
    public var similarity: Float = 0
    /// What the call cost (USD, priced by budget-service's table); 0 for local providers,
    /// cached answers and calls no price is known for.
    public var costUSD: Double = 0
}

/// A streamed answer's events, with the provider that serves it.
public enum GatewayStreamEvent: Sendable, Equatable {
    /// The provider whose answer follows (sent once, before any text).
    case provider(String, model: String)
    case text(String)
    case usage(TokenUsage)
    case finished(reason: String)
}

/// No provider could answer; every attempt is listed.
public struct RoutingFailure: Error, CustomStringConvertible, Sendable {
    /// The last failure's kind decides the status a caller sees.
    public var kind: ProviderFailure.Kind
    public var message: String
    public var attempts: [Attempt]

    public var description: String {
        "\(message)" + (attempts.isEmpty ? "" : "; attempts: " + attempts.map { "\($0.provider)/\($0.model): \($0.outcome)" }.joined(separator: "; "))
    }
}

/// How transient failures are retried before the next provider is tried.
public struct RetryPolicy: Sendable {
    /// Tries of one provider (the first included).
    public var attemptsPerProvider = 2
    /// The first back-off; doubled each retry, with up to 50% random jitter.
    public var initialBackoff: Duration = .milliseconds(200)
    /// The longest back-off (a longer `retry-after` moves on to the next provider instead).
    public var maximumBackoff: Duration = .seconds(5)

    public init() {}
}

/// Routes a request over the providers: the strategy's order, circuit breakers, retries with
/// back-off on transient failures, then the next provider, all within the request's deadline.
public final class InferenceRouter: Sendable {
    /// A provider as the router uses it.
    public struct Route: Sendable {
        public let name: String
        public let provider: ProvidersFile.Provider
        /// False when it needs a key the environment does not hold: listed, never called.
        public let configured: Bool
        public let client: ProviderClient?
        public let breaker: CircuitBreaker
    }

    public let file: ProvidersFile
    public let routes: [String: Route]
    /// Admission and cost recording of paid calls (nil: no budget enforcement).
    public let budget: BudgetGate?
    /// The completion cache (nil: none).
    public let cache: ResponseCache?
    /// The semantic cache and the embedding of a prompt it compares by (nil: off).
    public let semantic: (cache: SemanticCache, embed: @Sendable (String) async -> [Float]?)?
    let retry: RetryPolicy
    let latency: Mutex<[String: Double]>

    /// Builds the routes; keys come from `environment` (a provider whose key variable is unset
    /// or empty is not configured).
    public init(file: ProvidersFile, environment: [String: String], http: HTTPClient, budget: BudgetGate? = nil, cache: ResponseCache? = nil, semantic: (cache: SemanticCache, embed: @Sendable (String) async -> [Float]?)? = nil, retry: RetryPolicy = RetryPolicy(), clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.file = file
        self.budget = budget
        self.cache = cache
        self.semantic = semantic
        self.retry = retry
        var routes: [String: Route] = [:]
        for (name, provider) in file.providers {
            let key = provider.apiKeyEnv.flatMap { environment[$0] }.flatMap { $0.isEmpty ? nil : $0 }
            let configured = provider.apiKeyEnv == nil || key != nil
            let client = configured ? ProviderClient(name: name, endpoint: provider.endpoint(apiKey: key), http: http) : nil
            let settings = provider.circuitBreaker ?? .defaults(for: name, local: provider.local)
            routes[name] = Route(name: name, provider: provider, configured: configured, client: client, breaker: CircuitBreaker(provider: name, settings: settings, clock: clock))
        }
        self.routes = routes
        latency = Mutex([:])
    }

    /// The providers to try for `chat`, in order, with the model each is asked for.
    public func plan(_ chat: GatewayChat) throws -> [(route: Route, model: String)] {
        var chat = chat
        switch budget?.mode {
        case .localOnly?: chat.localOnly = true
        case .preferLocal?: chat.preferLocal = true
        case .normal?, nil: break
        }
        let strategyName = chat.strategy.isEmpty ? file.activeStrategy : chat.strategy
        guard let strategy = file.strategies[strategyName] else {
            throw RoutingFailure(kind: .request, message: "unknown strategy \(strategyName.debugDescription) (known: \(file.strategies.keys.sorted().joined(separator: ", ")))", attempts: [])
        }
        var names: [String] = []
        for name in strategy.priority where !names.contains(name) { names.append(name) }
        for name in file.providers.keys.sorted() where !names.contains(name) { names.append(name) }
        if strategy.byLatency == true {
            let measured = latency.withLock { $0 }
            let position = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
            names.sort { (measured[$0] ?? .infinity, position[$0]!) < (measured[$1] ?? .infinity, position[$1]!) }
        }
        // `provider/model` or a model served by some providers narrows the choice.
        var model = chat.model
        var only: Set<String>?
        if let slash = model.firstIndex(of: "/"), routes[String(model[..<slash])] != nil {
            only = [String(model[..<slash])]
            model = String(model[model.index(after: slash)...])
        } else if !model.isEmpty {
            let serving = Set(routes.values.filter { $0.provider.models.contains(model) }.map(\.name))
            if !serving.isEmpty { only = serving }
        }
        if !chat.provider.isEmpty {
            guard routes[chat.provider] != nil else {
                throw RoutingFailure(kind: .request, message: "unknown provider \(chat.provider.debugDescription) (known: \(routes.keys.sorted().joined(separator: ", ")))", attempts: [])
            }
            names.removeAll { $0 == chat.provider }
            names.insert(chat.provider, at: 0)
        }
        if chat.preferLocal {
            names = names.filter { routes[$0]?.provider.local == true } + names.filter { routes[$0]?.provider.local != true }
        }
        return names.compactMap { name in
            guard let route = routes[name], only?.contains(name) ?? true else { return nil }
            if chat.localOnly, !route.provider.local { return nil }
            let chosen = model.isEmpty || only == nil ? (route.provider.models.first ?? model) : model
            return (route, chosen)
        }
    }

    /// A whole answer: from the completion cache (an exact repeat of a deterministic request),
    /// the semantic cache (when on: a prompt close in meaning), or the first provider that gives one.
    public func complete(_ chat: GatewayChat, deadline: ContinuousClock.Instant) async throws -> GatewayAnswer {
        let deterministic = ResponseCache.cacheable(temperature: chat.temperature)
        var cacheKey: String?
        if let cache, !chat.noCache, deterministic {
            let key = ResponseCache.key(messages: chat.messages, model: chat.model, maxTokens: chat.maxTokens, temperature: chat.temperature, route: "\(chat.provider)|\(chat.strategy)|\(chat.project)", schema: chat.schema)
            if let hit = cache.lookup(key) {
                return GatewayAnswer(result: hit.result, provider: hit.provider, attempts: [], providerNanoseconds: 0, cached: true, cacheType: "completion")
            }
            cacheKey = key
        }
        var probe: (partition: String, prompt: String, vector: [Float])?
        if let semantic, !chat.noCache, deterministic || chat.useSemanticCache, let last = chat.messages.last, last.role == "user" {
            // A project's answers are only its own: close prompts of two projects can carry their own data.
            let partition = SemanticCache.partition(earlierMessages: Array(chat.messages.dropLast()), model: chat.model, maxTokens: chat.maxTokens, temperature: chat.temperature, route: "\(chat.provider)|\(chat.strategy)|\(chat.project)", schema: chat.schema)
            if let vector = await semantic.embed(last.content) {
                if let hit = semantic.cache.lookup(partition: partition, vector: vector) {
                    return GatewayAnswer(result: hit.result, provider: hit.provider, attempts: [], providerNanoseconds: 0, cached: true, cacheType: "semantic", similarity: hit.similarity)
                }
                probe = (partition, last.content, vector)
            }
        }
        let answer = try await completeUncached(chat, deadline: deadline)
        if let cacheKey, let cache { cache.store(cacheKey, provider: answer.provider, result: answer.result) }
        if let probe, let semantic { semantic.cache.store(partition: probe.partition, prompt: probe.prompt, vector: probe.vector, provider: answer.provider, result: answer.result) }
        return answer
    }

    /// With a schema, an answer that does not follow it is retried once — on the next provider
    /// of the plan, or on the same one when no other is left — then the request fails with
    /// `SchemaMismatch`; such answers are never returned (nor cached). Their cost counts.
    func completeUncached(_ chat: GatewayChat, deadline: ContinuousClock.Instant) async throws -> GatewayAnswer {
        var attempts: [Attempt] = []
        var providerNanoseconds: Int64 = 0
        var last: ProviderFailure?
        var candidates = try plan(chat)[...]
        var mismatch: (problem: String, route: Route, model: String)?
        var retried = false
        var spentUSD = 0.0
        /// The answer as the caller gets it, or nil (and the attempt marked) when it breaks the schema.
        func checked(_ result: ChatResult, route: Route, model: String) throws -> ChatResult? {
            guard let schema = chat.schema else { return result }
            switch schema.check(result.content) {
            case .success(let json):
                var result = result
                result.content = json
                return result
            case .failure(let broken):
                if let index = attempts.lastIndex(where: { $0.provider == route.name && $0.outcome == "ok" }) {
                    attempts[index].outcome = "invalid output: \(broken.problem)"
                }
                if mismatch != nil { throw SchemaMismatch(problem: broken.problem, attempts: attempts) }
                mismatch = (broken.problem, route, model)
                return nil
            }
        }
        let strategy = file.strategies[chat.strategy.isEmpty ? file.activeStrategy : chat.strategy]
        if strategy?.parallelRequests == true {
            // Hedged: the first two configured providers race; the rest follow in order if both fail.
            let callable = candidates.filter { $0.route.client != nil }
            if callable.count >= 2 {
                let pair = Array(callable.prefix(2))
                candidates.removeAll { candidate in pair.contains { $0.route.name == candidate.route.name } }
                let hedgeStarted = ContinuousClock.now
                let (run, others) = try await hedged(pair[0], pair[1], after: .milliseconds(strategy?.hedgeAfterMs ?? 0), chat: chat, deadline: deadline)
                // The two calls overlap: the time spent waiting on providers is the race's wall time.
                providerNanoseconds += (ContinuousClock.now - hedgeStarted).nanoseconds
                for other in others {
                    attempts += other.attempts
                    if case .failure(.next(let failure?)) = other.outcome { last = failure }
                }
                // The loser's prompt was billed too: the request cost both.
                spentUSD += others.reduce(0) { $0 + $1.spentUSD }
                if let run {
                    attempts += run.attempts
                    if case .success(let answer) = run.outcome {
                        spentUSD += answer.cost
                        let winner = pair.first(where: { $0.route.name == run.provider }) ?? pair[0]
                        if let result = try checked(answer.result, route: winner.route, model: winner.model) {
                            return GatewayAnswer(result: result, provider: run.provider, attempts: attempts, providerNanoseconds: providerNanoseconds, costUSD: spentUSD)
                        }
                    }
                }
            }
        }
        while true {
            guard let next = candidates.popFirst() else {
                // A schema's one retry goes to the same provider when no other was left to take it.
                guard let failed = mismatch, !retried else { break }
                retried = true
                candidates.append((failed.route, failed.model))
                continue
            }
            // libcurl's time limit, clamped to the deadline, can end a call a hair before it: within
            // the tolerance `ProviderClient.hitDeadline` allows, the deadline has passed and no
            // further provider is tried.
            if deadline - ContinuousClock.now <= ProviderClient.deadlineTolerance { break }
            let (route, model) = next
            let run = await callProvider(route, model: model, chat: chat, deadline: deadline)
            attempts += run.attempts
            providerNanoseconds += run.providerNanoseconds
            spentUSD += run.spentUSD
            if mismatch != nil, run.attempts.contains(where: { !$0.outcome.hasPrefix("skipped") }) { retried = true }
            switch run.outcome {
            case .success(let answer):
                spentUSD += answer.cost
                guard let result = try checked(answer.result, route: route, model: model) else { continue }
                return GatewayAnswer(result: result, provider: route.name, attempts: attempts, providerNanoseconds: providerNanoseconds, costUSD: spentUSD)
            case .failure(.next(let failure)):
                last = failure ?? last
            case .failure(.cancelled):
                throw CancellationError()
            case .failure(.refused(let failure)):
                throw RoutingFailure(kind: .request, message: "\(route.name) refused the request: \(failure.message)", attempts: attempts)
            }
        }
        // An answer came but broke the schema, and no second one could be had.
        if let mismatch { throw SchemaMismatch(problem: mismatch.problem, attempts: attempts) }
        if deadline - ContinuousClock.now <= ProviderClient.deadlineTolerance {
            throw RoutingFailure(kind: .transient, message: "the deadline passed before a provider answered", attempts: attempts)
        }
        throw RoutingFailure(kind: last?.kind ?? .configuration, message: last == nil ? "no provider can serve this request (none configured or all circuits open)" : "every provider failed", attempts: attempts)
    }

    /// One provider's part of a whole completion: admission, tries with back-off on transient
    /// failures, its breaker, and the cost settled with the budget; within `deadline`.
    func callProvider(_ route: Route, model: String, chat: GatewayChat, deadline: ContinuousClock.Instant) async -> ProviderRun {
        var run = ProviderRun(provider: route.name)
        guard let client = route.client else {
            run.attempts.append(Attempt(provider: route.name, model: model, outcome: "skipped: not configured (\(route.provider.apiKeyEnv ?? "no key") is not set)", milliseconds: 0))
            return run
        }
        let request = ChatRequest(messages: chat.messages, model: model, maxTokens: chat.maxTokens, temperature: chat.temperature, schema: chat.schema)
        let (admission, admitted) = await admit(route: route, model: model, chat: chat)
        guard case .allowed(var reservation) = admitted else {
            if case .denied(let reason) = admitted {
                run.attempts.append(Attempt(provider: route.name, model: model, outcome: "skipped: \(reason)", milliseconds: 0))
                run.outcome = .failure(.next(ProviderFailure(.exhausted, reason)))
            }
            return run
        }
        var backoff = retry.initialBackoff
        defer { if !reservation.isEmpty { budget?.settle(admission, reservationId: reservation, usage: nil, latencyMs: 0) } }
        for tryNumber in 1...max(1, retry.attemptsPerProvider) {
            guard ContinuousClock.now < deadline else { return run }
            if Task.isCancelled {
                run.attempts.append(Attempt(provider: route.name, model: model, outcome: "cancelled", milliseconds: 0))
                run.outcome = .failure(.cancelled)
                return run
            }
            guard let permit = route.breaker.acquire() else {
                run.attempts.append(Attempt(provider: route.name, model: model, outcome: "skipped: circuit open", milliseconds: 0))
                return run
            }
            let started = ContinuousClock.now
            do {
                var result = try await client.complete(request, deadline: deadline)
                // A provider that reports no usage gets the gateway's estimate, marked as one,
                // so callers always see usage and can tell counted from estimated.
                if result.usage == nil { result.usage = Self.estimatedUsage(chat.messages, answer: result.content.utf8.count) }
                let elapsed = ContinuousClock.now - started
                run.providerNanoseconds += elapsed.nanoseconds
                route.breaker.succeeded(permit)
                record(latency: elapsed, for: route.name)
                run.attempts.append(Attempt(provider: route.name, model: model, outcome: "ok", milliseconds: elapsed.nanoseconds / 1_000_000))
                var cost = 0.0
                if let budget, !route.provider.local {
                    cost = budget.settle(admission, reservationId: reservation, usage: result.usage, latencyMs: elapsed.nanoseconds / 1_000_000) ?? 0
                    reservation = ""
                }
                run.outcome = .success((result, cost))
                return run
            } catch {
                let elapsed = ContinuousClock.now - started
                run.providerNanoseconds += elapsed.nanoseconds
                let failure = Self.failure(error)
                run.attempts.append(Attempt(provider: route.name, model: model, outcome: failure.description, milliseconds: elapsed.nanoseconds / 1_000_000))
                run.outcome = .failure(.next(failure))
                switch failure.kind {
                case .cancelled:
                    route.breaker.released(permit)
                    run.outcome = .failure(.cancelled)
                    if let budget, !route.provider.local {
                        // The request reached the provider, which bills the prompt of an aborted call.
                        run.spentUSD = budget.settle(admission, reservationId: reservation, usage: TokenUsage(inputTokens: estimatedTokens(chat.messages), outputTokens: 0, estimated: true), latencyMs: elapsed.nanoseconds / 1_000_000) ?? 0
                        reservation = ""
                    }
                    return run
                case .request:
                    route.breaker.released(permit)
                    run.outcome = .failure(.refused(failure))
                    return run
                case .configuration:
                    route.breaker.released(permit)
                    return run
                case .exhausted:
                    route.breaker.exhausted(untilMs: failure.retryAfterMs.map { Int64(Date().timeIntervalSince1970 * 1000) + min($0, 86_400_000) }, reason: failure.message)
                    return run
                case .transient:
                    if error is DeadlineExceeded || ContinuousClock.now >= deadline {
                        // The caller's deadline, not the provider's health.
                        route.breaker.released(permit)
                        return run
                    }
                    route.breaker.failed(permit, reason: failure.description, retryAfterMs: failure.retryAfterMs)
                    guard tryNumber < retry.attemptsPerProvider else { return run }
                    var wait = backoff + backoff * Double.random(in: 0...0.5)
                    if let retryAfter = failure.retryAfterMs {
                        guard .milliseconds(retryAfter) <= retry.maximumBackoff else { return run }
                        wait = max(wait, .milliseconds(retryAfter))
                    }
                    guard ContinuousClock.now + wait < deadline else { return run }
                    do { try await Task.sleep(for: wait) } catch {
                        run.outcome = .failure(.cancelled)
                        return run
                    }
                    backoff = min(backoff * 2, retry.maximumBackoff)
                }
            }
        }
        return run
    }

    /// A streamed answer. Providers are tried in order until one starts streaming text; a
    /// failure before the first text falls back to the next provider, a failure after it ends
    /// the stream with that error (never a clean end with a truncated answer).
    public func stream(_ chat: GatewayChat, deadline: ContinuousClock.Instant) -> AsyncThrowingStream<GatewayStreamEvent, Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var attempts: [Attempt] = []
                var last: ProviderFailure?
                do {
                    if let schema = chat.schema {
                        throw RoutingFailure(kind: .request, message: "structured output (json_schema \(schema.name)) is for whole completions only, not streams", attempts: [])
                    }
                    for (route, model) in try plan(chat) {
                        guard let client = route.client else { continue }
                        guard let permit = route.breaker.acquire() else {
                            attempts.append(Attempt(provider: route.name, model: model, outcome: "skipped: circuit open", milliseconds: 0))
                            continue
                        }
                        let (admission, admitted) = await admit(route: route, model: model, chat: chat)
                        guard case .allowed(let reservation) = admitted else {
                            route.breaker.released(permit)
                            if case .denied(let reason) = admitted {
                                attempts.append(Attempt(provider: route.name, model: model, outcome: "skipped: \(reason)", milliseconds: 0))
                                last = ProviderFailure(.exhausted, reason)
                            }
                            continue
                        }
                        let started = ContinuousClock.now
                        var sentText = false
                        var streamedCharacters = 0
                        var lastUsage: TokenUsage?
                        var pending: [GatewayStreamEvent] = [.provider(route.name, model: model)]
                        do {
                            let request = ChatRequest(messages: chat.messages, model: model, maxTokens: chat.maxTokens, temperature: chat.temperature)
                            let events = try await client.stream(request, deadline: deadline)
                            for try await event in events {
                                let mapped: GatewayStreamEvent = switch event {
                                case .text(let text): .text(text)
                                case .usage(let usage): .usage(usage)
                                case .finished(let reason): .finished(reason: reason)
                                }
                                if case .text(let text) = mapped { streamedCharacters += text.utf8.count }
                                if case .usage(let usage) = mapped { lastUsage = usage }
                                if case .text = mapped, !sentText {
                                    sentText = true
                                    for early in pending { continuation.yield(early) }
                                    pending = []
                                }
                                if sentText { continuation.yield(mapped) } else { pending.append(mapped) }
                                if ContinuousClock.now >= deadline { throw ProviderFailure(.transient, "the deadline passed mid-stream") }
                            }
                            // A cancelled consumer ends the loop without an error: not a success.
                            if Task.isCancelled { throw CancellationError() }
                            for early in pending { continuation.yield(early) }
                            if let budget, !route.provider.local {
                                // Streams are recorded with their real usage; a provider that reports none is estimated (and says so).
                                let usage = lastUsage ?? Self.estimatedUsage(chat.messages, answer: streamedCharacters)
                                budget.settle(admission, reservationId: reservation, usage: usage, latencyMs: (ContinuousClock.now - started).nanoseconds / 1_000_000)
                            }
                            route.breaker.succeeded(permit)
                            record(latency: ContinuousClock.now - started, for: route.name)
                            continuation.finish()
                            return
                        } catch {
                            let failure = Self.failure(error)
                            last = failure
                            attempts.append(Attempt(provider: route.name, model: model, outcome: failure.description, milliseconds: (ContinuousClock.now - started).nanoseconds / 1_000_000))
                            if let budget, !route.provider.local {
                                // Text already sent was produced (and billed): record it; otherwise release.
                                // No end marker: the provider's usage so far may be partial (Anthropic's
                                // message_start says 1 output token), so the larger of it and the estimate counts.
                                let usage: TokenUsage? = sentText ? TokenUsage(
                                    inputTokens: max(lastUsage?.inputTokens ?? 0, estimatedTokens(chat.messages)),
                                    outputTokens: max(lastUsage?.outputTokens ?? 0, streamedCharacters / 4, 1), estimated: true
                                ) : nil
                                budget.settle(admission, reservationId: reservation, usage: usage, latencyMs: (ContinuousClock.now - started).nanoseconds / 1_000_000)
                            }
                            switch failure.kind {
                            // The caller's deadline (libcurl's time limit is clamped to it), not the provider's health.
                            case .transient where error is DeadlineExceeded || ContinuousClock.now >= deadline: route.breaker.released(permit)
                            case .transient: route.breaker.failed(permit, reason: failure.description, retryAfterMs: failure.retryAfterMs)
                            case .exhausted: route.breaker.exhausted(untilMs: nil, reason: failure.message)
                            case .request, .configuration, .cancelled: route.breaker.released(permit)
                            }
                            if sentText || failure.kind == .request || failure.kind == .cancelled || ContinuousClock.now >= deadline {
                                throw RoutingFailure(kind: failure.kind, message: sentText ? "\(route.name)'s stream failed after text was sent: \(failure.message)" : failure.message, attempts: attempts)
                            }
                        }
                    }
                    throw RoutingFailure(kind: last?.kind ?? .configuration, message: last == nil ? "no provider can serve this request (none configured or all circuits open)" : "every provider failed", attempts: attempts)
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            // The deadline bounds the whole stream, a provider that stalls mid-answer included:
            // each transfer's libcurl time limit ends at it (ProviderClient.stream), no timer task.
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// The budget's word on a call to `route`: local providers are always allowed (no
    /// reservation, empty id); paid ones ask the budget gate, when there is one.
    func admit(route: Route, model: String, chat: GatewayChat) async -> (Admission, AdmissionDecision) {
        let admission = Admission(
            provider: route.name, model: model, operation: chat.operation, project: chat.project, requestId: "\(chat.requestId):\(route.name)",
            estimatedInputTokens: estimatedTokens(chat.messages), maximumOutputTokens: chat.maxTokens ?? 1024
        )
        guard let budget, !route.provider.local else { return (admission, .allowed(reservationId: "")) }
        return (admission, await budget.admit(admission))
    }

    /// Each configured provider's moving-average latency (seconds), for `latency-optimized`.
    public var measuredLatency: [String: Double] { latency.withLock { $0 } }

    private func record(latency elapsed: Duration, for provider: String) {
        let seconds = Double(elapsed.nanoseconds) / 1e9
        latency.withLock { averages in
            averages[provider] = averages[provider].map { $0 * 0.8 + seconds * 0.2 } ?? seconds
        }
    }

    /// The usage of an answer whose provider reported none: the prompt's estimate and a token
    /// per 4 bytes of the answer (at least 1), marked `estimated`.
    public static func estimatedUsage(_ messages: [ChatMessage], answer bytes: Int) -> TokenUsage {
        TokenUsage(inputTokens: estimatedTokens(messages), outputTokens: max(1, bytes / 4), estimated: true)
    }

    static func failure(_ error: Error) -> ProviderFailure {
        switch error {
        case let failure as ProviderFailure: failure
        case let error as HTTPClientError: .transport(error)
        case is CancellationError: ProviderFailure(.cancelled, "cancelled")
        case is DeadlineExceeded: ProviderFailure(.transient, "the request's deadline passed")
        default: ProviderFailure(.transient, "\(error)")
        }
    }
}

/// The request's deadline passed while waiting on a provider.
struct DeadlineExceeded: Error {}

extension Duration {
    /// Whole nanoseconds.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
