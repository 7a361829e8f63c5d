import Foundation
import KBLevelDB
import KBProto
import KBRPC
import Logging
import Metrics
import ServiceLifecycle
import SwiftProtobuf
import Synchronization
import KBTime

/// The knowledge graph of every team, in one LevelDB database: entities, relations, and the
/// indexes that make each read a range scan (see `GraphKey`).
///
/// Writes go through a group-commit queue (one synced batch per group, so acknowledged writes
/// survive `kill -9`); reads go straight to LevelDB, each on a snapshot so it sees one state.
/// As a `Service` it closes the queue (finishing queued writes) when the process shuts down.
public final class GraphStore: Service, Sendable {
    /// The folder of the LevelDB database inside the service's data directory.
    public static let databaseFolder = "leveldb"

    /// What an operator does when the store is damaged; every damage message ends with it.
    public static let restoreAdvice = "stop graph-store (`kb down`) and restore the last backup with `ukb restore BACKUP_DIR` (or `graph-store restore BACKUP_DIR`, `deploy/scripts/graph-restore.sh BACKUP.tar.gz`); the damaged store is kept beside it as leveldb.pre-restore.<time>"

    /// The database folder.
    public let path: String
    let db: LevelDB
    let commits: CommitQueue
    /// The change feed's position and its waiters.
    let feed: ChangeFeed
    /// What the store bounds: entity size on write, answer size on read.
    public let limits: GraphLimits
    private let totals: Totals
    /// The problems found by the last `verify`, nil when it passed (or has not run).
    let verifyFailure = Mutex<String?>(nil)
    private let entityGauge = Gauge(label: "kb_graph_entities_total")
    private let relationGauge = Gauge(label: "kb_graph_relations_total")

    /// Opens (or creates) the store in `directory/leveldb`, bounded by `limits`, keeping
    /// `feedWindow` of the change feed.
    public convenience init(directory: URL, limits: GraphLimits = GraphLimits(), feedWindow: FeedWindow = FeedWindow()) throws {
        try self.init(databasePath: directory.appendingPathComponent(Self.databaseFolder).path, limits: limits, feedWindow: feedWindow)
    }

    /// Opens (or creates) the store in the LevelDB folder `databasePath`, bounded by `limits`,
    /// keeping `feedWindow` of the change feed; `clock` (Unix milliseconds) times the writes.
    public init(databasePath: String, limits: GraphLimits = GraphLimits(), feedWindow: FeedWindow = FeedWindow(),
                clock: @escaping @Sendable () -> Int64 = UnixTime.nowMilliseconds) throws {
        self.limits = limits
        try FileManager.default.createDirectory(atPath: databasePath, withIntermediateDirectories: true)
        var options = LevelDB.Options()
        // Imports write about 20 keys per entity: a large memtable and large table files keep
        // LevelDB's compactions (most of an import's CPU, measured with perf) down.
        options.writeBufferSize = 64 << 20
        options.maxFileSize = 32 << 20
        options.blockCacheSize = 64 << 20
        options.restoreAdvice = Self.restoreAdvice
        let db = try LevelDB(path: databasePath, options: options)
        self.db = db
        self.path = databasePath
        try Self.upgradeFormat(db)
        var entities = 0, relations = 0
        try db.forEach(prefix: [GraphKey.counter]) { key, value in
            let team = GraphKey.team(of: key) ?? ""
            let counter = GraphKey.components(key, after: GraphKey.teamPrefix(GraphKey.counter, team)).joined(separator: "\u{0}")
            if counter == GraphKey.entitiesCounter { entities += Int(GraphKey.int64(value)) }
            if counter == GraphKey.relationsCounter { relations += Int(GraphKey.int64(value)) }
            return true
        }
        let totals = Totals(entities: entities, relations: relations)
        self.totals = totals
        let entityGauge = self.entityGauge, relationGauge = self.relationGauge
        entityGauge.record(entities)
        relationGauge.record(relations)
        let groups = Counter(label: "kb_graph_commit_groups_total")
        let operations = Counter(label: "kb_graph_commit_operations_total")
        let duration = Timer(label: "kb_graph_commit_sync_seconds")
        let head = GraphKey.int64(try db.get(GraphKey.feedHeadKey))
        let first = try db.get(GraphKey.feedFirstKey).map { GraphKey.int64($0) } ?? 1
        let feed = ChangeFeed(head: head, first: first, window: feedWindow)
        self.feed = feed
        commits = CommitQueue(db: db, feed: feed, clock: clock) { report in
            groups.increment()
            operations.increment(by: report.operations)
            duration.recordNanoseconds(report.duration.inNanoseconds)
            let now = totals.counts.withLock { totals in
                totals.entities += report.entityDelta
                totals.relations += report.relationDelta
                return totals
            }
            entityGauge.record(now.entities)
            relationGauge.record(now.relations)
        }
    }

