import Foundation
import HTTPTypes
import Hummingbird
import KBProto
import KBRPC
import Logging

/// Collections: list, describe, create, update, delete, exists, cluster, and the guide's
/// optimiser calls.
extension QdrantFront {
    func addCollectionRoutes<Context: RequestContext>(to router: Router<Context>) {
        let store = self.store
        handle(router, .get, "/collections") { _, _, _ in
            .object(["collections": .array(store.all.map { .object(["name": .string($0.config.name)]) })])
        }
        handle(router, .get, "/collections/:name") { request, context, _ in
            let collection = try namedCollection(context)
            return info(collection, guideShape: Self.wantsGuideShape(request))
        }
        handle(router, .get, "/collections/:name/exists") { _, context, _ in
            .object(["exists": .bool((try? store.collection(context.parameters.get("name") ?? "")) != nil)])
        }
        handle(router, .put, "/collections/:name") { _, context, body in
            let name = context.parameters.get("name") ?? ""
            let config = try Self.collectionConfig(name: name, body)
            if (try? store.collection(name)) != nil {
                throw QdrantError(status: 409, message: "Wrong input: Collection `\(name)` already exists!", field: "name")
            }
            _ = try await store.create(config)
            return .bool(true)
        }
        handle(router, .delete, "/collections/:name") { _, context, _ in
            .bool(try await store.delete(context.parameters.get("name") ?? ""))
        }
        handle(router, .patch, "/collections/:name") { _, context, body in
            let collection = try namedCollection(context)
            try Self.checkUpdate(collection.config, body)
            return .bool(true)
        }
        handle(router, .get, "/collections/:name/cluster") { _, context, _ in
            let collection = try namedCollection(context)
            return .object([
                "peer_id": .int(1), "shard_count": .int(1),
                "local_shards": .array([.object(["shard_id": .int(0), "points_count": .int(Int64(collection.pointCount)), "state": .string("Active")])]),
                "remote_shards": .array([]), "shard_transfers": .array([]),
            ])
        }
        // The guide's `POST …/optimizers` (optimize-qdrant.sh, rebuild-qdrant-index.sh) and the
        // Aegis guide's `POST …/index` ({"operation": "optimize" | "vacuum"}): repair the index.
        let optimizer = self.optimizer
        for path: RouterPath in ["/collections/:name/optimizers", "/collections/:name/index"] {
            handle(router, .post, path) { _, context, _ in
                let collection = try namedCollection(context)
                optimizer.start(collection.config.name)
                return .object(["operation_id": .int(optimizer.operations), "status": .string("acknowledged")])
            }
        }
        // Payload indexes: the engine indexes every keyword, integer and boolean field already.
        handle(router, .put, "/collections/:name/index") { _, context, _ in
            _ = try namedCollection(context)
            return Self.completed(0)
        }
        handle(router, .delete, "/collections/:name/index/:field") { _, context, _ in
            _ = try namedCollection(context)
            return Self.completed(0)
        }
    }

    /// Whether the caller is a shell tool (`curl`, `wget`), whose scripts in the operations guide
    /// read `.result.optimizer_status.ok`: they get `{"ok": true|false, "status": …}` there;
    /// every other client (qdrant-client, browsers, HTTP libraries) gets Qdrant's own `"ok"` or
    /// `{"error": …}`.
    static func wantsGuideShape(_ request: Request) -> Bool {
        let agent = request.headers[.userAgent]?.lowercased() ?? ""
        return agent.hasPrefix("curl/") || agent.hasPrefix("wget/")
    }

