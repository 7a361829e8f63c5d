import Foundation
import KBHTTPClient

/// Embeddings a provider computed, who computed them and what they cost.
public struct GatewayEmbeddings: Sendable {
    public var result: EmbeddingResult
    public var provider: String
    public var attempts: [Attempt]
    /// USD, priced by budget-service's table (0 for local providers).
    public var costUSD: Double
}

extension InferenceRouter {
    /// The providers serving embedding model `model` (`name` or `provider/name`), in the active
    /// strategy's order, with the model each is asked for. Empty: no provider serves it.
    public func embeddingPlan(model: String, localOnly: Bool) -> [(route: Route, model: String)] {
        var name = model
        var only: String?
        if let slash = model.firstIndex(of: "/"), routes[String(model[..<slash])] != nil {
            only = String(model[..<slash])
            name = String(model[model.index(after: slash)...])
        }
        let order = (file.strategies[file.activeStrategy]?.priority ?? []) + routes.keys.sorted()
        var seen: Set<String> = []
        return order.compactMap { provider in
            guard seen.insert(provider).inserted, let route = routes[provider], only == nil || only == provider else { return nil }
            guard route.provider.embeddingModels.contains(name) else { return nil }
            if (localOnly || budget?.mode == .localOnly), !route.provider.local { return nil }
            return (route, name)
        }
    }

    /// Embeddings of `texts` from the first provider serving `model` that gives them: breakers,
    /// budget admission (paid providers: the texts' estimated tokens) and the real cost after.
    /// One try per provider; a transient failure moves on to the next.
    public func embed(_ texts: [String], model: String, dimensions: Int?, localOnly: Bool = false, requestId: String = GatewayChat.newRequestId(), project: String = "", deadline: ContinuousClock.Instant) async throws -> GatewayEmbeddings {
        var attempts: [Attempt] = []
        var last: ProviderFailure?
        let messages = texts.map { ChatMessage(role: "user", content: $0) }
        let plan = embeddingPlan(model: model, localOnly: localOnly)
        guard !plan.isEmpty else {
            throw RoutingFailure(kind: .request, message: "no configured provider serves the embedding model \(model.debugDescription) (see embedding_models in the providers file)", attempts: [])
        }
        for (route, name) in plan {
            guard let client = route.client else {
                attempts.append(Attempt(provider: route.name, model: name, outcome: "skipped: not configured (\(route.provider.apiKeyEnv ?? "no key") is not set)", milliseconds: 0))
                continue
            }
            var chat = GatewayChat(messages: messages, model: name, requestId: requestId, operation: "embed", project: project)
            chat.maxTokens = 0
            let (admission, admitted) = await admit(route: route, model: name, chat: chat)
            guard case .allowed(let reservation) = admitted else {
                if case .denied(let reason) = admitted {
                    attempts.append(Attempt(provider: route.name, model: name, outcome: "skipped: \(reason)", milliseconds: 0))
                    last = ProviderFailure(.exhausted, reason)
                }
                continue
            }
            guard let permit = route.breaker.acquire() else {
                budget?.settle(admission, reservationId: reservation, usage: nil, latencyMs: 0)
                attempts.append(Attempt(provider: route.name, model: name, outcome: "skipped: circuit open", milliseconds: 0))
                continue
            }
            let started = ContinuousClock.now
            do {
                let result = try await client.embed(texts, model: name, dimensions: dimensions, deadline: deadline)
                let elapsed = ContinuousClock.now - started
                route.breaker.succeeded(permit)
                attempts.append(Attempt(provider: route.name, model: name, outcome: "ok", milliseconds: elapsed.nanoseconds / 1_000_000))
                var cost = 0.0
                if let budget, !route.provider.local {
                    let usage = result.inputTokens > 0 ? TokenUsage(inputTokens: result.inputTokens, outputTokens: 0) : TokenUsage(inputTokens: estimatedTokens(messages), outputTokens: 0, estimated: true)
                    cost = budget.settle(admission, reservationId: reservation, usage: usage, latencyMs: elapsed.nanoseconds / 1_000_000) ?? 0
                }
                return GatewayEmbeddings(result: result, provider: route.name, attempts: attempts, costUSD: cost)
            } catch {
                let elapsed = ContinuousClock.now - started
                budget?.settle(admission, reservationId: reservation, usage: nil, latencyMs: 0)
                let failure = Self.failure(error)
                last = failure
                attempts.append(Attempt(provider: route.name, model: name, outcome: failure.description, milliseconds: elapsed.nanoseconds / 1_000_000))
                switch failure.kind {
                case .cancelled:
                    route.breaker.released(permit)
                    throw CancellationError()
                case .request:
                    route.breaker.released(permit)
                    throw RoutingFailure(kind: .request, message: "\(route.name) refused the request: \(failure.message)", attempts: attempts)
                case .configuration:
                    route.breaker.released(permit)
                case .exhausted:
                    route.breaker.exhausted(untilMs: failure.retryAfterMs.map { Int64(Date().timeIntervalSince1970 * 1000) + min($0, 86_400_000) }, reason: failure.message)
                case .transient:
                    if error is DeadlineExceeded || ContinuousClock.now >= deadline {
                        route.breaker.released(permit)
                        throw RoutingFailure(kind: .transient, message: "the deadline passed before a provider answered", attempts: attempts)
                    }
                    route.breaker.failed(permit, reason: failure.description, retryAfterMs: failure.retryAfterMs)
                }
            }
        }
        throw RoutingFailure(kind: last?.kind ?? .configuration, message: last == nil ? "no provider can serve the embedding model \(model.debugDescription) (none configured or all circuits open)" : "every provider failed", attempts: attempts)
    }
}
