import Foundation
import KBProto
import SwiftProtobuf

/// Maps method names to typed handlers: each handler is a function from request message to response message.
public struct RPCRouter: Sendable {
    /// A handler with its message types erased: payload bytes in, payload bytes out.
    typealias ErasedHandler = @Sendable (_ payload: Data, _ context: RPCContext) async throws -> [UInt8]

    private(set) var handlers: [String: ErasedHandler] = [:]

    /// Creates an empty router.
    public init() {}

    /// Registers the handler for `method`, replacing any earlier one.
    ///
    /// A payload that does not decode as `Request` never reaches the handler: the caller gets
    /// `INVALID_ARGUMENT`. An `RPCError` thrown by the handler goes back to the caller as is; any
    /// other error becomes `INTERNAL` (and is logged), so internals do not leak.
    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ handler: @escaping @Sendable (Request, RPCContext) async throws -> Response
    ) {
        handlers[method.name] = { payload, context in
            let request: Request
            do {
                request = try Request(serializedBytes: payload)
            } catch {
                throw RPCError(.invalidArgument, "payload does not decode as \(Request.protoMessageName): \(error)")
            }
            return try await handler(request, context).serializedBytes()
        }
    }

    /// The registered method names, sorted.
    public var methods: [String] { handlers.keys.sorted() }

    /// Whether a handler is registered for the name.
    public func serves(_ method: String) -> Bool { handlers[method] != nil }
}