    /// Qdrant's `CollectionInfo`; `status` is green when the index serves, yellow while it is
    /// repaired or rebuilt, red when unavailable (keyword searches only).
    func info(_ collection: VectorCollection, guideShape: Bool) -> QdrantJSON {
        let (index, state, problem) = collection.currentIndex
        let config = collection.config
        let optimizing = optimizer.isRunning(config.name) || state == .building
        let failure = optimizer.failure(config.name) ?? (state == .unavailable ? problem : nil)
        let optimizerStatus: QdrantJSON
        if guideShape {
            var members: [String: QdrantJSON] = ["ok": .bool(!optimizing && failure == nil), "status": .string(failure != nil ? "error" : optimizing ? "optimizing" : "ok"), "deleted_vectors": .int(Int64(index.tombstones))]
            if let failure { members["error"] = .string(failure) }
            optimizerStatus = .object(members)
        } else {
            optimizerStatus = failure.map { .object(["error": .string($0)]) } ?? .string("ok")
        }
        let points = Int64(collection.pointCount)
        let distance = switch config.distance {
        case .dot: "Dot"
        case .euclidean: "Euclid"
        default: "Cosine"
        }
        return .object([
            "status": .string(state == .unavailable ? "red" : optimizing ? "yellow" : "green"),
            "optimizer_status": optimizerStatus,
            "indexed_vectors_count": .int(state == .ready ? points : 0),
            "points_count": .int(points),
            "segments_count": .int(1),
            "config": .object([
                "params": .object([
                    "vectors": .object(["size": .int(Int64(config.dimension)), "distance": .string(distance), "on_disk": .bool(false)]),
                    "shard_number": .int(1), "replication_factor": .int(1), "write_consistency_factor": .int(1), "on_disk_payload": .bool(false),
                ]),
                "hnsw_config": .object([
                    "m": .int(Int64(config.hnsw.m)), "ef_construct": .int(Int64(config.hnsw.efConstruct)),
                    "full_scan_threshold": .int(Int64(VectorCollection.fullScanThreshold)), "max_indexing_threads": .int(0), "on_disk": .bool(false),
                ]),
                "optimizer_config": .object([
                    "deleted_threshold": .double(0.1), "vacuum_min_vector_number": .int(64), "default_segment_number": .int(1),
                    "max_segment_size": .null, "memmap_threshold": .null, "indexing_threshold": .int(0), "flush_interval_sec": .int(0), "max_optimization_threads": .null,
                ]),
                "wal_config": .object(["wal_capacity_mb": .int(32), "wal_segments_ahead": .int(0)]),
                "quantization_config": config.int8Quantization ? .object(["scalar": .object(["type": .string("int8"), "always_ram": .bool(true)])]) : .null,
            ]),
            "payload_schema": .object([:]),
        ])
    }

    /// The engine's collection settings from Qdrant's create body: `vectors {size, distance}`
    /// (one unnamed vector), `hnsw_config {m, ef_construct}` (there or inside `vectors`),
    /// `quantization_config {scalar {type: int8}}`. The text field is `text`, like the default
    /// collections'.
    static func collectionConfig(name: String, _ body: QdrantJSON?) throws -> Kb_Vector_V1_CollectionConfig {
        guard case .object(let members)? = body else { throw QdrantError.invalid("body", "must be a JSON object with vectors {size, distance}") }
        guard case .object(let vectors)? = members["vectors"] else {
            throw QdrantError.invalid("vectors", "is required: {\"size\": N, \"distance\": \"Cosine\" | \"Dot\" | \"Euclid\"} (one unnamed vector)")
        }
        if vectors["size"] == nil, !vectors.isEmpty {
            throw QdrantError.invalid("vectors", "named vectors (\(vectors.keys.sorted().joined(separator: ", "))) are not supported: give one unnamed vector {size, distance}")
        }
        var config = Kb_Vector_V1_CollectionConfig()
        config.name = name
        config.textField = "text"
        guard case .int(let size)? = vectors["size"], (1...65536).contains(size) else {
            throw QdrantError.invalid("vectors.size", "must be an integer between 1 and 65536 (found \(vectors["size"]?.serialized ?? "nothing"))")
        }
        config.dimension = Int32(size)
        switch vectors["distance"] {
        case .string("Cosine")?: config.distance = .cosine
        case .string("Dot")?: config.distance = .dot
        case .string("Euclid")?: config.distance = .euclidean
        case let other: throw QdrantError.invalid("vectors.distance", "must be Cosine, Dot or Euclid (found \(other?.serialized ?? "nothing"))")
        }
        for (field, hnsw) in [("hnsw_config", members["hnsw_config"]), ("vectors.hnsw_config", vectors["hnsw_config"])] {
            guard let hnsw, hnsw != .null else { continue }
            guard case .object(let settings) = hnsw else { throw QdrantError.invalid(field, "must be an object") }
            if let m = settings["m"], m != .null {
                guard case .int(let value) = m, (2...128).contains(value) else { throw QdrantError.invalid("\(field).m", "must be an integer between 2 and 128 (found \(m.serialized))") }
                config.hnsw.m = Int32(value)
            }
            if let ef = settings["ef_construct"], ef != .null {
                guard case .int(let value) = ef, (8...4096).contains(value) else { throw QdrantError.invalid("\(field).ef_construct", "must be an integer between 8 and 4096 (found \(ef.serialized))") }
                config.hnsw.efConstruct = Int32(value)
            }
        }
        for (field, quantization) in [("quantization_config", members["quantization_config"]), ("vectors.quantization_config", vectors["quantization_config"])] {
            guard let quantization, quantization != .null else { continue }
            guard case .object(let kinds) = quantization, let scalar = kinds["scalar"], kinds.count == 1 else {
                throw QdrantError.invalid(field, "only scalar int8 quantization is supported ({\"scalar\": {\"type\": \"int8\"}})")
            }
            guard scalar["type"] == .string("int8") else { throw QdrantError.invalid("\(field).scalar.type", "must be int8") }
            config.int8Quantization = true
        }
        if case .object(let sparse)? = members["sparse_vectors"], !sparse.isEmpty {
            throw QdrantError.invalid("sparse_vectors", "sparse vectors are not supported")
        }
        if let source = members["init_from"], source != .null { throw QdrantError.invalid("init_from", "is not supported: restore a snapshot instead") }
        return config
    }

