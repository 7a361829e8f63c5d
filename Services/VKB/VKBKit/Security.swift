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
/// - the body size limit (413 from `Content-Length` before anything is read);
/// - for writes (POST, PUT, PATCH, DELETE): a same-origin check (a browser's cross-site request
///   is 403), a JSON content type for any body (415), the token when `KB_AUTH_TOKEN` is set (401), and the per-address rate limit (429
///   with `Retry-After`);
/// - errors thrown below it as JSON `{"error": …}`.
public struct SecurityMiddleware: RouterMiddleware {
    public typealias Context = VKBRequestContext

    public static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static let frameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!

    let authToken: String?
    let maxBodyBytes: Int
    let writeLimiter: RateLimiter?
    let readLimiter: RateLimiter?

    public init(authToken: String?, maxBodyBytes: Int, writeRatePerMinute: Int, readRatePerMinute: Int) {
        self.authToken = authToken
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
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBodyBytes {
            throw APIError(.contentTooLarge, "body_too_large", field: "body", reason: .tooLong, "the body is \(length) bytes; the limit is \(maxBodyBytes) (KB_VKB_MAX_BODY_BYTES)")
        }
        let isWrite = [.post, .put, .patch, .delete].contains(request.method)
        let client = context.remoteAddress?.ipAddress ?? "unknown"
        if isWrite {
            if let origin = request.headers[.origin] {
                let originHost = origin.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init)
                if originHost == nil || originHost != request.head.authority {
                    throw APIError(.forbidden, "cross_origin", "writes are accepted from VKB's own page only (Origin \(origin) is not \(request.head.authority ?? "this server"))")
                }
            }
            // A body must say it is JSON: a cross-site form or a "simple" text/plain request
            // cannot, so it cannot slip past the browser's preflight.
            let hasBody = (request.headers[.contentLength].flatMap(Int.init) ?? 0) > 0 || request.headers[.transferEncoding] != nil
            if hasBody, !(request.headers[.contentType]?.lowercased().hasPrefix("application/json") ?? false) {
                throw APIError(.unsupportedMediaType, "unsupported_media_type", field: "body", "a request body must be sent as 'Content-Type: application/json'")
            }
            if let authToken, !BearerToken.matches(request.headers[.authorization], token: authToken) {
                throw APIError(.unauthorized, "unauthenticated", "writes need 'Authorization: Bearer <KB_AUTH_TOKEN>'")
            }
            if let writeLimiter, let wait = writeLimiter.take(client) {
                var error = APIError(.tooManyRequests, "rate_limited", "more than \(writeLimiter.perMinute) writes a minute from \(client) (KB_VKB_WRITE_RATE_LIMIT); retry in \(wait) s")
                error.headers[.retryAfter] = String(wait)
                throw error
            }
        } else if let readLimiter, let wait = readLimiter.take(client) {
            var error = APIError(.tooManyRequests, "rate_limited", "more than \(readLimiter.perMinute) requests a minute from \(client) (KB_VKB_READ_RATE_LIMIT); retry in \(wait) s")
            error.headers[.retryAfter] = String(wait)
            throw error
        }
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
