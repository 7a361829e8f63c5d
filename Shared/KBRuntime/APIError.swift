import Hummingbird
import KBRPC
import NIOCore

/// The failure of an HTTP endpoint as its client sees it, in the one error body every HTTP
/// surface of the system answers with (VKB's API, the budget service's runbook endpoints):
///
///     {"error": {"status": 400, "code": "invalid_argument", "field": "name",
///                "reason": "NAME_INVALID", "message": "may hold only letters, …"}}
///
/// `status` repeats the HTTP status; `code` is a snake_case word to switch on; `field` (the
/// request field at fault) and `reason` (`RPCError.Reason`, UPPER_SNAKE) are there only when
/// known; `message` is for people. Health and metrics endpoints keep their own shapes.
public struct APIError: Error, Sendable, CustomStringConvertible {
    /// The HTTP status of the response.
    public var status: HTTPResponse.Status
    /// What kind of failure, in snake_case: `invalid_argument`, `not_found`, `unauthenticated`, …
    public var code: String
    /// The request field at fault (`name`, `body`, `events[3].cost_usd`), when one is.
    public var field: String?
    /// Why, machine-readable (`RPCError.Reason`'s set, UPPER_SNAKE), when known.
    public var reason: RPCError.Reason?
    /// What went wrong, in words a person can act on.
    public var message: String
    /// Extra headers (Retry-After on 429).
    public var headers: HTTPFields = [:]

    /// An error with an HTTP status, a code, optionally the field and reason, and a message.
    public init(_ status: HTTPResponse.Status, _ code: String, field: String? = nil, reason: RPCError.Reason? = nil, _ message: String) {
        self.status = status
        self.code = code
        self.field = field
        self.reason = reason
        self.message = message
    }

    public var description: String { field.map { "\($0): \(message)" } ?? message }

    /// A 400 naming the bad field and the rule it broke.
    public static func invalid(_ field: String, reason: RPCError.Reason? = nil, _ message: String) -> APIError {
        APIError(.badRequest, "invalid_argument", field: field, reason: reason, message)
    }

    /// An RPC failure by its code's usual HTTP meaning, keeping its field and reason. The
    /// message drops the `field: ` prefix the RPC message starts with, since `field` carries it.
    public init(_ error: RPCError) {
        let status: HTTPResponse.Status = switch error.code {
        case .invalidArgument, .outOfRange: .badRequest
        case .notFound: .notFound
        case .alreadyExists, .failedPrecondition, .aborted: .conflict
        case .resourceExhausted: .tooManyRequests
        case .unauthenticated: .unauthorized
        case .permissionDenied: .forbidden
        case .unimplemented: .notImplemented
        case .unavailable, .deadlineExceeded, .cancelled: .serviceUnavailable
        default: .internalServerError
        }
        self.init(status, error.code.name.lowercased(), field: error.field, reason: error.reason, Self.messageWithoutField(error))
    }

    /// `error`'s message without the leading `field: ` that `RPCError(_:field:reason:_:)` wrote.
    public static func messageWithoutField(_ error: RPCError) -> String {
        guard let field = error.field, error.message.hasPrefix("\(field): ") else { return error.message }
        return String(error.message.dropFirst(field.utf8.count + 2))
    }

    /// The JSON body, members in the documented order.
    public var body: String {
        var members = [#""status":\#(status.code)"#, #""code":\#(Self.quoted(code))"#]
        if let field { members.append(#""field":\#(Self.quoted(field))"#) }
        if let reason { members.append(#""reason":\#(Self.quoted(reason.rawValue))"#) }
        members.append(#""message":\#(Self.quoted(message))"#)
        return #"{"error":{"# + members.joined(separator: ",") + "}}"
    }

    /// The error as a response: `application/json`, never cached, with `headers`.
    public var response: Response {
        var response = Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: body))
        )
        for field in headers { response.headers.append(field) }
        return response
    }

    /// `text` as a JSON string literal.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
