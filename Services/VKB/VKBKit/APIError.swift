import Foundation
import Hummingbird
import KBKnowledge
import KBRPC
import NIOCore

/// An API failure as the client sees it: an HTTP status and a JSON body
/// `{"error": {"status": 400, "code": "invalid_argument", "field": "name", "message": "…"}}`.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var field: String?
    public var message: String
    /// Extra headers (Retry-After on 429).
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, field: String? = nil, _ message: String) {
        self.status = status
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String { field.map { "\($0): \(message)" } ?? message }

    /// A 400 naming the bad field.
    public static func invalid(_ field: String, _ message: String) -> APIError {
        APIError(.badRequest, "invalid_argument", field: field, message)
    }

    /// A rule of the data model broken by a request field.
    public init(_ rule: KnowledgeRuleError) {
        self = .invalid(rule.field, rule.rule)
    }

    /// What a graph-store failure means to the HTTP client. `INVALID_ARGUMENT` messages are
    /// `field: rule` (the RPC kit's convention) and keep the field; an unreachable store is 503.
    public init(_ error: RPCError, graphStore: String) {
        switch error.code {
        case .invalidArgument:
            if let colon = error.message.range(of: ": "), !error.message[..<colon.lowerBound].contains(" ") {
                self = .invalid(String(error.message[..<colon.lowerBound]), String(error.message[colon.upperBound...]))
            } else {
                self = APIError(.badRequest, "invalid_argument", error.message)
            }
        case .notFound: self = APIError(.notFound, "not_found", error.message)
        case .failedPrecondition:
            // "relations[0].to: entity 'X' does not exist in team 'T'": a missing end.
            var field: String?
            var message = error.message
            if let colon = message.range(of: ": "), !message[..<colon.lowerBound].contains(" ") {
                field = message[..<colon.lowerBound].split(separator: ".").last.map(String.init)
                message = String(message[colon.upperBound...])
            }
            self = APIError(message.contains("does not exist") ? .notFound : .conflict, "failed_precondition", field: field, message)
        case .alreadyExists: self = APIError(.conflict, "already_exists", error.message)
        case .resourceExhausted: self = APIError(.tooManyRequests, "resource_exhausted", error.message)
        case .unavailable, .deadlineExceeded, .cancelled:
            self = APIError(.serviceUnavailable, "graph_store_unavailable", "the graph store at \(graphStore) is unavailable (\(error.message)); start it with `kb up`")
        case .unauthenticated, .permissionDenied:
            self = APIError(.serviceUnavailable, "graph_store_unavailable", "the graph store at \(graphStore) refused VKB's token (\(error.message)); VKB and the graph store need the same KB_AUTH_TOKEN")
        default: self = APIError(.internalServerError, "internal", "\(error.code.name): \(error.message)")
        }
    }

    var json: JSONValue {
        var members: [(String, JSONValue)] = [("status", .integer(Int64(status.code))), ("code", .string(code))]
        if let field { members.append(("field", .string(field))) }
        members.append(("message", .string(message)))
        return .object([("error", .object(members))])
    }

    /// The error as a response.
    public var response: Response {
        var response = JSONResponse.make(json, status: status)
        for field in headers { response.headers.append(field) }
        return response
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