    /// Brings a database written by an older version to the current key layout: version 2 adds
    /// the significance index, built here from the entity records (synced batches of 10,000).
    static func upgradeFormat(_ db: LevelDB) throws {
        if let stored = try db.get(GraphKey.formatKey), stored.first ?? 0 >= GraphKey.formatVersion { return }
        var batch = WriteBatch()
        try db.forEach(prefix: [GraphKey.entity]) { key, value in
            guard let team = GraphKey.team(of: key) else { return true }
            let entity = try storedEntity(value)
            batch.put(GraphKey.significance(team, entity.significance, entity.name), GraphKey.significanceValue(entity))
            if batch.count >= 10_000 {
                try db.write(batch)
                batch = WriteBatch()
            }
            return true
        }
        batch.put(GraphKey.formatKey, [GraphKey.formatVersion])
        try db.write(batch)
    }

    /// Why the store cannot be trusted, or nil: corruption LevelDB reported while serving, or
    /// the problems of the last `verify` (counters or indexes that disagree with the records).
    public var damage: String? {
        db.damage ?? verifyFailure.withLock { $0 }
    }

    /// Entities and relations in every team, as of the last commit.
    public var totalCounts: (entities: Int, relations: Int) { totals.counts.withLock { $0 } }

    /// Waits for shutdown, then finishes queued writes and stops taking new ones.
    public func run() async throws {
        try? await gracefulShutdown()
        close()
    }

    /// Finishes queued writes; later writes fail with `GraphStoreError.Code.unavailable`.
    public func close() {
        commits.close()
        feed.close()
    }

    /// A store dropped without `close()` still stops its commit thread first.
    deinit {
        commits.close()
    }

    // MARK: Records

    func entity(_ team: String, _ name: String, snapshot: Snapshot? = nil) throws -> Kb_Graph_V1_Entity? {
        guard let bytes = try db.get(GraphKey.entity(team, name), snapshot: snapshot) else { return nil }
        return try Self.decodeEntity(bytes)
    }

    func relation(_ team: String, _ from: String, _ type: String, _ to: String, snapshot: Snapshot? = nil) throws -> Kb_Graph_V1_Relation? {
        guard let bytes = try db.get(GraphKey.outbound(team, from, type, to), snapshot: snapshot) else { return nil }
        return try Self.decodeRelation(bytes)
    }

    /// A stored entity record as a value.
    static func storedEntity(_ bytes: [UInt8]) throws -> Entity { Entity(try decodeEntity(bytes)) }

    /// A stored relation record as a value.
    static func storedRelation(_ bytes: [UInt8]) throws -> Relation { Relation(try decodeRelation(bytes)) }

    /// An entity's record bytes (the `kb.graph.v1.Entity` encoding).
    static func record(_ entity: Entity) throws -> [UInt8] { try entity.message.serializedBytes() }

    /// A relation's record bytes (the `kb.graph.v1.Relation` encoding).
    static func record(_ relation: Relation) throws -> [UInt8] { try relation.message.serializedBytes() }

    static func decodeEntity(_ bytes: [UInt8]) throws -> Kb_Graph_V1_Entity {
        do { return try Kb_Graph_V1_Entity(serializedBytes: bytes) } catch { throw GraphStoreError(.dataLoss, "stored entity does not decode: \(error)") }
    }

    static func decodeRelation(_ bytes: [UInt8]) throws -> Kb_Graph_V1_Relation {
        do { return try Kb_Graph_V1_Relation(serializedBytes: bytes) } catch { throw GraphStoreError(.dataLoss, "stored relation does not decode: \(error)") }
    }
}

/// Entity and relation totals of the whole store, kept current by the commit thread.
final class Totals: Sendable {
    let counts: Mutex<(entities: Int, relations: Int)>
    init(entities: Int, relations: Int) { counts = Mutex((entities, relations)) }
}
