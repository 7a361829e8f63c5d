import Foundation
import KBLevelDB
import KBProto
import KBRPC
import KBRuntime
import Logging
import SwiftProtobuf
import VectorIndex

/// The vector service's storage: every collection's points in one LevelDB (the durable truth),
/// each collection's graph in memory, saved as a snapshot file and rebuilt from the points'
/// write log on restart.
///
/// LevelDB keys (`name` is the collection, `\0` a separator):
///
///     c name                  the collection's config (CollectionConfig bytes)
///     p name \0 id            a point (Point bytes: id, vector, payload)
///     l name \0 seq(8, BE)    the write log: 1 byte op (1 upsert, 2 delete) + the point id
///     s name                  the collection's last seq (8 bytes BE)
///
/// Writes go through a group commit (one synced batch for every waiting write), then are
/// applied to the in-memory collection on the commit thread in commit order, then answered: an
/// acknowledged upsert is on disk and visible to searches. Every `snapshotEvery` log entries a
/// collection writes its graph to `graphs/<name>/` (index.hnsw, ids, seq) and drops the log up to
/// there; a restart loads that snapshot and replays the log after it, or rebuilds from the points.
public final class VectorStore: @unchecked Sendable {
    let db: LevelDB
    let directory: URL
    let logger: Logger
    let snapshotEvery: Int
    private let lock = NSLock()
    private var collections: [String: VectorCollection] = [:]
    private var sequences: [String: UInt64] = [:]
    private var sinceSnapshot: [String: Int] = [:]
    private var queue: GroupCommitQueue<Job, Void>!

    /// One write: `prepare` completes `batch` on the commit thread (so log sequence numbers
    /// follow commit order); `apply` runs once the group is on disk.
    struct Job {
        var batch: WriteBatch
        let prepare: (inout WriteBatch) -> Void
        let apply: () -> Void
    }