    /// `PATCH /collections/{name}`: optimiser, WAL and parameter settings are accepted (the
    /// engine has no segments to tune); HNSW `m` / `ef_construct` may only restate the current
    /// values (the graph is built with them: create a new collection to change them).
    static func checkUpdate(_ config: Kb_Vector_V1_CollectionConfig, _ body: QdrantJSON?) throws {
        guard let body, body != .null else { return }
        guard case .object(let members) = body else { throw QdrantError.invalid("body", "must be a JSON object") }
        for (field, hnsw) in [("hnsw_config", members["hnsw_config"]), ("vectors.\"\".hnsw_config", members["vectors"]?[""]?["hnsw_config"])] {
            guard case .object(let settings)? = hnsw else { continue }
            for (key, current) in [("m", config.hnsw.m), ("ef_construct", config.hnsw.efConstruct)] {
                if let value = settings[key], value != .null, value != .int(Int64(current)) {
                    throw QdrantError.invalid("\(field).\(key)", "cannot change on an existing collection (it is \(current)); create a new collection and upsert into it")
                }
            }
        }
        if let quantization = members["quantization_config"], quantization != .null, (quantization["scalar"] != nil) != config.int8Quantization {
            throw QdrantError.invalid("quantization_config", "cannot change on an existing collection; create a new collection")
        }
    }

    /// Qdrant's `UpdateResult` of a write that is on disk.
    static func completed(_ operation: Int64) -> QdrantJSON {
        .object(["operation_id": .int(operation), "status": .string("completed")])
    }
}

/// Index repairs asked for through the Qdrant port (`POST …/optimizers`, `POST …/index`): one at
/// a time per collection, in the background; `GET /collections/{name}` reports them.
final class QdrantOptimizer: @unchecked Sendable {
    private let store: VectorStore
    private let logger: Logger
    private let lock = NSLock()
    private var running: Set<String> = []
    private var failures: [String: String] = [:]
    private var started = 0

    init(store: VectorStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// Repairs started so far (the operation id answered).
    var operations: Int64 { lock.withLock { Int64(started) } }

    func isRunning(_ name: String) -> Bool { lock.withLock { running.contains(name) } }

    func failure(_ name: String) -> String? { lock.withLock { failures[name] } }

    /// Starts a repair of `name` unless one is running.
    func start(_ name: String) {
        let fresh = lock.withLock { () -> Bool in
            started += 1
            return running.insert(name).inserted
        }
        guard fresh else { return }
        let store = store, logger = logger
        Task {
            var failure: String?
            do {
                let removed = try await store.repairIndex(name)
                logger.notice("collection index optimised through the Qdrant API", metadata: ["collection": "\(name)", "tombstones_removed": "\(removed)"])
            } catch {
                failure = "index repair failed: \(error)"
                logger.error("collection index repair failed", metadata: ["collection": "\(name)", "error": "\(error)"])
            }
            self.lock.withLock {
                self.running.remove(name)
                self.failures[name] = failure
            }
        }
    }
}
