import Foundation

/// One HTTP request: method, URL, headers, a body from memory and its time limits.
public struct HTTPRequest: Sendable {
    /// `GET`, `POST`, ...
    public var method: String
    /// The full URL (`http://` or `https://`).
    public var url: String
    /// Header fields in order; a name may repeat.
    public var headers: [(name: String, value: String)]
    /// The request body, sent from memory (nil: no body).
    public var body: [UInt8]?
    /// Time limits of this request.
    public var timeouts: HTTPTimeouts

    /// Creates a request.
    public init(method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil, timeouts: HTTPTimeouts = HTTPTimeouts()) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeouts = timeouts
    }

    /// A `POST` of a JSON body.
    public static func postJSON(_ url: String, body: [UInt8], headers: [(name: String, value: String)] = [], timeouts: HTTPTimeouts = HTTPTimeouts()) -> HTTPRequest {
        HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/json")] + headers, body: body, timeouts: timeouts)
    }
}

/// The time limits of a request. A limit of zero is no limit.
public struct HTTPTimeouts: Sendable, Equatable {
    /// How long connecting (TCP and TLS) may take.
    public var connect: Duration
    /// How long the whole transfer may take, first byte to last (streams included).
    public var total: Duration
    /// A transfer slower than `lowSpeedBytesPerSecond` for `lowSpeedTime` is aborted: it catches
    /// a server that hangs or drips, whatever the total limit.
    public var lowSpeedBytesPerSecond: Int
    /// See `lowSpeedBytesPerSecond`.
    public var lowSpeedTime: Duration

    /// Creates limits; the defaults suit an LLM provider (long answers, no silence over 60 s).
    public init(connect: Duration = .seconds(10), total: Duration = .seconds(300), lowSpeedBytesPerSecond: Int = 1, lowSpeedTime: Duration = .seconds(60)) {
        self.connect = connect
        self.total = total
        self.lowSpeedBytesPerSecond = lowSpeedBytesPerSecond
        self.lowSpeedTime = lowSpeedTime
    }
}

/// The status line and headers of a response.
public struct HTTPResponseHead: Sendable {
    /// The status code (200, 429, ...).
    public var status: Int
    /// The protocol the server answered with: `HTTP/1.1`, `HTTP/2`.
    public var version: String
    /// Header fields in order, names as the server sent them.
    public var headers: [(name: String, value: String)]

    /// Creates a head (tests, mock answers).
    public init(status: Int, version: String = "HTTP/1.1", headers: [(name: String, value: String)] = []) {
        self.status = status
        self.version = version
        self.headers = headers
    }

    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.isHeaderName(name) }?.value
    }
}

extension String {
    /// Whether this header name is `name` up to ASCII case (header names are ASCII tokens;
    /// Foundation's `caseInsensitiveCompare` went through CFString on every call).
    func isHeaderName(_ name: String) -> Bool {
        let a = utf8, b = name.utf8
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { x, y in
            x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z"))
        }
    }
}

/// Why a request failed (the server's own error statuses are answers, not errors).
public struct HTTPClientError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The kind of failure, as a caller decides on retrying.
    public enum Kind: String, Sendable {
        /// The connection could not be made (refused, unreachable, name not resolved, TLS failed).
        case connect
        /// The total time limit passed.
        case timedOut
        /// The server sent less than the low-speed limit for the low-speed time (hanging or dripping).
        case tooSlow
        /// The connection broke before the answer was complete (reset, closed mid-body, nothing sent).
        case connectionLost
        /// The caller cancelled the request (its task was cancelled or it stopped reading the body).
        case cancelled
        /// The answer was larger than the caller accepts.
        case tooLarge
        /// The request is not valid (bad URL, unsupported scheme).
        case invalidRequest
        /// The client was shut down.
        case shutDown
        /// Anything else libcurl reports.
        case other
    }

    /// The kind of failure.
    public let kind: Kind
    /// A person-readable explanation (libcurl's message where it has one; never a header value).
    public let message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// Whether trying again later can succeed (connection problems, time limits).
    public var isTransient: Bool {
        switch kind {
        case .connect, .timedOut, .tooSlow, .connectionLost: true
        case .cancelled, .tooLarge, .invalidRequest, .shutDown, .other: false
        }
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}
