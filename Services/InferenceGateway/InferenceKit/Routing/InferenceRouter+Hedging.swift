import Foundation

extension InferenceRouter {
    /// How one provider's part of a request ended.
    struct ProviderRun: Sendable {
        enum Stop: Error {
            /// Try the next provider (with the failure that made this one give up, if any).
            case next(ProviderFailure?)
            /// The caller went away.
            case cancelled
            /// The request itself is at fault: no other provider will take it either.
            case refused(ProviderFailure)
        }
        var provider: String
        var attempts: [Attempt] = []
        var providerNanoseconds: Int64 = 0
        /// USD spent without an answer: a hedged call cancelled after it reached the provider
        /// (which bills the prompt); part of the request's cost.
        var spentUSD: Double = 0
        var outcome: Result<(result: ChatResult, cost: Double), Stop> = .failure(.next(nil))
    }

    /// Hedged requests: `first` at once, `second` after `delay` unless `first` answered (or
    /// at once when `first` fails sooner). The first answer wins and the other call is
    /// cancelled (its breaker permit and budget reservation released). Returns the winner (nil:
    /// neither answered) and the other run(s), whose attempts are part of the answer's list.
    func hedged(_ first: (route: Route, model: String), _ second: (route: Route, model: String), after delay: Duration, chat: GatewayChat, deadline: ContinuousClock.Instant) async throws -> (winner: ProviderRun?, others: [ProviderRun]) {
        enum Event: Sendable { case finished(ProviderRun), hedge }
        return try await withThrowingTaskGroup(of: Event.self) { group in
            group.addTask { .finished(await self.callProvider(first.route, model: first.model, chat: chat, deadline: deadline)) }
            var secondStarted = false
            func startSecond() {
                guard !secondStarted else { return }
                secondStarted = true
                group.addTask { .finished(await self.callProvider(second.route, model: second.model, chat: chat, deadline: deadline)) }
            }
            if delay <= .zero { startSecond() } else {
                group.addTask {
                    try? await Task.sleep(for: delay)
                    return .hedge
                }
            }
            var others: [ProviderRun] = []
            var running = secondStarted ? 2 : 1
            while running > 0, let event = try await group.next() {
                switch event {
                case .hedge:
                    if !secondStarted {
                        startSecond()
                        running += 1
                    }
                case .finished(let run):
                    running -= 1
                    switch run.outcome {
                    case .success:
                        group.cancelAll()
                        // The loser's run ends as cancelled: its attempts say so.
                        while let rest = try await group.next() {
                            if case .finished(var loser) = rest {
                                loser.attempts = loser.attempts.map { attempt in
                                    var attempt = attempt
                                    if attempt.outcome.hasPrefix("cancelled") { attempt.outcome = "cancelled: \(run.provider) answered first (hedged request)" }
                                    return attempt
                                }
                                others.append(loser)
                            }
                        }
                        return (run, others)
                    case .failure(.cancelled):
                        group.cancelAll()
                        throw CancellationError()
                    case .failure(.refused(let failure)):
                        group.cancelAll()
                        throw RoutingFailure(kind: .request, message: "\(run.provider) refused the request: \(failure.message)", attempts: (others + [run]).flatMap(\.attempts))
                    case .failure(.next):
                        others.append(run)
                        if !secondStarted {
                            startSecond()
                            running += 1
                        }
                    }
                }
            }
            group.cancelAll()
            return (nil, others)
        }
    }
}
