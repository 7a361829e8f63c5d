import Synchronization

/// A provider's circuit breaker: closed (calls go), open (calls are refused until the cool-down
/// ends), half-open (a few trial calls decide).
///
/// - Closed: `failureThreshold` consecutive transient failures open it; a success resets the count.
/// - Open: calls are refused until `nextAttemptMs`. A failure reported while open (a call that
///   was already running when it opened) extends the cool-down from that failure: the deadline
///   only ever moves later (LiteLLM's bug class of a second failure keeping the first, shorter
///   deadline cannot happen here).
/// - Half-open: at most `halfOpenRequests` trial calls run at once; the first failure re-opens it
///   for a full `resetTimeout`; `halfOpenRequests` successes close it.
/// - Exhausted: a provider that answered "quota or spend exhausted" is out until the time it
///   named (or the cool-down), with no trial calls before.
///
/// Thread-safe. Time comes from an injected clock (Unix milliseconds) so tests move it.
public final class CircuitBreaker: Sendable {
    /// The breaker's settings (the operations guide's defaults per provider).
    public struct Settings: Sendable, Equatable, Codable {
        /// Consecutive failures that open the circuit.
        public var failureThreshold: Int
        /// How long an open circuit refuses calls, in milliseconds.
        public var resetTimeoutMs: Int64
        /// Trial calls allowed at once while half-open, and the successes that close it.
        public var halfOpenRequests: Int

        /// The guide's names: `failureThreshold`, `resetTimeout` (ms), `halfOpenRequests`.
        enum CodingKeys: String, CodingKey {
            case failureThreshold, resetTimeoutMs = "resetTimeout", halfOpenRequests
        }

        /// Creates settings.
        public init(failureThreshold: Int, resetTimeoutMs: Int64, halfOpenRequests: Int) {
            self.failureThreshold = failureThreshold
            self.resetTimeoutMs = resetTimeoutMs
            self.halfOpenRequests = halfOpenRequests
        }

        /// groq's (and every provider's without its own): 5 failures, 60 s, 3 trials.
        public static let standard = Settings(failureThreshold: 5, resetTimeoutMs: 60_000, halfOpenRequests: 3)
        /// openrouter's: more sensitive, 3 failures, 120 s, 2 trials.
        public static let openrouter = Settings(failureThreshold: 3, resetTimeoutMs: 120_000, halfOpenRequests: 2)
        /// A local server's: lenient, 10 failures, 30 s, 5 trials.
        public static let local = Settings(failureThreshold: 10, resetTimeoutMs: 30_000, halfOpenRequests: 5)

        /// The guide's defaults for a provider name.
        public static func defaults(for provider: String, local: Bool) -> Settings {
            if local { return .local }
            return provider == "openrouter" ? .openrouter : .standard
        }
    }

    /// The breaker's state.
    public enum State: Int, Sendable, Equatable {
        case closed = 0
        case halfOpen = 1
        case open = 2

        /// The name the guide's JSON uses (`CLOSED`, `HALF_OPEN`, `OPEN`).
        public var name: String {
            switch self {
            case .closed: "CLOSED"
            case .halfOpen: "HALF_OPEN"
            case .open: "OPEN"
            }
        }
    }

    /// What a caller sees of the breaker.
    public struct Snapshot: Sendable, Equatable {
        public var state: State
        /// Consecutive failures (closed), or the failures that opened it.
        public var failures: Int
        /// Unix ms of the last failure (0: none).
        public var lastFailureMs: Int64
        /// Unix ms when an open circuit lets a trial through (0 unless open).
        public var nextAttemptMs: Int64
        /// Why it is open, when it is ("5 consecutive failures: ...", "quota exhausted until ...").
        public var reason: String
    }

    /// A permission to call, given by `acquire`; report its outcome exactly once.
    public struct Permit: Sendable {
        let trial: Bool
    }

    public let provider: String
    public let settings: Settings
    private let clock: @Sendable () -> Int64
    private let state: Mutex<Inner>

    private struct Inner {
        var state: State = .closed
        var failures = 0
        var lastFailureMs: Int64 = 0
        var nextAttemptMs: Int64 = 0
        var reason = ""
        var exhausted = false
        var trialsRunning = 0
        var trialSuccesses = 0
    }

