import Foundation
import Hummingbird
import KBProto
import KBRPC
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// What every service executable shares: configuration, logging, metrics, health, the data
/// directory lock, the RPC server, the admin HTTP server and graceful shutdown.
///
/// A service's `main` is one call, `ServiceRuntime.main(descriptor, restore:) { runtime in … }`,
/// whose closure reads top-down: its configuration (`runtime.load(…)`) → its stores in
/// `runtime.dataDirectory` → its `RPCService` face, returned; the runtime does the rest.
public final class ServiceRuntime: Sendable {
    /// The checked configuration.
    public let configuration: ServiceConfiguration
    /// The process logger, labelled with the service name.
    public let logger: Logger
    /// The service's health checks; add a component per store or peer.
    public let health: HealthRegistry
    /// The names the HTTP surfaces of this process answer to; told the port once one listens.
    public let httpAllowList: HTTPHostAllowList
    private let lock: DataDirectoryLock?

    /// Reads the configuration, sets up logging and metrics, and locks the data directory.
    ///
    /// Throws `ConfigError` naming the bad key, or `DataDirectoryLock.Error` when another
    /// instance holds the directory; `main` reports either and exits (see `exitOnStartupError`).
    public init(descriptor: ServiceDescriptor, source: ConfigSource? = nil) throws {
        let configuration = try ServiceConfiguration(descriptor: descriptor, source: source ?? ConfigSource.fromProcess())
        LogSetup.bootstrap(service: descriptor.name, level: configuration.logLevel, format: configuration.logFormat)
        MetricsRegistry.bootstrap()
        var logger = Logger(label: descriptor.name)
        logger.logLevel = configuration.logLevel
        self.configuration = configuration
        self.logger = logger
        self.health = HealthRegistry(service: descriptor.name, version: configuration.version)
        self.httpAllowList = HTTPHostAllowList(configured: configuration.allowedHosts, boundHost: configuration.host)
        self.lock = try configuration.serviceDataDirectory.map { try DataDirectoryLock(directory: $0, owner: descriptor.name) }
    }

    /// Reads the service's own configuration from the same source as the shared settings.
    public func load<Configuration: ServiceOwnConfiguration>(_ type: Configuration.Type) throws -> Configuration {
        try Configuration(source: configuration.source, shared: configuration)
    }

    /// The checks every HTTP request of this process passes first (allowed hosts, same-origin
    /// JSON writes).
    public var requestGuard: HTTPRequestGuard { HTTPRequestGuard(allowList: httpAllowList) }

    /// The service's own data folder, created and locked; nil for a service that owns none.
    public var dataDirectory: URL? { lock?.directory }

