import Logging

/// What a handler knows about the call it serves.
public struct RPCContext: Sendable {
    /// The full method name, e.g. `kb.graph.v1.GraphStore/PutEntities`.
    public let method: String
    /// The request's metadata (`authorization`, `trace-id`, ...).
    public let metadata: [String: String]
    /// When the caller stops waiting; handlers doing long work should check it.
    public let deadline: ContinuousClock.Instant
    /// The remote address, for logs.
    public let peer: String
    /// A logger carrying the method, request id and trace id.
    public var logger: Logger

    /// Creates a context; the server makes one per request, tests may make their own.
    public init(method: String, metadata: [String: String] = [:], deadline: ContinuousClock.Instant, peer: String = "local", logger: Logger) {
        self.method = method
        self.metadata = metadata
        self.deadline = deadline
        self.peer = peer
        self.logger = logger
    }

    /// The time left before the deadline (zero when it has passed).
    public var timeRemaining: Duration {
        max(.zero, deadline - ContinuousClock.now)
    }
}
