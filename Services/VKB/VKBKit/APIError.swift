import Foundation
import Hummingbird
import KBKnowledge
import KBRPC
import KBRuntime
import NIOCore

/// VKB's meanings of failures. The error type and its JSON body are KBRuntime's `APIError`,
/// shared by every HTTP surface of the system.
extension APIError {
    /// A rule of the data model broken by a request field.
    public init(_ rule: KnowledgeRuleError) {
        self = .invalid(rule.field, reason: rule.reason, rule.rule)
    }

    /// What a graph-store failure means to the HTTP client: the field and reason travel in the
    /// RPC status; a missing relation end is 404 naming the end (`from`/`to`, as VKB's flat
    /// bodies call it); an unreachable store is 503.
    public init(_ error: RPCError, graphStore: String) {
        let message = APIError.messageWithoutField(error)
        let reason = error.reason
        switch error.code {
        case .invalidArgument: self = APIError(.badRequest, "invalid_argument", field: error.field, reason: reason, message)
        case .notFound: self = APIError(.notFound, "not_found", field: error.field, reason: reason, message)
        case .failedPrecondition:
            // `relations[0].to`, entity does not exist: the API's body names the end `to`.
            let field = error.field.flatMap { $0.split(separator: ".").last.map(String.init) }
            self = APIError(error.reason == .notFound ? .notFound : .conflict, "failed_precondition", field: field, reason: reason, message)
        case .alreadyExists: self = APIError(.conflict, "already_exists", field: error.field, reason: reason, message)
        case .resourceExhausted: self = APIError(.tooManyRequests, "resource_exhausted", error.message)
        case .unavailable, .deadlineExceeded, .cancelled:
            self = APIError(.serviceUnavailable, "graph_store_unavailable", "the graph store at \(graphStore) is unavailable (\(error.message)); start it with `kb up`")
        case .unauthenticated, .permissionDenied:
            self = APIError(.serviceUnavailable, "graph_store_unavailable", "the graph store at \(graphStore) refused VKB's token (\(error.message)); VKB and the graph store need the same KB_AUTH_TOKEN")
        default: self = APIError(.internalServerError, "internal", "\(error.code.name): \(error.message)")
        }
    }
}

/// JSON responses.
public enum JSONResponse {
    /// `value` as `application/json`, never cached.
    public static func make(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: value.bytes))
        )
    }
}
