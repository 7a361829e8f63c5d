import Foundation
import KBProto
import KBRPC
import KBRuntime
import Logging
import Metrics
import NIOPosix
import SwiftProtobuf
import ServiceLifecycle
import KBTime

/// The RPC face of a `VectorStore`: one short handler per method of `kb.vector.v1.VectorSearch`,
/// the default collections, the health component and the search latency histogram.
///
/// Searches: `limit` (default 10), `ef` (default 64), `score_threshold` (cosine/dot: at least;
/// euclidean: at most), `with_payload`, `with_vector`, a payload filter applied during the HNSW
/// walk, `exact` on request. Collections of at most 2,000 points, and filters whose required
/// keyword terms leave at most 2,000 candidates, are scanned exactly (`exact: true` in the
/// answer). A `text_query` adds BM25 over the collection's text field, fused with the vector
/// score (default 0.7 / 0.3). While a collection's index is unavailable, text searches answer
/// from keywords alone with `degraded: true`.
public final class VectorSearchService: Service, @unchecked Sendable {
    public let store: VectorStore
    /// Most bytes of points one answer (GetPoints, SearchBatch) carries; past it the answer
    /// stops and says `truncated`, so no answer is built beyond the frame limit. With one
    /// blocking thread per core running searches, this also bounds the memory that parallel
    /// large requests can take.
    public let maxAnswerBytes: Int

    /// The collections of the operations guide, created on first start (cosine, text field `text`).
    public static let defaultCollections: [(String, Int32)] = [("knowledge_384", 384), ("knowledge_1536", 1536)]

    /// The only folder snapshots are written to and restored from (`KB_BACKUP_DIR`).
    public let backupRoot: BackupRoot

    /// Other servers over the same store (the Qdrant-compatible HTTP port), started with the
    /// service and stopped before the store closes.
    public let fronts: [any Service]

    /// The face of `store`, keeping snapshots inside `backupRoot`; answers stay under the frame
    /// limit `maxFrameBytes` less a margin; `fronts` run beside it.
    public init(store: VectorStore, backupRoot: BackupRoot, maxFrameBytes: Int = Frame.defaultMaxLength, fronts: [any Service] = []) {
        self.store = store
        self.backupRoot = backupRoot
        self.fronts = fronts
        self.maxAnswerBytes = maxFrameBytes - min(maxFrameBytes / 8, 64 << 10)
    }

    /// Creates the default collections that do not exist yet.
    public func createDefaults() async throws {
        for (name, dimension) in Self.defaultCollections where (try? store.collection(name)) == nil {
            var config = Kb_Vector_V1_CollectionConfig()
            config.name = name
            config.dimension = dimension
            config.distance = .cosine
            config.textField = "text"
            _ = try await store.create(config)
        }
    }

