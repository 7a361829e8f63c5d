import InferenceKit
import Synchronization
import Testing

/// A clock the test moves (Unix milliseconds).
final class TestClock: Sendable {
    private let now = Atomic<Int64>(1_000_000)
    var ms: Int64 { now.load(ordering: .relaxed) }
    func advance(_ ms: Int64) { now.add(ms, ordering: .relaxed) }
    var function: @Sendable () -> Int64 { { self.ms } }
}

@Suite("Circuit breaker: closed, open, half-open, exhausted")
struct CircuitBreakerTests {
    @Test("the guide's defaults per provider")
    func defaults() {
        #expect(CircuitBreaker.Settings.defaults(for: "groq", local: false) == .init(failureThreshold: 5, resetTimeoutMs: 60_000, halfOpenRequests: 3))
        #expect(CircuitBreaker.Settings.defaults(for: "openrouter", local: false) == .init(failureThreshold: 3, resetTimeoutMs: 120_000, halfOpenRequests: 2))
        #expect(CircuitBreaker.Settings.defaults(for: "local", local: true) == .init(failureThreshold: 10, resetTimeoutMs: 30_000, halfOpenRequests: 5))
        #expect(CircuitBreaker.Settings.defaults(for: "anthropic", local: false) == .standard)
    }

    @Test("failures open it at the threshold; a success in between resets the count")
    func opensAtThreshold() throws {
        let clock = TestClock()
        let breaker = CircuitBreaker(provider: "groq", settings: .standard, clock: clock.function)
        for _ in 0..<4 { breaker.failed(try #require(breaker.acquire()), reason: "HTTP 503") }
        breaker.succeeded(try #require(breaker.acquire()))
        #expect(breaker.snapshot.failures == 0)
        for _ in 0..<4 { breaker.failed(try #require(breaker.acquire()), reason: "HTTP 503") }
        #expect(breaker.snapshot.state == .closed)
        breaker.failed(try #require(breaker.acquire()), reason: "HTTP 503")
        let open = breaker.snapshot
        #expect(open.state == .open)
        #expect(open.nextAttemptMs == clock.ms + 60_000)
        #expect(open.lastFailureMs == clock.ms)
        #expect(open.reason.contains("5 consecutive failures"))
        #expect(breaker.acquire() == nil)
    }

    @Test("a failure during the cool-down extends it, never shortens it; retry-after longer than the cool-down is honoured")
    func coolDownExtends() throws {
        let clock = TestClock()
        let breaker = CircuitBreaker(provider: "openrouter", settings: .openrouter, clock: clock.function)
        var inFlight: [CircuitBreaker.Permit] = []
        for _ in 0..<4 { inFlight.append(try #require(breaker.acquire())) }
        for _ in 0..<3 { breaker.failed(inFlight.removeFirst(), reason: "HTTP 500") }
        let firstDeadline = breaker.snapshot.nextAttemptMs
        #expect(firstDeadline == clock.ms + 120_000)
        // A call that was already running fails 30 s later: the cool-down now ends 120 s after it.
        clock.advance(30_000)
        breaker.failed(inFlight.removeFirst(), reason: "HTTP 500")
        #expect(breaker.snapshot.nextAttemptMs == clock.ms + 120_000)
        #expect(breaker.snapshot.nextAttemptMs > firstDeadline)
        clock.advance(119_999)
        #expect(breaker.acquire() == nil, "still inside the extended cool-down")

        let other = CircuitBreaker(provider: "groq", settings: .standard, clock: clock.function)
        for _ in 0..<5 { other.failed(try #require(other.acquire()), reason: "429", retryAfterMs: 300_000) }
        #expect(other.snapshot.nextAttemptMs == clock.ms + 300_000)
    }

    @Test("half-open lets a bounded number of trials through; one failure re-opens for a full cool-down; enough successes close it")
    func halfOpen() throws {
        let clock = TestClock()
        let breaker = CircuitBreaker(provider: "groq", settings: .standard, clock: clock.function)
        for _ in 0..<5 { breaker.failed(try #require(breaker.acquire()), reason: "timeout") }
        clock.advance(60_000)
        #expect(breaker.snapshot.state == .halfOpen)
        let trials = (0..<3).compactMap { _ in breaker.acquire() }
        #expect(trials.count == 3)
        #expect(breaker.acquire() == nil, "a fourth trial while three run")
        breaker.failed(trials[0], reason: "timeout")
        #expect(breaker.snapshot.state == .open)
        #expect(breaker.snapshot.nextAttemptMs == clock.ms + 60_000)
        breaker.succeeded(trials[1])
        breaker.succeeded(trials[2])
        #expect(breaker.snapshot.state == .open, "successes of trials started before it re-opened do not close it")

        clock.advance(60_000)
        for _ in 0..<3 {
            let permit = try #require(breaker.acquire())
            breaker.succeeded(permit)
        }
        #expect(breaker.snapshot.state == .closed)
        #expect(breaker.snapshot.failures == 0)
    }

    @Test("not the provider's fault (bad request, refused key): not counted, the trial slot comes back")
    func released() throws {
        let clock = TestClock()
        let breaker = CircuitBreaker(provider: "groq", settings: .standard, clock: clock.function)
        for _ in 0..<20 { breaker.released(try #require(breaker.acquire())) }
        #expect(breaker.snapshot.state == .closed && breaker.snapshot.failures == 0)
    }

    @Test("quota exhausted: out until the named time with no trial before it; an operator reset closes it")
    func exhausted() throws {
        let clock = TestClock()
        let breaker = CircuitBreaker(provider: "openai", settings: .standard, clock: clock.function)
        breaker.exhausted(untilMs: clock.ms + 3_600_000, reason: "insufficient_quota")
        #expect(breaker.snapshot.state == .open)
        #expect(breaker.snapshot.reason.contains("quota"))
        clock.advance(3_599_000)
        #expect(breaker.acquire() == nil)
        breaker.reset()
        #expect(breaker.snapshot.state == .closed)
        #expect(breaker.acquire() != nil)
    }
}