    /// Serves `router` over RPC (with `kb.health.v1.Health/Check` added) and the admin HTTP
    /// port, together with `services` (stores that need an orderly close), until SIGTERM or
    /// SIGINT; then stops accepting, finishes in-flight requests and shuts the services down in
    /// reverse order.
    public func run(router: RPCRouter, services: [any Service] = [], adminRouter: Router<BasicRequestContext>? = nil, directAdminRoutes: [HTTPDirectRoute] = []) async throws {
        var router = router
        let health = health
        let name = configuration.descriptor.name
        router.register(HealthMethods.check) { request, _ in
            guard request.service.isEmpty || request.service == name else {
                var unknown = Kb_Health_V1_HealthCheckResponse()
                unknown.status = .serviceUnknown
                unknown.service = request.service
                return unknown
            }
            return await health.report().proto
        }
        let rpc = RPCServer(configuration: configuration.rpc, router: router, logger: logger, metricsFactory: MetricsRegistry.factory)
        // The connection table and the bytes held in unfinished frames: a full table is
        // "degraded" (new clients are refused), so an operator sees a lock-out as it happens.
        health.register("rpc") {
            let connections = rpc.connections, frames = rpc.partialFrameBytes
            let full = connections.open >= connections.limit || frames.held >= frames.limit
            var details: [String: HealthDetail] = [
                "connections": .integer(Int64(connections.open)),
                "connection_limit": .integer(Int64(connections.limit)),
                "partial_frame_bytes": .integer(Int64(frames.held)),
                "partial_frame_budget": .integer(Int64(frames.limit)),
            ]
            if full { details["reason"] = "connection table or partial-frame budget is full: new clients are refused" }
            return ComponentHealth(full ? .degraded : .healthy, details)
        }
        let admin = AdminServer.application(
            router: adminRouter ?? AdminServer.router(health: health, requestGuard: requestGuard),
            host: configuration.host,
            port: configuration.adminPort,
            allowList: httpAllowList,
            direct: directAdminRoutes,
            logger: logger
        ) { [logger] port in
            logger.info("admin http listening", metadata: ["port": "\(port)"])
        }
        let readiness = ReadinessService(rpc: rpc, health: health, logger: logger, configuration: configuration)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: admin)] + services.map { .init(service: $0) } + [.init(service: rpc), .init(service: readiness)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        logger.info("\(name) stopped")
    }

    /// Serves an HTTP-only service (VKB): `router` on the service's HTTP port (the admin port of
    /// the descriptor, with `/health` etc. added by the caller) together with `services`, until
    /// SIGTERM or SIGINT; ready once the port listens.
    /// `limits` bound its connections (header and idle timeouts, a connection count).
    public func serveHTTP<Context: RequestContext>(router: Router<Context>, limits: HTTPConnectionLimits = .init(), services: [any Service] = [], onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws
    where Context.Source == ApplicationRequestContextSource {
        let health = health
        let name = configuration.descriptor.name
        let host = configuration.host
        let app = AdminServer.application(router: router, host: host, port: configuration.adminPort, allowList: httpAllowList, limits: limits, logger: logger) { [logger] port in
            logger.info("admin http listening", metadata: ["port": "\(port)"])
            health.setReady(true)
            logger.info("\(name) ready", metadata: ["http": "\(host):\(port)"])
            await onListening(port)
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: app)] + services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
        logger.info("\(name) stopped")
    }

    /// Runs Swift concurrency on NIO's event-loop threads instead of a pool of its own, which
    /// removes a thread switch from every request (measured by `rpc-benchmark`). Call it first
    /// thing in `main`, on the main thread, before any task starts; later calls do nothing.
    @discardableResult
    public static func useEventLoopsForConcurrency() -> Bool {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    /// Prints a startup failure as one line on stderr and exits: 78 (EX_CONFIG) for a bad
    /// configuration, 75 (EX_TEMPFAIL) when the data directory is in use, 1 otherwise.
    public static func exitOnStartupError(_ error: any Error, service: String) -> Never {
        let code: Int32
        switch error {
        case is ConfigError: code = ServiceExitCode.configuration
        case is DataDirectoryLock.Error: code = ServiceExitCode.inUse
        default: code = ServiceExitCode.failure
        }
        fail("\(service): \(error)", code: code)
    }

    /// The whole life of an RPC service executable.
    ///
    /// `<service> restore BACKUP` (when `restore` is given) restores offline and exits 0, 64 on a
    /// wrong usage, 75 while the service runs on the data directory, 1 on any other failure.
    /// Otherwise it reads the shared configuration, locks the data directory, calls `start` (read
    /// the service's own configuration, open its stores, return its face), registers the face's
    /// handlers, health and admin routes, and serves until SIGTERM or SIGINT: exit 0 after a clean
    /// stop, 78/75/1 when starting fails (see `exitOnStartupError`), 1 when serving fails.
    public static func main<Face: RPCService>(
        _ descriptor: ServiceDescriptor,
        restore: RestoreCommand? = nil,
        arguments: [String] = Array(CommandLine.arguments.dropFirst()),
        start: (ServiceRuntime) async throws -> Face
    ) async -> Never {
        useEventLoopsForConcurrency()
        let name = descriptor.name
        if let first = arguments.first {
            guard let restore, first == "restore" else {
                fail("usage: \(name)\(restore.map { " | \(name) restore \($0.argument)" } ?? "")", code: ServiceExitCode.usage)
            }
            guard arguments.count == 2 else { fail("usage: \(name) restore \(restore.argument)", code: ServiceExitCode.usage) }
            do {
                let runtime = try ServiceRuntime(descriptor: descriptor)
                for line in try restore.restore(URL(fileURLWithPath: arguments[1]).standardizedFileURL, runtime) { print(line) }
                exit(ServiceExitCode.ok)
            } catch let error as DataDirectoryLock.Error {
                fail("\(name) restore: refused, \(restore.subject) is in use: \(error)", code: ServiceExitCode.inUse)
            } catch {
                fail("\(name) restore: \(error)", code: ServiceExitCode.failure)
            }
        }

        let runtime: ServiceRuntime
        let face: Face
        do {
            runtime = try ServiceRuntime(descriptor: descriptor)
            face = try await start(runtime)
        } catch {
            exitOnStartupError(error, service: name)
        }
        face.registerHealth(on: runtime.health)
        var router = RPCRouter()
        face.register(on: &router)
        let admin = AdminServer.router(health: runtime.health, requestGuard: runtime.requestGuard)
        face.addAdminRoutes(to: admin, configuration: runtime.configuration)
        do {
            try await runtime.run(router: router, services: face.lifecycleServices, adminRouter: admin, directAdminRoutes: face.directAdminRoutes(configuration: runtime.configuration))
        } catch {
            runtime.logger.critical("\(name) stopped on an error", metadata: ["error": "\(error)"])
            fail("\(name): \(error)", code: ServiceExitCode.failure)
        }
        exit(ServiceExitCode.ok)
    }

    /// Prints `message` as one line on stderr and exits with `code`.
    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("\(message)\n".utf8))
        exit(code)
    }
}

/// Marks the service ready once the RPC server is listening, and not ready from the start of
/// shutdown, so `/health/ready` (the Kubernetes readiness probe) stops routing traffic first.
private struct ReadinessService: Service {
    let rpc: RPCServer
    let health: HealthRegistry
    let logger: Logger
    let configuration: ServiceConfiguration

    func run() async throws {
        let address = try await rpc.localAddress
        health.setReady(true)
        logger.info("\(configuration.descriptor.name) ready", metadata: ["rpc": "\(address)", "version": "\(configuration.version)"])
        try? await gracefulShutdown()
        health.setReady(false)
    }
}
