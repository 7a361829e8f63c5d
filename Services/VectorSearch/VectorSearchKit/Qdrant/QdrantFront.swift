import Foundation
import HTTPTypes
import Hummingbird
import KBRPC
import KBRuntime
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Qdrant's REST API over the vector store, on a port of its own (`KB_VECTOR_QDRANT_PORT`,
/// default 6333, Qdrant's), so the operations guide's `curl` runbooks and scripts written with
/// the `qdrant-client` package work by pointing them at this server (README, "Qdrant
/// compatibility"). Every write goes through the same store as the RPC (`VectorStore`): it is
/// on disk when answered and visible to RPC reads, and the other way round.
///
/// The port has the rules of every HTTP surface of the system (`HTTPRequestGuard`: allowed
/// `Host`, same-origin JSON writes; `HTTPConnectionGuard`: connection bounds), and, when
/// `KB_AUTH_TOKEN` is set, every route but the probes and `GET /` needs Qdrant's `api-key`
/// header or `Authorization: Bearer` with the token. Answers use Qdrant's envelope
/// (`{"result", "status": "ok", "time"}`), failures its error shape
/// (`{"status": {"error"}, "time"}`) with 400 (naming the field), 404, 409 and so on.
public struct QdrantFront: Sendable {
    /// The Qdrant API version this interface follows; `GET /` reports it, and `qdrant-client`
    /// checks it against its own (same major, minor within one) before its first call.
    public static let apiVersion = "1.20.0"
    /// The largest request body read (Qdrant's default `max_request_size_mb` is 32).
    static let maximumBody = 32 << 20

    let store: VectorStore
    let backupRoot: BackupRoot
    let authToken: String?
    let optimizer: QdrantOptimizer
    let logger: Logger

    /// A front over `store`; snapshots stay inside `backupRoot`; `authToken` is `KB_AUTH_TOKEN`.
    public init(store: VectorStore, backupRoot: BackupRoot, authToken: String?, logger: Logger) {
        self.store = store
        self.backupRoot = backupRoot
        self.authToken = authToken
        self.optimizer = QdrantOptimizer(store: store, logger: logger)
        self.logger = logger
    }

    /// The HTTP server of this front on `host:port` (0: a free port, logged as `qdrant http
    /// listening`), as a lifecycle service, with `/health*` and `/metrics` beside Qdrant's
    /// routes (for probes and the guide's Prometheus job that scrapes `qdrant:6333/metrics`).
    public func application(host: String, port: Int, allowedHosts: [String], health: HealthRegistry) -> any Service {
        let allowList = HTTPHostAllowList(configured: allowedHosts, boundHost: host)
        let router = Router()
        router.add(middleware: HTTPRequestGuard.Middleware(HTTPRequestGuard(allowList: allowList)))
        router.add(middleware: QdrantAuthMiddleware(token: authToken))
        AdminServer.addRoutes(to: router, health: health)
        addRoutes(to: router)
        return AdminServer.application(router: router, host: host, port: port, allowList: allowList, logger: logger) { [logger] bound in
            logger.info("qdrant http listening", metadata: ["port": "\(bound)"])
        }
    }

