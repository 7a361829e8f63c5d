import Foundation
import KBProto
import SwiftProtobuf

/// Where a synchronous handler runs.
public enum RPCExecution: Sendable, Hashable {
    /// On the connection's event loop, answered before the next frame is read: for cheap,
    /// non-blocking work (health, in-memory reads). A handler placed here must never block or
    /// wait: it would stall every connection that shares the loop.
    case eventLoop
    /// On the server's bounded thread pool (`RPCServer.Configuration.blockingPool`): for blocking
    /// storage calls (LevelDB, SQLite, HNSW searches), so they never stall an event loop.
    case threadPool
}

/// Maps method names to typed handlers: each handler is a function from request message to
/// response message, declared with where it runs.
public struct RPCRouter: Sendable {
    /// A handler with its message types erased: payload bytes in, payload bytes out.
    enum ErasedHandler: Sendable {
        /// Runs synchronously on the event loop (`.eventLoop`) or the thread pool (`.threadPool`).
        case sync(RPCExecution, @Sendable (_ payload: Data, _ context: RPCContext) throws -> [UInt8])
        /// Runs on a Swift task of its own; `endsAtShutdown`: the task is cancelled when the
        /// server starts shutting down (a long poll), and what it then returns is the answer.
        case task(@Sendable (_ payload: Data, _ context: RPCContext) async throws -> [UInt8], endsAtShutdown: Bool)
    }

    private(set) var handlers: [String: ErasedHandler] = [:]

    /// Creates an empty router.
    public init() {}

    /// Registers an asynchronous handler for `method`, run on a Swift task of its own: for work
    /// that awaits (a group commit, a call to another service), replacing any earlier one.
    ///
    /// A payload that does not decode as `Request` never reaches the handler: the caller gets
    /// `INVALID_ARGUMENT`. An `RPCError` thrown by the handler goes back to the caller as is; any
    /// other error becomes `INTERNAL` (and is logged), so internals do not leak.
    ///
    /// `endsAtShutdown` is for handlers that wait for something to happen (long polls): when
    /// the server starts shutting down their task is cancelled at once, instead of holding the
    /// shutdown up for the grace period, and the handler answers with what it has.
    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        endsAtShutdown: Bool = false,
        _ handler: @escaping @Sendable (Request, RPCContext) async throws -> Response
    ) {
        handlers[method.name] = .task({ payload, context in
            try await handler(Self.decode(payload), context).serializedBytes()
        }, endsAtShutdown: endsAtShutdown)
    }

    /// Registers a synchronous handler for `method` that runs where `execution` says: inline on
    /// the event loop, or on the blocking thread pool. Decoding and errors as in the async form.
    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        on execution: RPCExecution,
        _ handler: @escaping @Sendable (Request, RPCContext) throws -> Response
    ) {
        handlers[method.name] = .sync(execution) { payload, context in
            try handler(Self.decode(payload), context).serializedBytes()
        }
    }

    private static func decode<Request: SwiftProtobuf.Message>(_ payload: Data) throws -> Request {
        do {
            return try Request(serializedBytes: payload)
        } catch {
            throw RPCError(.invalidArgument, "payload does not decode as \(Request.protoMessageName): \(error)")
        }
    }

    /// The registered method names, sorted.
    public var methods: [String] { handlers.keys.sorted() }

    /// Whether a handler is registered for the name.
    public func serves(_ method: String) -> Bool { handlers[method] != nil }
}
