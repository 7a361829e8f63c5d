import Foundation
import Hummingbird

/// What every HTTP surface of the system (VKB, each service's admin port) checks before a route
/// runs, so another web page open in the operator's browser cannot read or change anything:
///
/// - the `Host` must be in the allow-list (`HTTPHostAllowList`, `KB_HTTP_ALLOWED_HOSTS`), else
///   421 `misdirected_request` (DNS rebinding). Probes and scrapers (`GET /health`,
///   `/health/live`, `/health/ready`, `/metrics`) are exempt: Kubernetes and Prometheus name the
///   pod's address, and these answers hold no knowledge;
/// - a write (POST, PUT, PATCH, DELETE) with an `Origin` must come from an allowed origin
///   (`http://<allowed host>:<port>`, scheme compared too), else 403 `cross_origin`;
/// - a write that carries a `Content-Type`, or any body, must say `application/json` (parameters
///   such as `; charset=utf-8` allowed, nothing else: `application/jsonx` is refused), else 415:
///   a cross-site form or a "simple" `text/plain` request cannot say it, so it cannot slip past
///   the browser's preflight.
///
/// One implementation: VKB's `SecurityMiddleware` calls `refusal(for:)` first; the admin router
/// uses it as a middleware (`HTTPRequestGuard.Middleware`).
public struct HTTPRequestGuard: Sendable {
    /// The allowed hosts and origins.
    public let allowList: HTTPHostAllowList

    /// A guard over `allowList`.
    public init(allowList: HTTPHostAllowList) {
        self.allowList = allowList
    }

    /// Paths a probe or a scraper reads by the pod's address.
    static let probePaths: Set<String> = ["/health", "/health/live", "/health/ready", "/metrics"]

    /// Whether `method` changes something.
    public static func isWrite(_ method: HTTPRequest.Method) -> Bool {
        [.post, .put, .patch, .delete].contains(method)
    }

    /// The error to answer `request` with, or nil when it may go on.
    public func refusal(for request: Request) -> APIError? {
        let isProbe = (request.method == .get || request.method == .head) && Self.probePaths.contains(request.uri.path)
        if !isProbe, !allowList.allowsHost(request.head.authority) {
            return APIError(
                .misdirectedRequest, "misdirected_request", field: "Host", reason: .invalidFormat,
                "this server answers only to \(allowList.entries.map(\.description).joined(separator: ", ")) (Host \(request.head.authority ?? "") is not allowed; set KB_HTTP_ALLOWED_HOSTS to add names)"
            )
        }
        guard Self.isWrite(request.method) else { return nil }
        if let origin = request.headers[.origin], !allowList.allowsOrigin(origin) {
            return APIError(
                .forbidden, "cross_origin", field: "Origin",
                "changes are accepted only from this server's own pages (\(allowList.originsDescription)); Origin \(origin) is not one of them"
            )
        }
        let hasBody = (request.headers[.contentLength].flatMap(Int.init) ?? 0) > 0 || request.headers[.transferEncoding] != nil
        let contentType = request.headers[.contentType]
        if contentType != nil || hasBody, !Self.isJSON(contentType) {
            return APIError(
                .unsupportedMediaType, "unsupported_media_type", field: "Content-Type", reason: .invalidFormat,
                "a change must be sent as 'Content-Type: application/json' (got \(contentType.map { "'\($0)'" } ?? "none"))"
            )
        }
        return nil
    }

    /// Whether a `Content-Type` is exactly the JSON media type, optionally with parameters.
    public static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        if contentType == "application/json" { return true }
        let mediaType = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return mediaType.trimmingCharacters(in: .whitespaces).lowercased() == "application/json"
    }

    /// The guard as a router middleware, answering a refusal with the system's JSON error body.
    public struct Middleware<Context: RequestContext>: RouterMiddleware {
        let requestGuard: HTTPRequestGuard

        /// A middleware applying `requestGuard`.
        public init(_ requestGuard: HTTPRequestGuard) {
            self.requestGuard = requestGuard
        }

        public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            if let refusal = requestGuard.refusal(for: request) { return refusal.response }
            return try await next(request, context)
        }
    }
}