    /// Adds every Qdrant route to `router`.
    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        addServiceRoutes(to: router)
        addCollectionRoutes(to: router)
        addSnapshotRoutes(to: router)
        addPointRoutes(to: router)
        addSearchRoutes(to: router)
    }

    func addServiceRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("/") { _, _ in
            Self.json(.object(["title": .string("qdrant - vector search engine"), "version": .string(Self.apiVersion), "commit": .null, "kb_version": .string(KnowledgeBaseVersion.current)]), status: .ok)
        }
        router.get("/healthz") { _, _ in Self.text("healthz check passed") }
        router.get("/livez") { _, _ in Self.text("livez check passed") }
        router.get("/readyz") { _, _ in Self.text("all shards are ready") }
        handle(router, .get, "/cluster") { _, _, _ in
            .object(["status": .string("disabled")])
        }
    }

    // MARK: Plumbing

    /// Registers `body` for `method path`: the JSON body read (nil when empty), the answer
    /// wrapped in Qdrant's envelope, every failure in Qdrant's error shape.
    func handle<Context: RequestContext>(
        _ router: Router<Context>, _ method: HTTPRequest.Method, _ path: RouterPath,
        _ body: @escaping @Sendable (Request, Context, QdrantJSON?) async throws -> QdrantJSON
    ) {
        router.on(path, method: method) { request, context -> Response in
            let started = ContinuousClock.now
            do {
                var parsed: QdrantJSON?
                if request.method != .get {
                    let buffer: ByteBuffer
                    do { buffer = try await request.body.collect(upTo: Self.maximumBody) } catch {
                        throw QdrantError(status: 413, message: "the request body is larger than \(Self.maximumBody) bytes")
                    }
                    if buffer.readableBytes > 0 {
                        do { parsed = try QdrantJSON.parse(buffer.readableBytesView) } catch let error as QdrantJSON.SyntaxError {
                            throw QdrantError.invalid("body", "Format error in JSON body: \(error.description)")
                        }
                    }
                }
                let result = try await body(request, context, parsed)
                return Self.envelope(result, started: started)
            } catch let error as QdrantError {
                return Self.failure(error, started: started)
            } catch let error as RPCError {
                return Self.failure(QdrantError(error), started: started)
            } catch is CancellationError {
                return Self.failure(QdrantError(status: 503, message: "the request was cancelled"), started: started)
            } catch {
                return Self.failure(QdrantError(status: 500, message: "Service internal error: \(error)"), started: started)
            }
        }
    }

    /// The collection named in the path, or 404.
    func namedCollection<Context: RequestContext>(_ context: Context) throws -> VectorCollection {
        let name = context.parameters.get("name") ?? ""
        do { return try store.collection(name) } catch { throw QdrantError.notFound(name) }
    }

    /// Runs blocking engine work (searches, scans) on NIO's thread pool, off the event loops.
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }

    static func envelope(_ result: QdrantJSON, started: ContinuousClock.Instant) -> Response {
        json(.object(["result": result, "status": .string("ok"), "time": .double(seconds(since: started))]), status: .ok)
    }

    static func failure(_ error: QdrantError, started: ContinuousClock.Instant) -> Response {
        var status: [String: QdrantJSON] = ["error": .string(error.description)]
        if let field = error.field { status["field"] = .string(field) }
        return json(.object(["status": .object(status), "time": .double(seconds(since: started))]), status: HTTPResponse.Status(code: error.status))
    }

    static func seconds(since started: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - started
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func json(_ value: QdrantJSON, status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(string: value.serialized)))
    }

    static func text(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// `KB_AUTH_TOKEN` on the Qdrant port: Qdrant's `api-key` header or `Authorization: Bearer`,
/// compared in constant time (`BearerToken`). Probes (`/healthz`, `/livez`, `/readyz`,
/// `/health*`, `/metrics`) and `GET /` (name and version) need none.
struct QdrantAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?

    static var openPaths: Set<String> { ["/", "/healthz", "/livez", "/readyz", "/health", "/health/live", "/health/ready", "/metrics"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token else { return try await next(request, context) }
        if request.method == .get || request.method == .head, Self.openPaths.contains(request.uri.path) { return try await next(request, context) }
        if let key = request.headers[HTTPField.Name("api-key")!], BearerToken.constantTimeEquals(key, token) { return try await next(request, context) }
        if BearerToken.matches(request.headers[.authorization], token: token) { return try await next(request, context) }
        return QdrantFront.failure(QdrantError(status: 401, message: "Unauthorized: send the api-key header (or Authorization: Bearer) with KB_AUTH_TOKEN"), started: .now)
    }
}
