import Logging
import Synchronization

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
    /// Set when the server gave up on the request (its deadline passed, its connection closed,
    /// the server stopped), so work on a thread pool can stop as a cancelled task would.
    let cancellation: RPCCancellation

    /// Creates a context; the server makes one per request, tests may make their own.
    public init(method: String, metadata: [String: String] = [:], deadline: ContinuousClock.Instant, peer: String = "local", logger: Logger) {
        self.init(method: method, metadata: metadata, deadline: deadline, peer: peer, logger: logger, cancellation: RPCCancellation())
    }

    init(method: String, metadata: [String: String], deadline: ContinuousClock.Instant, peer: String, logger: Logger, cancellation: RPCCancellation) {
        self.method = method
        self.metadata = metadata
        self.deadline = deadline
        self.peer = peer
        self.logger = logger
        self.cancellation = cancellation
    }

    /// The time left before the deadline (zero when it has passed).
    public var timeRemaining: Duration {
        max(.zero, deadline - ContinuousClock.now)
    }

    /// Whether nobody waits for the answer any more: the server cancelled the request, its task
    /// was cancelled, or its deadline has passed. Long loops (scans, traversals, searches)
    /// check it and stop.
    public var isCancelled: Bool {
        cancellation.isCancelled || Task.isCancelled || ContinuousClock.now >= deadline
    }

    /// Throws `CancellationError` when `isCancelled`; the server then answers with the status it
    /// already sent (`DEADLINE_EXCEEDED`) or `CANCELLED`.
    public func checkCancellation() throws {
        if isCancelled { throw CancellationError() }
    }
}

/// A request's cancellation flag, shared between the server and the thread running the handler.
final class RPCCancellation: Sendable {
    private let flag = Atomic<Bool>(false)

    /// Whether the request was cancelled.
    var isCancelled: Bool { flag.load(ordering: .relaxed) }

    /// Cancels the request.
    func cancel() { flag.store(true, ordering: .relaxed) }
}
