import Foundation
import KBProto
import KBRPC
import KBRuntime
import NIOPosix

/// The RPC face of a `GraphStore`: one short handler per method of `kb.graph.v1.GraphStore`,
/// and the store's health component.
public enum GraphStoreService {
    /// Registers every GraphStore method on `router`. Point reads answer on the calling thread;
    /// scans, traversals, backup and verify run on NIO's blocking pool so they never stall the
    /// event loops that carry other requests.
    public static func register(_ store: GraphStore, on router: inout RPCRouter) {
        router.register(GraphStoreMethods.putEntities) { request, _ in try await putEntities(request, in: store) }
        router.register(GraphStoreMethods.deleteEntities) { request, _ in try await deleteEntities(request, in: store) }
        router.register(GraphStoreMethods.putRelations) { request, _ in try await putRelations(request, in: store) }
        router.register(GraphStoreMethods.deleteRelations) { request, _ in try await deleteRelations(request, in: store) }
        router.register(GraphStoreMethods.getEntity) { request, _ in try getEntity(request, in: store) }
        // Not translated yet (they take and give messages); their store errors are mapped here.
        router.register(GraphStoreMethods.queryEntities) { request, _ in try await mapped { try await blocking { try store.queryEntities(request) } } }
        router.register(GraphStoreMethods.queryRelations) { request, _ in try await mapped { try await blocking { try store.queryRelations(request) } } }
        router.register(GraphStoreMethods.neighbors) { request, _ in
            try await mapped { request.depth <= 1 ? try store.neighbors(request) : try await blocking { try store.neighbors(request) } }
        }
        router.register(GraphStoreMethods.subgraph) { request, _ in try await mapped { try await blocking { try store.subgraph(request) } } }
        router.register(GraphStoreMethods.shortestPath) { request, _ in try await mapped { try await blocking { try store.shortestPath(request) } } }
        router.register(GraphStoreMethods.listTeams) { _, _ in try await mapped { try store.listTeams() } }
        router.register(GraphStoreMethods.getStats) { request, _ in try await mapped { try store.stats(request) } }
        router.register(GraphStoreMethods.backup) { request, context in
            let response = try await mapped { try await blocking { try store.backup(to: request.directory) } }
            context.logger.info("backup written", metadata: ["directory": "\(response.directory)", "entities": "\(response.entities)", "relations": "\(response.relations)"])
            return response
        }
        router.register(GraphStoreMethods.verify) { _, context in
            let response = try await mapped { try await blocking { try store.verify() } }
            if !response.ok { context.logger.error("verify found problems", metadata: ["problems": "\(response.problems.joined(separator: "; "))"]) }
            return response
        }
    }

    /// The `store` health component: counts from the counters, unhealthy when LevelDB fails.
    public static func registerHealth(_ store: GraphStore, on health: HealthRegistry) {
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
    static func blocking<R: Sendable>(_ body: @escaping @Sendable () throws -> R) async throws -> R {
        try await NIOThreadPool.singleton.runIfActive(body)
    }
}
