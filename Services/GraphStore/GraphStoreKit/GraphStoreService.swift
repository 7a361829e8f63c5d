import Foundation
import KBProto
import KBRPC
import KBRuntime
import ServiceLifecycle

/// The RPC face of a `GraphStore`: one short handler per method of `kb.graph.v1.GraphStore`,
/// and the store's health component.
public struct GraphStoreService: RPCService {
    /// The store behind the face.
    public let store: GraphStore
    /// The only folder `Backup` writes to (`KB_BACKUP_DIR`).
    public let backupRoot: BackupRoot

    /// The face of `store`, writing backups inside `backupRoot` only.
    public init(store: GraphStore, backupRoot: BackupRoot) {
        self.store = store
        self.backupRoot = backupRoot
    }

    /// The store, closed after the RPC server stops.
    public var lifecycleServices: [any Service] { [store] }

    /// Registers every GraphStore method on `router`. Writes wait for the group commit on a
    /// task; every read (point reads, scans, traversals, backup, verify) is a LevelDB call and
    /// runs on the server's blocking pool, so none stalls the event loops that carry other
    /// requests.
    public func register(on router: inout RPCRouter) {
        let store = store, backupRoot = backupRoot
        // Every name is put in NFC here, where requests enter (`CanonicalName`); reads check
        // the request's cancellation in their loops, so an expired request stops its work.
        router.register(GraphStoreMethods.putEntities) { request, _ in try await Self.putEntities(request.canonical, in: store) }
        router.register(GraphStoreMethods.deleteEntities) { request, _ in try await Self.deleteEntities(request.canonical, in: store) }
        router.register(GraphStoreMethods.putRelations) { request, _ in try await Self.putRelations(request.canonical, in: store) }
        router.register(GraphStoreMethods.deleteRelations) { request, _ in try await Self.deleteRelations(request.canonical, in: store) }
        router.register(GraphStoreMethods.deleteObservations) { request, _ in try await Self.deleteObservations(request.canonical, in: store) }
        router.register(GraphStoreMethods.getEntity, on: .threadPool) { request, _ in try Self.getEntity(request.canonical, in: store) }
        // Not translated yet (they take and give messages); their store errors are mapped here.
        router.register(GraphStoreMethods.queryEntities, on: .threadPool) { request, context in
            try Self.mapped { try store.queryEntities(request.canonical, cancellation: .of(context)) }
        }
        router.register(GraphStoreMethods.queryRelations, on: .threadPool) { request, context in
            try Self.mapped { try store.queryRelations(request.canonical, cancellation: .of(context)) }
        }
        router.register(GraphStoreMethods.neighbors, on: .threadPool) { request, context in
            try Self.mapped { try store.neighbors(request.canonical, cancellation: .of(context)) }
        }
        router.register(GraphStoreMethods.subgraph, on: .threadPool) { request, context in
            try Self.mapped { try store.subgraph(request.canonical, cancellation: .of(context)) }
        }
        router.register(GraphStoreMethods.shortestPath, on: .threadPool) { request, context in
            try Self.mapped { try store.shortestPath(request.canonical, cancellation: .of(context)) }
        }
        router.register(GraphStoreMethods.listTeams, on: .threadPool) { _, _ in try Self.mapped { try store.listTeams() } }
        router.register(GraphStoreMethods.getStats, on: .threadPool) { request, _ in try Self.mapped { try store.stats(request.canonical) } }
        router.register(GraphStoreMethods.backup, on: .threadPool) { request, context in
            let directory = try backupRoot.newBackup(request.directory, field: "directory")
            let response = try Self.mapped { try store.backup(to: directory.path) }
            context.logger.info("backup written", metadata: ["directory": "\(response.directory)", "entities": "\(response.entities)", "relations": "\(response.relations)"])
            return response
        }
        // A long poll: a suspended task while it waits (no thread); ended with an answer when
        // the server shuts down, so it never holds the shutdown up.
        router.register(GraphStoreMethods.changes, endsAtShutdown: true) { request, context in
            try await Self.changes(request.canonical, in: store, context: context)
        }
        router.register(GraphStoreMethods.verify, on: .threadPool) { _, context in
            let response = try Self.mapped { try store.verify() }
            if !response.ok { context.logger.error("verify found problems", metadata: ["problems": "\(response.problems.joined(separator: "; "))"]) }
            return response
        }
    }

    /// The `store` health component: counts from the counters; unhealthy with the reason when
    /// LevelDB fails or has reported corruption, or the last verify found problems.
    public func registerHealth(on health: HealthRegistry) {
        health.register("store") {
            if let damage = store.damage {
                return ComponentHealth(.unhealthy, ["engine": "leveldb", "path": .string(store.path), "error": .string(damage)])
            }
            do {
                let teams = try store.listTeams().teams
                let totals = store.totalCounts
                return ComponentHealth(.healthy, [
                    "engine": "leveldb",
                    "path": .string(store.path),
                    "entities": .integer(Int64(totals.entities)),
                    "relations": .integer(Int64(totals.relations)),
                    "teams": .integer(Int64(teams.count)),
                    "feed_head_seq": .integer(store.feedPosition.head),
                    "feed_first_seq": .integer(store.feedPosition.first),
                    "feed_waiters": .integer(Int64(store.feedWaiters)),
                ])
            } catch {
                return ComponentHealth(.unhealthy, ["engine": "leveldb", "path": .string(store.path), "error": .string("\(error)")])
            }
        }
    }
}