    /// Publishes the collections' sizes every ten seconds until shutdown, then closes the store.
    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var published: Set<String> = []
            while !Task.isCancelled {
                published = self.publishSizes(previously: published)
                try await Task.sleep(for: .seconds(10))
            }
        }
        store.close()
    }

    /// The store-size gauges of the dashboard (README, "Monitoring"): `knowledge_vector_points` and
    /// `knowledge_vector_memory_bytes` (the HNSW index, the guide's Qdrant memory) per collection;
    /// a collection deleted since the last call reads 0. Returns the collections published.
    @discardableResult
    func publishSizes(previously: Set<String> = []) -> Set<String> {
        var names: Set<String> = []
        for collection in store.all {
            let info = collection.info
            let name = info.config.name
            names.insert(name)
            Gauge(label: "knowledge_vector_points", dimensions: [("collection", name)]).record(info.pointCount)
            Gauge(label: "knowledge_vector_memory_bytes", dimensions: [("collection", name)]).record(info.memoryBytes)
        }
        for gone in previously.subtracting(names) {
            Gauge(label: "knowledge_vector_points", dimensions: [("collection", gone)]).record(0)
            Gauge(label: "knowledge_vector_memory_bytes", dimensions: [("collection", gone)]).record(0)
        }
        return names
    }

    /// Registers every method of `kb.vector.v1.VectorSearch`. Writes, snapshots, restores and
    /// rebuilds run on tasks (they wait for the store's group commit or its own work); searches
    /// and point reads run on the server's blocking pool; listing and describing collections
    /// are in-memory reads answered on the event loop.
    public func register(on router: inout RPCRouter) {
        let store = self.store
        let maxAnswerBytes = self.maxAnswerBytes
        router.register(VectorSearchMethods.createCollection) { request, _ in try await store.create(request.config).info }
        router.register(VectorSearchMethods.listCollections, on: .eventLoop) { _, _ in .with { $0.collections = store.all.map(\.info) } }
        router.register(VectorSearchMethods.describeCollection, on: .eventLoop) { request, _ in try store.collection(request.name).info }
        router.register(VectorSearchMethods.deleteCollection) { request, _ in
            guard VectorStore.isValidName(request.name) else { throw RPCError.invalidArgument(field: "name", reason: .nameInvalid, "is not a collection name") }
            var response = Kb_Vector_V1_DeleteCollectionResponse()
            response.deleted = try await store.delete(request.name)
            return response
        }
        router.register(VectorSearchMethods.upsertPoints) { request, _ in
            var response = Kb_Vector_V1_UpsertPointsResponse()
            response.upserted = Int64(try await store.upsert(request))
            return response
        }
        router.register(VectorSearchMethods.getPoints, on: .threadPool) { request, context in
            guard request.ids.count <= 10_000 else { throw RPCError.invalidArgument(field: "ids", reason: .tooMany, "at most 10000 ids per call") }
            let collection = try store.collection(request.collection)
            var response = Kb_Vector_V1_GetPointsResponse()
            // In slices, so an answer stops (truncated) near the byte limit instead of past it.
            var answerBytes = 0
            var next = request.ids.startIndex
            while next < request.ids.endIndex {
                try context.checkCancellation()
                let slice = Array(request.ids[next..<min(next + 64, request.ids.endIndex)])
                next += slice.count
                for point in collection.points(slice, withPayload: request.withPayload, withVector: request.withVector) {
                    answerBytes += try (point.serializedBytes() as [UInt8]).count + 6
                    if answerBytes > maxAnswerBytes, !response.points.isEmpty {
                        response.truncated = true
                        return response
                    }
                    response.points.append(point)
                }
            }
            return response
        }
        router.register(VectorSearchMethods.deletePoints) { request, _ in
            var response = Kb_Vector_V1_DeletePointsResponse()
            response.deleted = Int64(try await store.deletePoints(request))
            return response
        }
        router.register(VectorSearchMethods.search, on: .threadPool) { request, context in try Self.search(store, request, context: context) }
        router.register(VectorSearchMethods.searchBatch, on: .threadPool) { request, context in
            guard request.searches.count <= 100 else { throw RPCError.invalidArgument(field: "searches", reason: .tooMany, "at most 100 searches per call") }
            var response = Kb_Vector_V1_SearchBatchResponse()
            var answerBytes = 0
            for (index, search) in request.searches.enumerated() {
                do {
                    // An expired or abandoned batch stops between searches (and inside one).
                    try context.checkCancellation()
                    let answer = try Self.search(store, search, context: context)
                    // Past the byte limit the batch stops: the answers so far, `truncated`.
                    answerBytes += try (answer.serializedBytes() as [UInt8]).count + 6
                    if answerBytes > maxAnswerBytes, !response.responses.isEmpty {
                        response.truncated = true
                        break
                    }
                    response.responses.append(answer)
                } catch var error as RPCError {
                    // The search's field, under its place in the batch: `vector` → `searches[2].vector`.
                    let path = "searches[\(index)]"
                    error.message = path + (error.field == nil ? ": " : ".") + error.message
                    error.field = path + (error.field.map { ".\($0)" } ?? "")
                    throw error
                }
            }
            return response
        }
        let backupRoot = backupRoot
        router.register(VectorSearchMethods.snapshotCollection) { request, context in
            _ = try store.collection(request.name)
            let given = request.path.isEmpty ? "\(request.name)-\(Int(Date().timeIntervalSince1970))" : request.path
            let target = try backupRoot.newBackup(given, field: "path")
            let response = try await store.snapshot(request.name, to: target.path)
            context.logger.info("collection snapshot written", metadata: ["collection": "\(request.name)", "path": "\(response.path)", "points": "\(response.pointCount)"])
            return response
        }
        router.register(VectorSearchMethods.restoreCollection) { request, context in
            guard VectorStore.isValidName(request.name) else { throw RPCError.invalidArgument(field: "name", reason: .nameInvalid, "is not a collection name") }
            let source = try backupRoot.existingBackup(request.path, field: "path")
            // The snapshot's files are read only when they are plain files inside the root.
            for file in ["collection.pb", "points.bin"] {
                _ = try backupRoot.existingBackup(source.appendingPathComponent(file).path, field: "path")
            }
            let collection = try await store.restore(request.name, from: source.path)
            context.logger.notice("collection restored", metadata: ["collection": "\(request.name)", "points": "\(collection.pointCount)"])
            return collection.info
        }
        router.register(VectorSearchMethods.rebuildIndex) { request, context in
            let collection = try await store.rebuild(request.name)
            context.logger.notice("collection index rebuilt", metadata: ["collection": "\(request.name)", "points": "\(collection.pointCount)"])
            return collection.info
        }
    }

    static func search(_ store: VectorStore, _ request: Kb_Vector_V1_SearchRequest, context: RPCContext? = nil) throws -> Kb_Vector_V1_SearchResponse {
        let collection = try store.collection(request.collection)
        let start = ContinuousClock.now
        let response = try collection.search(request, isCancelled: { context?.isCancelled ?? false })
        let elapsed = ContinuousClock.now - start
        Timer(label: "knowledge_vector_search_latency_seconds", dimensions: [("dimension", String(collection.config.dimension))])
            .recordNanoseconds(elapsed.inNanoseconds)
        return response
    }

    /// The `collections` component: per collection its points and index state; degraded when an
    /// index is unavailable or rebuilding; unhealthy with the reason once LevelDB has reported
    /// corruption.
    public func registerHealth(on health: HealthRegistry) {
        let store = self.store
        health.register("collections") {
            var details: [String: HealthDetail] = [:]
            var status = HealthStatus.healthy
            for collection in store.all {
                let (_, state, problem) = collection.currentIndex
                let name = collection.config.name
                details["\(name).points"] = .integer(Int64(collection.pointCount))
                details["\(name).index"] = .string(state == .ready ? "ready" : state == .building ? "building" : "unavailable")
                if state != .ready {
                    status = .degraded
                    if !problem.isEmpty { details["\(name).problem"] = .string(problem) }
                }
            }
            details["collections"] = .integer(Int64(store.all.count))
            if let damage = store.db.damage {
                status = .unhealthy
                details["error"] = .string(damage)
            }
            return ComponentHealth(status, details)
        }
    }
}

extension VectorSearchService: RPCService {
    /// The service itself, whose shutdown closes the store, then its fronts (shut down in
    /// reverse order: the fronts stop before the store closes).
    public var lifecycleServices: [any Service] { [self] + fronts }
}