    /// Creates a closed breaker.
    public init(provider: String, settings: Settings, clock: @escaping @Sendable () -> Int64) {
        self.provider = provider
        self.settings = settings
        self.clock = clock
        state = Mutex(Inner())
    }

    /// The state now (an open circuit whose cool-down has passed reads as half-open).
    public var snapshot: Snapshot {
        let now = clock()
        return state.withLock { inner in
            Self.advance(&inner, now: now)
            return Snapshot(
                state: inner.state, failures: inner.failures, lastFailureMs: inner.lastFailureMs,
                nextAttemptMs: inner.state == .open ? inner.nextAttemptMs : 0, reason: inner.reason
            )
        }
    }

    /// Asks to make a call: a permit, or nil when the circuit refuses (open, or half-open with
    /// every trial slot taken).
    public func acquire() -> Permit? {
        let now = clock()
        return state.withLock { inner in
            Self.advance(&inner, now: now)
            switch inner.state {
            case .closed:
                return Permit(trial: false)
            case .open:
                return nil
            case .halfOpen:
                guard inner.trialsRunning < settings.halfOpenRequests else { return nil }
                inner.trialsRunning += 1
                return Permit(trial: true)
            }
        }
    }

    /// The call succeeded.
    public func succeeded(_ permit: Permit) {
        state.withLock { inner in
            if permit.trial { inner.trialsRunning = max(0, inner.trialsRunning - 1) }
            switch inner.state {
            case .closed:
                inner.failures = 0
            case .halfOpen:
                // Only trial calls decide; a call that started before the circuit opened does not.
                guard permit.trial else { return }
                inner.trialSuccesses += 1
                if inner.trialSuccesses >= settings.halfOpenRequests {
                    inner = Inner()
                }
            case .open:
                break  // a call from before it opened: the cool-down stands
            }
        }
    }

    /// The call failed transiently (5xx, 429, overload, connection, timeout, cut stream).
    /// `retryAfterMs`: a cool-down the provider asked for (`retry-after`), honoured when longer.
    public func failed(_ permit: Permit, reason: String, retryAfterMs: Int64? = nil) {
        let now = clock()
        state.withLock { inner in
            if permit.trial { inner.trialsRunning = max(0, inner.trialsRunning - 1) }
            inner.lastFailureMs = now
            let coolDown = max(settings.resetTimeoutMs, retryAfterMs ?? 0)
            switch inner.state {
            case .closed:
                inner.failures += 1
                if inner.failures >= settings.failureThreshold {
                    Self.open(&inner, until: now + coolDown, reason: "\(inner.failures) consecutive failures, the last: \(reason)")
                }
            case .halfOpen:
                inner.failures += 1
                Self.open(&inner, until: now + coolDown, reason: "a trial call failed: \(reason)")
            case .open:
                // Extend, never shorten.
                inner.failures += 1
                if !inner.exhausted { inner.nextAttemptMs = max(inner.nextAttemptMs, now + coolDown) }
            }
        }
    }

    /// The call failed for a reason that is not the provider's health (a bad request, a wrong
    /// key): the breaker does not count it, but a trial slot is given back.
    public func released(_ permit: Permit) {
        guard permit.trial else { return }
        state.withLock { inner in inner.trialsRunning = max(0, inner.trialsRunning - 1) }
    }

    /// The provider's quota or spend is exhausted: out until `untilMs` (or a cool-down when it
    /// named no time), with no trial calls before then.
    public func exhausted(untilMs: Int64?, reason: String) {
        let now = clock()
        state.withLock { inner in
            inner.lastFailureMs = now
            Self.open(&inner, until: max(untilMs ?? 0, now + settings.resetTimeoutMs, inner.state == .open ? inner.nextAttemptMs : 0), reason: "quota exhausted: \(reason)")
            inner.exhausted = true
        }
    }

    /// An operator's reset: closed, counters cleared.
    public func reset() {
        state.withLock { inner in inner = Inner() }
    }

    private static func open(_ inner: inout Inner, until: Int64, reason: String) {
        inner.state = .open
        inner.nextAttemptMs = until
        inner.reason = reason
        inner.trialSuccesses = 0
        inner.exhausted = false
    }

    private static func advance(_ inner: inout Inner, now: Int64) {
        if inner.state == .open, now >= inner.nextAttemptMs {
            inner.state = .halfOpen
            inner.trialSuccesses = 0
            inner.trialsRunning = 0
            inner.exhausted = false
        }
    }
}
