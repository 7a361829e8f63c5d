import Foundation
import KBProto
import KBRPC
import KBRuntime
import NIOPosix
import ServiceLifecycle

/// The RPC face of a `GraphStore`: one short handler per method of `kb.graph.v1.GraphStore`,
/// and the store's health component.
public struct GraphStoreService: RPCService {
    /// The store behind the face.
    public let store: GraphStore

    /// The face of `store`.
    public init(store: GraphStore) {
        self.store = store
    }

    /// The store, closed after the RPC server stops.
    public var lifecycleServices: [any Service] { [store] }

    /// Registers every GraphStore method on `router`. Point reads answer on the calling thread;
    /// scans, traversals, backup and verify run on NIO's blocking pool so they never stall the
    /// event loops that carry other requests.
    public func register(on router: inout RPCRouter) {
        router.register(GraphStoreMethods.putEntities) { request, _ in try await store.putEntities(request) }
        router.register(GraphStoreMethods.deleteEntities) { request, _ in try await store.deleteEntities(request) }
        router.register(GraphStoreMethods.putRelations) { request, _ in try await store.putRelations(request) }
        router.register(GraphStoreMethods.deleteRelations) { request, _ in try await store.deleteRelations(request) }
        router.register(GraphStoreMethods.getEntity) { request, _ in try store.getEntity(request) }
        router.register(GraphStoreMethods.queryEntities) { request, _ in try await blocking { try store.queryEntities(request) } }
        router.register(GraphStoreMethods.queryRelations) { request, _ in try await blocking { try store.queryRelations(request) } }
        router.register(GraphStoreMethods.neighbors) { request, _ in
            request.depth <= 1 ? try store.neighbors(request) : try await blocking { try store.neighbors(request) }
        }
        router.register(GraphStoreMethods.subgraph) { request, _ in try await blocking { try store.subgraph(request) } }
        router.register(GraphStoreMethods.shortestPath) { request, _ in try await blocking { try store.shortestPath(request) } }
        router.register(GraphStoreMethods.listTeams) { _, _ in try store.listTeams() }
        router.register(GraphStoreMethods.getStats) { request, _ in try store.stats(request) }
        router.register(GraphStoreMethods.backup) { request, context in
            let response = try await blocking { try store.backup(to: request.directory) }
            context.logger.info("backup written", metadata: ["directory": "\(response.directory)", "entities": "\(response.entities)", "relations": "\(response.relations)"])
            return response
        }
        router.register(GraphStoreMethods.verify) { _, context in
            let response = try await blocking { try store.verify() }
            if !response.ok { context.logger.error("verify found problems", metadata: ["problems": "\(response.problems.joined(separator: "; "))"]) }
            return response
        }
    }

    /// The `store` health component: counts from the counters, unhealthy when LevelDB fails.
    public func registerHealth(on health: HealthRegistry) {
        health.register("store") {
            do {
                let teams = try store.listTeams().teams
                let totals = store.totalCounts
                return ComponentHealth(.healthy, [
                    "engine": "leveldb",
                    "path": .string(store.path),
                    "entities": .integer(Int64(totals.entities)),
                    "relations": .integer(Int64(totals.relations)),
                    "teams": .integer(Int64(teams.count)),
                ])
            } catch {
                return ComponentHealth(.unhealthy, ["engine": "leveldb", "error": .string("\(error)")])
            }
        }
    }

    /// Runs blocking work on NIO's thread pool.
    func blocking<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
        try await NIOThreadPool.singleton.runIfActive(body)
    }
}
