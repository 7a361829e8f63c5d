import Foundation
import HTTPTypes
import Hummingbird
import KBRPC
import KBRuntime
import Logging
import NIOConcurrencyHelpers
import NIOCore
import KBTime

/// VKB's request context: Hummingbird's basic one plus the client's address (for the rate
/// limit).
public struct VKBRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// Bodies are read with VKB's own limit (`KB_VKB_MAX_BODY_BYTES`), checked before reading.
    public var maxUploadSize: Int { 1 << 30 }
}

/// What every request passes first:
/// - security headers on every response (Content-Security-Policy: scripts, styles and data from
///   VKB itself only; no framing; no sniffing; no referrer);
/// - the runtime's `HTTPRequestGuard`: an allowed `Host` (421 otherwise: DNS rebinding), and for
///   writes an allowed `Origin` (403) and a JSON content type (415);
/// - the body size limit (413 from `Content-Length` before anything is read);
/// - the token when `KB_AUTH_TOKEN` is set (401): for writes, and for `/api/*` reads unless
///   `KB_VKB_PUBLIC_READS=true` (the page, `/health` and `/api/openapi.json` stay public);
/// - the per-address rate limits (429 with `Retry-After`);
/// - errors thrown below it as JSON `{"error": …}`.
public struct SecurityMiddleware: RouterMiddleware {
    public typealias Context = VKBRequestContext

    public static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static let frameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!

    let requestGuard: HTTPRequestGuard
    let authToken: String?
    let publicReads: Bool
    let maxBodyBytes: Int
    let writeLimiter: RateLimiter?
    let readLimiter: RateLimiter?

    public init(requestGuard: HTTPRequestGuard, authToken: String?, publicReads: Bool = false, maxBodyBytes: Int, writeRatePerMinute: Int, readRatePerMinute: Int) {
        self.requestGuard = requestGuard
        self.authToken = authToken
        self.publicReads = publicReads
        self.maxBodyBytes = maxBodyBytes
        writeLimiter = writeRatePerMinute > 0 ? RateLimiter(perMinute: writeRatePerMinute) : nil
        readLimiter = readRatePerMinute > 0 ? RateLimiter(perMinute: readRatePerMinute) : nil
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            try check(request, context: context)
            response = try await next(request, context)
        } catch let error as APIError {
            response = error.response
        } catch let error as HTTPResponseError {
            let status = error.status
            let message = status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : (status.reasonPhrase)
            response = APIError(status, status == .notFound ? "not_found" : "http_error", message).response
        } catch {
            context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            response = APIError(.internalServerError, "internal", "\(error)").response
        }
        response.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[Self.frameOptions] = "DENY"
        response.headers[Self.referrerPolicy] = "no-referrer"
        return response
    }

    private func check(_ request: Request, context: Context) throws(APIError) {
        if let refusal = requestGuard.refusal(for: request) { throw refusal }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBodyBytes {
            throw APIError(.contentTooLarge, "body_too_large", field: "body", reason: .tooLong, "the body is \(length) bytes; the limit is \(maxBodyBytes) (KB_VKB_MAX_BODY_BYTES)")
        }
        let isWrite = HTTPRequestGuard.isWrite(request.method)
        let client = context.remoteAddress?.ipAddress ?? "unknown"
        if isWrite {
            if let authToken, !BearerToken.matches(request.headers[.authorization], token: authToken) {
                throw APIError(.unauthorized, "unauthenticated", "writes need 'Authorization: Bearer <KB_AUTH_TOKEN>'")
            }
            if let writeLimiter, let wait = writeLimiter.take(client) {
                var error = APIError(.tooManyRequests, "rate_limited", "more than \(writeLimiter.perMinute) writes a minute from \(client) (KB_VKB_WRITE_RATE_LIMIT); retry in \(wait) s")
                error.headers[.retryAfter] = String(wait)
                throw error
            }
        } else if let authToken, !publicReads, Self.needsTokenToRead(request.uri.path), !BearerToken.matches(request.headers[.authorization], token: authToken) {
            throw APIError(.unauthorized, "unauthenticated", "reads need 'Authorization: Bearer <KB_AUTH_TOKEN>' (the page asks for it once per tab; KB_VKB_PUBLIC_READS=true opens reads)")
        } else if let readLimiter, let wait = readLimiter.take(client) {
            var error = APIError(.tooManyRequests, "rate_limited", "more than \(readLimiter.perMinute) requests a minute from \(client) (KB_VKB_READ_RATE_LIMIT); retry in \(wait) s")
            error.headers[.retryAfter] = String(wait)
            throw error
        }
    }
}

extension SecurityMiddleware {
    /// Whether a read of `path` holds knowledge (`/api/*` but the OpenAPI document): the page's
    /// files, `/health` and `/metrics` do not.
    static func needsTokenToRead(_ path: String) -> Bool {
        path.hasPrefix("/api/") && path != "/api/openapi.json"
    }
}

/// A token bucket per client address: `perMinute` requests a minute, in bursts of up to
/// `perMinute`. Buckets idle for ten minutes are forgotten.
public final class RateLimiter: Sendable {
    public let perMinute: Int
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }
    private let buckets = NIOLockedValueBox<[String: Bucket]>([:])

    public init(perMinute: Int) {
        self.perMinute = perMinute
    }

    /// Takes one token for `client`: nil when allowed, else the whole seconds to wait.
    public func take(_ client: String, now: ContinuousClock.Instant = .now) -> Int? {
        let capacity = Double(perMinute)
        let perSecond = capacity / 60
        return buckets.withLockedValue { buckets in
            if buckets.count > 10_000 {
                buckets = buckets.filter { now - $0.value.updated < .seconds(600) }
            }
            var bucket = buckets[client] ?? Bucket(tokens: capacity, updated: now)
            let elapsed = now - bucket.updated
            let seconds = elapsed.inSeconds
            bucket.tokens = min(capacity, bucket.tokens + seconds * perSecond)
            bucket.updated = now
            defer { buckets[client] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / perSecond).rounded(.up)))
        }
    }
}
