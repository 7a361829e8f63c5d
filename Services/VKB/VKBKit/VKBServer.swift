import Foundation
import Hummingbird
import KBKnowledge
import KBProto
import KBRPC
import KBRuntime
import Logging
import Metrics
import NIOCore

/// Puts VKB together: security first, then `/health` (VKB's own state and the graph store's),
/// `/metrics`, the API, and the page with its files.
public enum VKBServer {
    /// The router VKB serves.
    public static func router(configuration: VKBConfiguration, client: RPCClient, meaning: MeaningSearch, health: HealthRegistry, requestGuard: HTTPRequestGuard, logger: Logger) -> Router<VKBRequestContext> {
        let router = Router(context: VKBRequestContext.self)
        router.add(middleware: SecurityMiddleware(
            requestGuard: requestGuard,
            authToken: configuration.authToken,
            publicReads: configuration.publicReads,
            maxBodyBytes: configuration.maxBodyBytes,
            writeRatePerMinute: configuration.writeRatePerMinute,
            readRatePerMinute: configuration.readRatePerMinute
        ))
        router.add(middleware: RequestMetricsMiddleware())
        AdminServer.addRoutes(to: router, health: health)
        let graph = GraphAPI(client: client, configuration: configuration)
        graph.addRoutes(to: router)
        SearchAPI(graph: graph, meaning: meaning).addRoutes(to: router)
        WebAssets(configuration: configuration, logger: logger).addRoutes(to: router)
        return router
    }

    /// The `graph-store` health component: reachable (with its counts) or not. VKB itself keeps
    /// serving either way (the page says the store is unavailable), so an unreachable store
    /// makes VKB degraded, not unhealthy.
    public static func registerHealth(_ health: HealthRegistry, client: RPCClient, meaning: MeaningSearch, configuration: VKBConfiguration) {
        let address = "\(configuration.graphStore.host):\(configuration.graphStore.port)"
        health.register("graph-store") {
            do {
                let report = try await client.call(HealthMethods.check, .init(), options: CallOptions(timeout: .seconds(1)))
                let stats = try await client.call(GraphStoreMethods.getStats, .init(), options: CallOptions(timeout: .seconds(1)))
                return ComponentHealth(report.status == .serving ? .healthy : .degraded, [
                    "address": .string(address),
                    "entities": .integer(stats.totalEntities),
                    "relations": .integer(stats.totalRelations),
                    "teams": .integer(Int64(stats.entitiesByTeam.count)),
                ])
            } catch {
                return ComponentHealth(.degraded, ["address": .string(address), "error": .string("\(error)")])
            }
        }
        // Search by meaning: vector-search and the gateway. Without them the search box still
        // answers, by words, and says it is degraded.
        let vectorAddress = "\(configuration.vectorSearch.host):\(configuration.vectorSearch.port)"
        let gatewayAddress = "\(configuration.inferenceGateway.host):\(configuration.inferenceGateway.port)"
        health.register("search-by-meaning") {
            var details: [String: HealthDetail] = ["vectorSearch": .string(vectorAddress), "inferenceGateway": .string(gatewayAddress)]
            var problems: [String] = []
            for (name, peer) in [("vector-search", meaning.vectors), ("inference-gateway", meaning.gateway)] {
                do {
                    let report = try await peer.call(HealthMethods.check, .init(), options: CallOptions(timeout: .seconds(1)))
                    if report.status != .serving { problems.append("\(name) is not serving") }
                } catch {
                    problems.append("\(name): \(error)")
                }
            }
            if problems.isEmpty { return ComponentHealth(.healthy, details) }
            details["error"] = .string("search falls back to words: " + problems.joined(separator: "; "))
            return ComponentHealth(.degraded, details)
        }
        let d3 = configuration.d3Path
        health.register("page") {
            FileManager.default.isReadableFile(atPath: d3)
                ? ComponentHealth(.healthy, ["d3": .string(d3)])
                : ComponentHealth(.degraded, ["d3": .string(d3), "error": "the drawing library is missing: install Debian's node-d3 (scripts/setup-system.sh) or set KB_VKB_D3_PATH"])
        }
    }
}

/// Per-request counts and latency, by route, in `/metrics` (`kb_vkb_requests_total`,
/// `kb_vkb_request_seconds`).
struct RequestMetricsMiddleware: RouterMiddleware {
    typealias Context = VKBRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let route = context.endpointPath ?? "unmatched"
        let elapsed = ContinuousClock.now - start
        VKBMetrics.record(route: route, method: request.method.rawValue, status: response.status.code, elapsed: elapsed)
        return response
    }
}

/// VKB's request metrics.
enum VKBMetrics {
    static func record(route: String, method: String, status: Int, elapsed: Duration) {
        let statusClass = "\(status / 100)xx"
        Counter(label: "kb_vkb_requests_total", dimensions: [("route", route), ("method", method), ("status", statusClass)]).increment()
        Timer(label: "kb_vkb_request_seconds", dimensions: [("route", route)]).record(duration: elapsed)
    }
}
