import Foundation
import Hummingbird
import Logging
import NIOCore

/// The HTTP admin port of a service: `/health`, `/health/live`, `/health/ready` and `/metrics`.
public enum AdminServer {
    /// The admin routes, for services that add their own (the budget service's runbook endpoints),
    /// behind `requestGuard` (allowed hosts, same-origin JSON writes).
    public static func router(health: HealthRegistry, requestGuard: HTTPRequestGuard) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: HTTPRequestGuard.Middleware(requestGuard))
        addRoutes(to: router, health: health)
        return router
    }

    /// Adds `/health`, `/health/live`, `/health/ready` and `/metrics` to a router of any
    /// request context (VKB serves them beside its API on its one port).
    public static func addRoutes<Context: RequestContext>(to router: Router<Context>, health: HealthRegistry) {
        router.get("/health") { _, _ -> Response in
            let report = await health.report()
            return json(report.jsonData(), status: report.status == .unhealthy ? .serviceUnavailable : .ok)
        }
        router.get("/health/live") { _, _ -> Response in
            json(Data(#"{"status":"alive"}"#.utf8), status: .ok)
        }
        router.get("/health/ready") { _, _ -> Response in
            let report = await health.report()
            let ready = health.isReady && report.status != .unhealthy
            let body = #"{"ready":\#(ready),"status":"\#(report.status.rawValue)"}"#
            return json(Data(body.utf8), status: ready ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: MetricsRegistry.render()))
            )
        }
    }

    /// A Hummingbird application serving `router` on `host:port`, as a lifecycle `Service`, its
    /// connections bounded by `limits` (header and idle timeouts, a connection bound). Once it
    /// listens, `allowList` learns the port (entries without one take it).
    public static func application<Context: RequestContext>(
        router: Router<Context>,
        host: String,
        port: Int,
        allowList: HTTPHostAllowList,
        limits: HTTPConnectionLimits = .init(),
        direct: [HTTPDirectRoute] = [],
        logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol where Context.Source == ApplicationRequestContextSource {
        let count = HTTPConnectionCount()
        let serverName = "kb-admin"
        // `direct` routes are answered from the pipeline by the same router (HTTPDirectRoutes).
        let responder = direct.isEmpty ? nil : router.buildResponder()
        return Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: HTTPConnectionGuard.handlers(limits: limits, count: count)
                + (responder.map { [HTTPDirectRouteHandler(routes: direct, responder: $0, requestGuard: HTTPRequestGuard(allowList: allowList), serverName: serverName, logger: logger)] } ?? []))),
            configuration: .init(address: .hostname(host, port: port), serverName: serverName),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                allowList.listening(on: bound)
                await onRunning(bound)
            },
            logger: logger
        )
    }

    public static func json(_ data: Data, status: HTTPResponse.Status) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}

extension AdminServer {
    /// Serves `/health`, `/health/live`, `/health/ready` and `/metrics` for a process that is not
    /// one of the services — the session learner (`ukb learn --watch --admin-port`) — until the
    /// returned task is cancelled. Signals stay the caller's: no graceful-shutdown handler is
    /// installed. `health` turns ready once the port listens; `onFailure` hears why the server
    /// stopped when it was not cancelled (the port taken, …).
    public static func serveInBackground(
        health: HealthRegistry,
        host: String,
        port: Int,
        allowedHosts: [String],
        logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        onFailure: @escaping @Sendable (any Error) -> Void = { _ in }
    ) -> Task<Void, any Error> {
        let allowList = HTTPHostAllowList(configured: allowedHosts, boundHost: host)
        let app = application(
            router: router(health: health, requestGuard: HTTPRequestGuard(allowList: allowList)),
            host: host, port: port, allowList: allowList, logger: logger
        ) { bound in
            health.setReady(true)
            await onRunning(bound)
        }
        return Task {
            do {
                try await app.run()
            } catch {
                if !Task.isCancelled { onFailure(error) }
                throw error
            }
        }
    }
}