    /// Opens the store in `directory` and loads every collection.
    public init(directory: URL, logger: Logger, snapshotEvery: Int = 20_000) throws {
        self.directory = directory
        self.logger = logger
        self.snapshotEvery = snapshotEvery
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("graphs"), withIntermediateDirectories: true)
        var options = LevelDB.Options()
        options.writeBufferSize = 16 << 20
        options.restoreAdvice = Self.restoreAdvice(directory)
        db = try LevelDB(path: directory.appendingPathComponent("leveldb").path, options: options)
        queue = GroupCommitQueue(
            name: "vector commit", maxJobsPerGroup: 256,
            closedError: { RPCError(.unavailable, "vector-search is shutting down") }
        ) { [unowned self] jobs in self.runGroup(jobs) }
        for (key, value) in try db.scan(prefix: [UInt8(ascii: "c")]) {
            let name = String(decoding: key.dropFirst(), as: UTF8.self)
            let config = try Kb_Vector_V1_CollectionConfig(serializedBytes: value)
            try load(name: name, config: config)
        }
    }

    /// What an operator does when the points database is damaged: there is no offline restore
    /// of the whole store, so the damaged folder is moved aside and the collections restored
    /// from their snapshots into a new one.
    static func restoreAdvice(_ directory: URL) -> String {
        let folder = directory.appendingPathComponent("leveldb").path
        return "stop vector-search (`kb down`), move the damaged folder aside (`mv \(folder) \(folder).damaged`), start it again and restore each collection from its snapshot with `kb vectors restore NAME SNAPSHOT_DIR`"
    }

    /// Finishes queued writes, snapshots every collection with unsaved log entries, closes.
    public func close() {
        queue.close()
        for name in lock.withLock({ Array(collections.keys) }) where (lock.withLock { sinceSnapshot[name] ?? 0 }) > 0 {
            do { try saveGraph(name) } catch { logger.error("snapshot on close failed", metadata: ["collection": "\(name)", "error": "\(error)"]) }
        }
    }

    // MARK: Keys

    static func key(_ kind: Character, _ name: String, _ rest: [UInt8] = []) -> [UInt8] {
        var key = [UInt8(ascii: kind.unicodeScalars.first!)] + Array(name.utf8)
        if kind == "p" || kind == "l" { key.append(0) }
        return key + rest
    }

    static func seqBytes(_ seq: UInt64) -> [UInt8] { withUnsafeBytes(of: seq.bigEndian) { Array($0) } }

    // MARK: Collections

    public func collection(_ name: String) throws -> VectorCollection {
        guard let collection = lock.withLock({ collections[name] }) else {
            throw RPCError(.notFound, "collection '\(name)' does not exist")
        }
        return collection
    }

    public var all: [VectorCollection] { lock.withLock { collections.values.sorted { $0.config.name < $1.config.name } } }

    /// Creates a collection; an existing one with the same settings is returned, different ones are refused.
    public func create(_ requested: Kb_Vector_V1_CollectionConfig) async throws -> VectorCollection {
        let config = try Self.checked(requested)
        if let existing = lock.withLock({ collections[config.name] }) {
            guard existing.config == config else { throw RPCError(.alreadyExists, "collection '\(config.name)' exists with other settings") }
            return existing
        }
        var batch = WriteBatch()
        batch.put(Self.key("c", config.name), try config.serializedBytes())
        let collection = VectorCollection(config: config)
        try await commit(batch) { [self] in
            lock.withLock {
                if collections[config.name] == nil {
                    collections[config.name] = collection
                    sequences[config.name] = 0
                }
            }
        }
        return try self.collection(config.name)
    }

    /// Deletes a collection with its points, log and graph files.
    public func delete(_ name: String) async throws -> Bool {
        guard lock.withLock({ collections[name] }) != nil else { return false }
        var batch = WriteBatch()
        batch.delete(Self.key("c", name))
        batch.delete(Self.key("s", name))
        for prefix in [Self.key("p", name), Self.key("l", name)] {
            try db.forEach(prefix: prefix) { key, _ in batch.delete(key); return true }
        }
        try await commit(batch) { [self] in
            lock.withLock {
                collections[name] = nil
                sequences[name] = nil
                sinceSnapshot[name] = nil
            }
        }
        try? FileManager.default.removeItem(at: graphDirectory(name))
        return true
    }

    /// Whether `name` is a valid collection name: 1-128 letters, digits, `_`, `-`, `.`.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128 && name.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D || $0 == 0x2E }
    }

    static func checked(_ requested: Kb_Vector_V1_CollectionConfig) throws -> Kb_Vector_V1_CollectionConfig {
        var config = requested
        guard isValidName(config.name), config.name != ".", config.name != ".." else {
            throw RPCError.invalidArgument(field: "config.name", reason: .nameInvalid, "must be 1-128 letters, digits, '_', '-' or '.' (found '\(config.name)')")
        }
        guard (1...65536).contains(config.dimension) else { throw RPCError.invalidArgument(field: "config.dimension", reason: .outOfRange, "must be between 1 and 65536 (found \(config.dimension))") }
        if case .UNRECOGNIZED(let value) = config.distance { throw RPCError.invalidArgument(field: "config.distance", reason: .unknownValue, "unknown distance \(value)") }
        if config.hnsw.m == 0 { config.hnsw.m = 16 }
        if config.hnsw.efConstruct == 0 { config.hnsw.efConstruct = 100 }
        guard (2...128).contains(config.hnsw.m) else { throw RPCError.invalidArgument(field: "config.hnsw.m", reason: .outOfRange, "must be between 2 and 128 (found \(config.hnsw.m))") }
        guard (8...4096).contains(config.hnsw.efConstruct) else { throw RPCError.invalidArgument(field: "config.hnsw.ef_construct", reason: .outOfRange, "must be between 8 and 4096 (found \(config.hnsw.efConstruct))") }
        guard config.textField.utf8.count <= 128 else { throw RPCError.invalidArgument(field: "config.text_field", reason: .tooLong, "must be at most 128 bytes") }
        return config
    }

    // MARK: Points

    /// Stores points (all or none), then applies them to the collection; returns how many.
    public func upsert(_ request: Kb_Vector_V1_UpsertPointsRequest) async throws -> Int {
        let collection = try self.collection(request.collection)
        let dimension = Int(collection.config.dimension)
        guard request.points.count <= 10_000 else { throw RPCError.invalidArgument(field: "points", reason: .tooMany, "at most 10000 points per call (found \(request.points.count))") }
        for (index, point) in request.points.enumerated() {
            guard !point.id.isEmpty, point.id.utf8.count <= 256 else { throw RPCError.invalidArgument(field: "points[\(index)].id", reason: .tooLong, "must be 1-256 bytes") }
            guard point.vector.count == dimension else {
                throw RPCError.invalidArgument(field: "points[\(index)].vector", reason: .inconsistent, "has \(point.vector.count) values; collection '\(request.collection)' has dimension \(dimension)")
            }
            guard point.vector.allSatisfy(\.isFinite) else { throw RPCError.invalidArgument(field: "points[\(index)].vector", reason: .outOfRange, "must hold finite numbers (found NaN or infinity)") }
            for (key, value) in point.payload {
                guard !key.isEmpty, key.utf8.count <= 128 else { throw RPCError.invalidArgument(field: "points[\(index)].payload", reason: .tooLong, "field names must be 1-128 bytes") }
                if case .float(let number)? = value.kind, !number.isFinite { throw RPCError.invalidArgument(field: "points[\(index)].payload.\(key)", reason: .outOfRange, "must be finite") }
                if value.kind == nil { throw RPCError.invalidArgument(field: "points[\(index)].payload.\(key)", reason: .required, "has no value") }
            }
        }
        // A batch naming an id twice keeps its last version.
        var last: [String: Int] = [:]
        for (index, point) in request.points.enumerated() { last[point.id] = index }
        let points = request.points.enumerated().filter { last[$0.element.id] == $0.offset }.map(\.element)
        guard !points.isEmpty else { return 0 }
        let name = request.collection
        // Stored as given (the graph keeps its own normalised copy for cosine).
        let encoded: [[UInt8]] = try points.map { try $0.serializedBytes() }
        try await commit(WriteBatch(), prepare: { [self] (batch: inout WriteBatch) in
            var seq = lock.withLock { sequences[name] ?? 0 }
            for (point, bytes) in zip(points, encoded) {
                seq += 1
                batch.put(Self.key("p", name, Array(point.id.utf8)), bytes)
                batch.put(Self.key("l", name, Self.seqBytes(seq)), [1] + Array(point.id.utf8))
            }
            batch.put(Self.key("s", name), Self.seqBytes(seq))
            lock.withLock { sequences[name] = seq }
        }) { [self] in
            for point in points { collection.apply(upsert: point) }
            afterApply(name, entries: points.count)
        }
        return points.count
    }

    /// Deletes points by id and/or filter; returns how many existed.
    public func deletePoints(_ request: Kb_Vector_V1_DeletePointsRequest) async throws -> Int {
        let collection = try self.collection(request.collection)
        var ids = Set(request.ids)
        if request.hasFilter { ids.formUnion(collection.ids(matching: try PayloadFilter(request.filter))) }
        let existing = Set(collection.allIds)
        let doomed = ids.filter { existing.contains($0) }.sorted()
        guard !doomed.isEmpty else { return 0 }
        let name = request.collection
        try await commit(WriteBatch(), prepare: { [self] (batch: inout WriteBatch) in
            var seq = lock.withLock { sequences[name] ?? 0 }
            for id in doomed {
                seq += 1
                batch.delete(Self.key("p", name, Array(id.utf8)))
                batch.put(Self.key("l", name, Self.seqBytes(seq)), [2] + Array(id.utf8))
            }
            batch.put(Self.key("s", name), Self.seqBytes(seq))
            lock.withLock { sequences[name] = seq }
        }) { [self] in
            for id in doomed { collection.apply(delete: id) }
            afterApply(name, entries: doomed.count)
        }
        return doomed.count
    }

    /// Points as stored (the vectors as written, not the graph's normalised copies), in the
    /// order asked; unknown ids are left out. For read-modify-write of payloads.
    public func storedPoints(_ name: String, ids: [String]) throws -> [Kb_Vector_V1_Point] {
        _ = try collection(name)
        return try ids.compactMap { id in
            try db.get(Self.key("p", name, Array(id.utf8))).map { try Kb_Vector_V1_Point(serializedBytes: $0) }
        }
    }

    /// Repairs a collection's graph on the commit thread (writes wait meanwhile): relinks around
    /// deleted nodes and frees their slots, or rebuilds the graph from the points when it is
    /// unavailable. Returns the tombstones removed.
    public func repairIndex(_ name: String) async throws -> Int {
        let collection = try self.collection(name)
        guard collection.currentIndex.1 == .ready else {
            _ = try await rebuild(name)
            return 0
        }
        var removed = 0
        try await commit(WriteBatch()) {
            let (index, state, _) = collection.currentIndex
            guard state == .ready else { return }
            removed = index.tombstones
            _ = index.repair()
        }
        return removed
    }

    /// After applying: repair tombstones past 10% of the graph, snapshot past `snapshotEvery`.
    private func afterApply(_ name: String, entries: Int) {
        guard let collection = lock.withLock({ collections[name] }) else { return }
        let (index, state, _) = collection.currentIndex
        if state == .ready, index.tombstones > 64, index.tombstones * 10 > index.slots {
            index.repair()
        }
        let pending = lock.withLock { () -> Int in
            sinceSnapshot[name, default: 0] += entries
            return sinceSnapshot[name]!
        }
        if pending >= snapshotEvery {
            do { try saveGraph(name) } catch { logger.error("graph snapshot failed", metadata: ["collection": "\(name)", "error": "\(error)"]) }
        }
    }

    // MARK: Group commit

    /// Queues `batch` (filled by `prepare` on the commit thread, so log sequence numbers follow
    /// commit order); once it is on disk runs `apply` on the commit thread, then returns.
    /// A caller cancelled before its write joins a group gets `CancellationError`.
    func commit(_ batch: WriteBatch, prepare: @escaping (inout WriteBatch) -> Void = { _ in }, apply: @escaping () -> Void) async throws {
        try await queue.submit(Job(batch: batch, prepare: prepare, apply: apply))
    }

    private func runGroup(_ jobs: [Job]) -> [Result<Void, any Error>] {
        var group = WriteBatch()
        for var job in jobs {
            job.prepare(&job.batch)
            group.append(job.batch)
        }
        do {
            try db.write(group, sync: true)
        } catch {
            let damaged = (error as? LevelDB.Error)?.code == .damaged
            let failure = RPCError(damaged ? .dataLoss : .internal, "vector store write failed: \(error)")
            return jobs.map { _ in .failure(failure) }
        }
        for job in jobs { job.apply() }
        return jobs.map { _ in .success(()) }
    }

    // MARK: Graph snapshots and loading

    func graphDirectory(_ name: String) -> URL { directory.appendingPathComponent("graphs").appendingPathComponent(name) }

    /// Writes the collection's graph, node ids and seq, then drops the log up to that seq.
    /// On the commit thread (or at close), so no write is applied meanwhile.
    func saveGraph(_ name: String) throws {
        guard let collection = lock.withLock({ collections[name] }) else { return }
        let (index, state, _) = collection.currentIndex
        guard state == .ready else { return }
        let seq = lock.withLock { sequences[name] ?? 0 }
        let target = graphDirectory(name)
        let staging = directory.appendingPathComponent("graphs").appendingPathComponent(".\(name).tmp")
        try? FileManager.default.removeItem(at: staging)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        try index.write(to: staging.appendingPathComponent("index.hnsw"))
        var ids = Kb_Vector_V1_StringList()
        ids.values = collection.nodeIds.map { $0 ?? "" }
        try ids.serializedData().write(to: staging.appendingPathComponent("ids.pb"))
        try Data(Self.seqBytes(seq)).write(to: staging.appendingPathComponent("seq"))
        try? FileManager.default.removeItem(at: target)
        try FileManager.default.moveItem(at: staging, to: target)
        var batch = WriteBatch()
        try db.forEach(prefix: Self.key("l", name)) { key, _ in
            let entrySeq = key.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            if entrySeq <= seq { batch.delete(key) }
            return entrySeq <= seq
        }
        if batch.count > 0 { try db.write(batch, sync: true) }
        lock.withLock { sinceSnapshot[name] = 0 }
        logger.info("graph snapshot written", metadata: ["collection": "\(name)", "seq": "\(seq)", "points": "\(collection.pointCount)"])
    }

    /// Loads one collection: its points, then its graph snapshot plus the log after it; without
    /// a snapshot the graph is built from the points; a damaged snapshot leaves the index
    /// unavailable (keyword searches still answer) until a rebuild.
    func load(name: String, config: Kb_Vector_V1_CollectionConfig) throws {
        let collection = VectorCollection(config: config)
        var points: [String: Kb_Vector_V1_Point] = [:]
        var order: [String] = []
        try db.forEach(prefix: Self.key("p", name)) { _, value in
            let point = try Kb_Vector_V1_Point(serializedBytes: value)
            points[point.id] = point
            order.append(point.id)
            return true
        }
        let seq = try db.get(Self.key("s", name)).map { $0.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } } ?? 0
        lock.withLock {
            collections[name] = collection
            sequences[name] = seq
        }
        let graph = graphDirectory(name)
        guard FileManager.default.fileExists(atPath: graph.appendingPathComponent("index.hnsw").path) else {
            collection.rebuild(from: order.compactMap { points[$0] })
            logger.info("collection loaded (graph built from points)", metadata: ["collection": "\(name)", "points": "\(points.count)"])
            lock.withLock { sinceSnapshot[name] = points.count }
            return
        }
        do {
            let index = try HNSWIndex.read(from: graph.appendingPathComponent("index.hnsw"))
            guard index.dimension == Int(config.dimension), index.metric == collection.metric else {
                throw VectorStoreError(description: "the graph snapshot does not match the collection's settings")
            }
            let ids = try Kb_Vector_V1_StringList(serializedBytes: Data(contentsOf: graph.appendingPathComponent("ids.pb"))).values
            let savedSeq = try Data(contentsOf: graph.appendingPathComponent("seq")).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            var placed: [(UInt32?, Kb_Vector_V1_Point)] = []
            var mapped = Set<String>()
            for (node, id) in ids.enumerated() where !id.isEmpty {
                if let point = points[id], !index.isDeleted(UInt32(node)) {
                    placed.append((UInt32(node), point))
                    mapped.insert(id)
                } else if !index.isDeleted(UInt32(node)) {
                    index.remove(UInt32(node))
                }
            }
            collection.reset(index: index, state: .ready, problem: "", points: placed)
            // Replay the log after the snapshot, in order.
            var replayed = 0
            try db.forEach(prefix: Self.key("l", name)) { key, value in
                let entrySeq = key.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                guard entrySeq > savedSeq, let op = value.first else { return true }
                let id = String(decoding: value.dropFirst(), as: UTF8.self)
                if op == 1, let point = points[id] { collection.apply(upsert: point) } else { collection.apply(delete: id) }
                replayed += 1
                return true
            }
            // Points the snapshot and log both missed (should not happen) are added too.
            for id in order where collection.points([id], withPayload: false, withVector: false).isEmpty {
                if let point = points[id] { collection.apply(upsert: point) }
            }
            lock.withLock { sinceSnapshot[name] = replayed }
            logger.info("collection loaded", metadata: ["collection": "\(name)", "points": "\(collection.pointCount)", "replayed": "\(replayed)"])
        } catch {
            let problem = "graph snapshot unusable: \(error)"
            collection.reset(index: HNSWIndex(dimension: Int(config.dimension), metric: collection.metric), state: .unavailable, problem: problem,
                             points: order.compactMap { points[$0] }.map { (nil, $0) })
            logger.error("collection index unavailable; keyword searches still answer; run a rebuild", metadata: ["collection": "\(name)", "error": "\(error)"])
        }
    }

    /// Rebuilds a collection's graph from its stored points, then snapshots it.
    public func rebuild(_ name: String) async throws -> VectorCollection {
        let collection = try self.collection(name)
        try await commit(WriteBatch()) { [self] in
            var points: [Kb_Vector_V1_Point] = []
            try? db.forEach(prefix: Self.key("p", name)) { _, value in
                if let point = try? Kb_Vector_V1_Point(serializedBytes: value) { points.append(point) }
                return true
            }
            collection.rebuild(from: points)
            do { try saveGraph(name) } catch { logger.error("snapshot after rebuild failed", metadata: ["collection": "\(name)", "error": "\(error)"]) }
        }
        return collection
    }

    // MARK: Collection snapshots (backup) and restore

    /// Writes a consistent copy of one collection (config, points, graph) into directory `path`.
    public func snapshot(_ name: String, to path: String?) async throws -> Kb_Vector_V1_SnapshotCollectionResponse {
        let collection = try self.collection(name)
        let target = path.flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? directory.appendingPathComponent("snapshots").appendingPathComponent("\(name)-\(Int(Date().timeIntervalSince1970))")
        guard !FileManager.default.fileExists(atPath: target.path) else { throw RPCError(.alreadyExists, field: "path", reason: nil, "\(target.path) already exists") }
        var response = Kb_Vector_V1_SnapshotCollectionResponse()
        var failure: Error?
        try await commit(WriteBatch()) { [self] in
            do {
                try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
                try collection.config.serializedData().write(to: target.appendingPathComponent("collection.pb"))
                var out = Data()
                var count = 0
                try db.forEach(prefix: Self.key("p", name)) { _, value in
                    var length = UInt32(value.count).littleEndian
                    withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
                    out.append(contentsOf: value)
                    count += 1
                    return true
                }
                try out.write(to: target.appendingPathComponent("points.bin"))
                response.pointCount = Int64(count)
                response.bytes = Int64(out.count)
            } catch {
                failure = error
            }
        }
        if let failure { throw RPCError(.failedPrecondition, "snapshot failed: \(failure)") }
        response.path = target.path
        return response
    }

    /// Replaces (or creates) collection `name` with the snapshot in directory `path`; the graph is
    /// rebuilt from the snapshot's points.
    public func restore(_ name: String, from path: String) async throws -> VectorCollection {
        let source = URL(fileURLWithPath: path)
        let config: Kb_Vector_V1_CollectionConfig
        var points: [Kb_Vector_V1_Point] = []
        do {
            var stored = try Kb_Vector_V1_CollectionConfig(serializedBytes: Data(contentsOf: source.appendingPathComponent("collection.pb")))
            stored.name = name
            config = try Self.checked(stored)
            let data = try Data(contentsOf: source.appendingPathComponent("points.bin"))
            var offset = 0
            while offset < data.count {
                guard offset + 4 <= data.count else { throw VectorStoreError(description: "points.bin is truncated") }
                let length = Int(UInt32(littleEndian: data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }))
                guard offset + 4 + length <= data.count else { throw VectorStoreError(description: "points.bin is truncated") }
                let point = try Kb_Vector_V1_Point(serializedBytes: data.subdata(in: (offset + 4)..<(offset + 4 + length)))
                guard point.vector.count == Int(config.dimension) else { throw VectorStoreError(description: "point \(point.id) has the wrong dimension") }
                guard !point.id.isEmpty, point.id.utf8.count <= 256 else { throw VectorStoreError(description: "a point has an empty or over-long id") }
                guard point.vector.allSatisfy(\.isFinite) else { throw VectorStoreError(description: "point \(point.id) holds NaN or infinity") }
                points.append(point)
                offset += 4 + length
            }
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError(.invalidArgument, field: "path", reason: .invalidFormat, "\(path) is not a usable collection snapshot: \(error)")
        }
        var batch = WriteBatch()
        for prefix in [Self.key("p", name), Self.key("l", name)] {
            try db.forEach(prefix: prefix) { key, _ in batch.delete(key); return true }
        }
        batch.put(Self.key("c", name), try config.serializedBytes())
        for point in points { batch.put(Self.key("p", name, Array(point.id.utf8)), try point.serializedBytes()) }
        batch.put(Self.key("s", name), Self.seqBytes(0))
        let collection = VectorCollection(config: config)
        try await commit(batch) { [self] in
            collection.rebuild(from: points)
            lock.withLock {
                collections[name] = collection
                sequences[name] = 0
                sinceSnapshot[name] = points.count
            }
            try? FileManager.default.removeItem(at: graphDirectory(name))
            do { try saveGraph(name) } catch { logger.error("snapshot after restore failed", metadata: ["collection": "\(name)", "error": "\(error)"]) }
        }
        return collection
    }
}

/// A snapshot or graph file that cannot be used.
struct VectorStoreError: Error, CustomStringConvertible {
    var description: String
}
