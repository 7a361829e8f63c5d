import Foundation
import KBEmbeddings
import KBProto
import KBRPC
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// The graph→vector indexer: follows the graph store's change feed (every team) and keeps the
/// `knowledge_384` collection of vector-search equal to the graph (README, "The indexer").
///
/// For each batch of changes it reads the changed entities, embeds those whose content differs
/// from their point's (`content_hash` in the payload), upserts them keyed by `team:name`, deletes
/// the points of deleted entities, and only then stores the cursor (`IndexCursor`): at least
/// once, idempotent, so `kill -9` of the gateway, graph-store or vector-search loses and
/// duplicates nothing. A cursor the feed no longer holds (`OUT_OF_RANGE`) is a resynchronisation
/// from a snapshot of the graph. A peer that does not answer degrades the `indexer` health
/// component; the indexer retries with back-off and never stops.
public final class KnowledgeIndexer: Service, Sendable {
    /// Where the indexer reads and writes, and how much at a time.
    public struct Configuration: Sendable {
        /// Where graph-store is (`KB_GRAPH_STORE_ADDR`).
        public var graph: RPCClient.Configuration
        /// Where vector-search is (`KB_VECTOR_SEARCH_ADDR`).
        public var vectors: RPCClient.Configuration
        /// Entities embedded (and points written) per batch.
        public var batchSize: Int
        /// The collection kept equal to the graph.
        public var collection: String = "knowledge_384"
        /// How long one long poll of the feed waits for a change.
        public var pollWait: Duration = .seconds(10)
        /// The longest wait between retries when a peer does not answer.
        public var maxBackoff: Duration = .seconds(10)

        /// The indexer's settings with the defaults for collection, poll wait and back-off.
        public init(graph: RPCClient.Configuration, vectors: RPCClient.Configuration, batchSize: Int) {
            self.graph = graph
            self.vectors = vectors
            self.batchSize = batchSize
        }
    }

    /// What the indexer has done and where it stands (`GET /internal/indexer`, health, metrics).
    public struct Status: Sendable {
        /// The last feed sequence number whose changes are all in the collection.
        public var cursor: Int64 = 0
        /// The newest sequence number the graph store reported.
        public var head: Int64 = 0
        /// `knowledge_index_lag_seconds`: 0 when caught up, else the age of the newest change indexed.
        public var lagSeconds: Double = 0
        /// Entities embedded and written.
        public var indexed: Int64 = 0
        /// Entities whose point already held their content (not embedded again).
        public var unchanged: Int64 = 0
        /// Points deleted (deleted entities, stale points of a resynchronisation).
        public var deleted: Int64 = 0
        /// Windows of 256 word pieces embedded (more than `indexed` when entities are long).
        public var windows: Int64 = 0
        /// Resynchronisations from a snapshot of the graph.
        public var resyncs: Int64 = 0
        /// Why graph-store / vector-search did not answer the last call (nil: it answered).
        public var graphError: String?
        /// Why vector-search did not answer the last call (nil: it answered).
        public var vectorError: String?
        /// Any other failure of the last step (the cursor file, the model).
        public var otherError: String?
        /// Whether the first pass (from the stored cursor to the head) is done.
        public var caughtUp = false
        /// The last rebuild from the graph, if any.
        public var rebuild: RebuildProgress?
        /// Entities embedded by the provider's model into its collection (`knowledge_1536`).
        public var providerIndexed: Int64 = 0
        /// Entities left out of the provider's collection because the provider refused them
        /// (budget exhausted, a bad answer); they are written at their next change or rebuild.
        public var providerSkipped: Int64 = 0
        /// Why the provider refused the last entities it left out.
        public var providerError: String?
        /// `knowledge_index_changes_behind`: feed entries after the cursor.
        public var behind: Int64 { max(0, head - cursor) }
    }

    let configuration: Configuration
    let graph: RPCClient
    let vectors: RPCClient
    let embedder: Result<KnowledgeEmbedder, Error>
    /// The second collection, embedded by a provider's model, when one is configured.
    let provider: ProviderModel?
    let cursorFile: IndexCursor
    let logger: Logger
    let state = Mutex(Status())
    /// One batch, resynchronisation or rebuild at a time.
    let work = ExclusiveAccess()

    /// An indexer over `engine` (the gateway's local model, or why it is missing); the cursor
    /// lives in `dataDirectory` (nil: in memory).
    public init(configuration: Configuration, engine: Result<TextEmbedder, Error>, provider: ProviderModel? = nil, dataDirectory: URL?, logger: Logger) {
        self.provider = provider
        self.configuration = configuration
        var graphClient = configuration.graph
        graphClient.failFast = true
        var vectorClient = configuration.vectors
        vectorClient.failFast = true
        graph = RPCClient(configuration: graphClient)
        vectors = RPCClient(configuration: vectorClient)
        embedder = engine.flatMap { engine in Result { try KnowledgeEmbedder(engine: engine) } }
        cursorFile = IndexCursor(directory: dataDirectory)
        self.logger = logger
    }

    /// A copy of the current status.
    public var status: Status { state.withLock { $0 } }

    // MARK: Following the feed

    /// Follows the feed until the gateway stops.
    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.follow() }
        await graph.close()
        await vectors.close()
    }

    /// The loop: one step at a time, backing off while a peer does not answer.
    func follow() async {
        var backoff = Duration.milliseconds(200)
        var cursor: Int64?
        var mustResynchronise = false
        while !Task.isCancelled {
            do {
                if cursor == nil {
                    do {
                        cursor = try cursorFile.load() ?? 0
                    } catch {
                        logger.error("indexer cursor unreadable; resynchronising from the graph", metadata: ["error": "\(error)"])
                        cursor = try await resynchronise()
                    }
                    var created = try await ensureCollection(configuration.collection)
                    if let provider { created = try await ensureCollection(provider.collection, dimension: provider.dimension) || created }
                    // A collection made now cannot hold what the cursor says was indexed.
                    if created && cursor! > 0 { mustResynchronise = true }
                    state.withLock { $0.cursor = cursor! }
                    logger.info("indexer following the graph's change feed", metadata: ["after_seq": "\(cursor!)", "collection": "\(configuration.collection)"])
                }
                if mustResynchronise {
                    cursor = try await resynchronise()
                    mustResynchronise = false
                }
                cursor = try await step(after: cursor!)
                backoff = .milliseconds(200)
            } catch is CancellationError {
                break
            } catch let failure as PeerFailure where failure.peer == .vectors && (failure.error as? RPCError)?.code == .notFound && cursor != nil {
                // A collection went away (deleted by an operator, a vector store started
                // empty): the points before the cursor are gone too, so recreate and resynchronise.
                logger.notice("indexer collection missing in vector-search; recreating it and resynchronising from the graph", metadata: ["error": "\(failure.error)"])
                mustResynchronise = true
            } catch {
                if Task.isCancelled { break }
                record(error)
                logger.warning("indexer waiting for its peers", metadata: ["error": "\(error)", "retry_in": "\(backoff)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }

    /// One long poll of the feed and the batch it brings; returns the new cursor (stored).
    func step(after cursor: Int64) async throws -> Int64 {
        let answer: Kb_Graph_V1_ChangesResponse
        do {
            answer = try await graphCall(GraphStoreMethods.changes, .with {
                $0.allTeams = true
                $0.afterSeq = cursor
                $0.limit = Int32(configuration.batchSize)
                $0.waitMs = Int32(configuration.pollWait.milliseconds)
            }, timeout: configuration.pollWait + .seconds(5))
        } catch let failure as PeerFailure where (failure.error as? RPCError)?.code == .outOfRange {
            logger.notice("indexer cursor outside the change feed's window; resynchronising from the graph", metadata: ["after_seq": "\(cursor)", "reason": "\(failure.error)"])
            return try await resynchronise()
        }
        state.withLock { $0.head = answer.headSeq }
        if !answer.changes.isEmpty {
            try await work.run { try await self.apply(answer.changes) }
        }
        let next = answer.nextAfterSeq
        if next != cursor { try cursorFile.store(next) }
        let lag = next >= answer.headSeq ? 0 : max(0, Date().timeIntervalSince1970 - Double(answer.changes.last?.timeMs ?? 0) / 1000)
        state.withLock {
            $0.cursor = next
            $0.lagSeconds = lag
            if next >= answer.headSeq { $0.caughtUp = true }
            $0.otherError = nil
        }
        publish()
        return next
    }

    /// Applies a batch of changes: the last change of each entity decides (relations are not
    /// part of the text form); upserted entities are read as they are now.
    func apply(_ changes: [Kb_Graph_V1_Change]) async throws {
        var latest: [String: Kb_Graph_V1_Change] = [:]
        var order: [String] = []
        for change in changes where change.kind == .entityUpserted || change.kind == .entityDeleted {
            let key = KnowledgeDocument.pointID(team: change.team, name: change.name)
            if latest.updateValue(change, forKey: key) == nil { order.append(key) }
        }
        guard !order.isEmpty else { return }
        var documents: [KnowledgeDocument] = []
        var deletions: [String] = []
        let upserts = order.compactMap { latest[$0] }.filter { $0.kind == .entityUpserted }
        for key in order where latest[key]?.kind == .entityDeleted { deletions.append(key) }
        let entities = try await readEntities(upserts.map { ($0.team, $0.name) })
        for (change, entity) in zip(upserts, entities) {
            if let entity {
                documents.append(KnowledgeDocument(entity, team: change.team))
            } else {
                deletions.append(KnowledgeDocument.pointID(team: change.team, name: change.name))  // deleted since
            }
        }
        try await index(documents, into: configuration.collection)
        if !deletions.isEmpty {
            let answer = try await vectorCall(VectorSearchMethods.deletePoints, .with {
                $0.collection = configuration.collection
                $0.ids = deletions
            })
            state.withLock { $0.deleted += answer.deleted }
            Counter(label: "knowledge_index_deleted_total").increment(by: Int(answer.deleted))
            if let provider {
                _ = try await vectorCall(VectorSearchMethods.deletePoints, .with {
                    $0.collection = provider.collection
                    $0.ids = deletions
                })
            }
        }
    }

    /// The entities `(team, name)` as they are now; nil for one that no longer exists.
    func readEntities(_ keys: [(team: String, name: String)]) async throws -> [Kb_Graph_V1_Entity?] {
        try await withThrowingTaskGroup(of: (Int, Kb_Graph_V1_Entity?).self) { group in
            for (index, key) in keys.enumerated() {
                group.addTask {
                    do {
                        let answer = try await self.graphCall(GraphStoreMethods.getEntity, .with {
                            $0.team = key.team
                            $0.name = key.name
                        })
                        return (index, answer.entity)
                    } catch let failure as PeerFailure where (failure.error as? RPCError)?.code == .notFound {
                        return (index, nil)
                    }
                }
            }
            var entities = [Kb_Graph_V1_Entity?](repeating: nil, count: keys.count)
            for try await (index, entity) in group { entities[index] = entity }
            return entities
        }
    }

    /// Writes `documents` to `collection`: those whose point already holds their content hash
    /// are skipped, the others embedded and upserted, `batchSize` at a time. `force` embeds
    /// every one (a rebuild). Returns how many were embedded.
    @discardableResult
    func index(_ documents: [KnowledgeDocument], into collection: String, force: Bool = false) async throws -> Int {
        let count = try await write(documents, into: collection, force: force, embed: try localEmbedding())
        if collection == configuration.collection, let provider { try await index(documents, with: provider) }
        return count
    }

    /// The local model's vectors of some texts, counted in `indexed` and `windows`; throws
    /// `noModel` when the model is not loaded.
    func localEmbedding() throws -> @Sendable ([String]) async throws -> [[Float]] {
        let engine: KnowledgeEmbedder
        switch embedder {
        case .success(let loaded): engine = loaded
        case .failure(let error): throw IndexerError(.noModel, "the local embedding model is not loaded, so nothing can be indexed: \(error)")
        }
        return { texts in
            let (vectors, windows) = try await engine.embed(texts)
            self.state.withLock {
                $0.indexed += Int64(texts.count)
                $0.windows += Int64(windows)
            }
            Counter(label: "knowledge_index_indexed_total").increment(by: texts.count)
            return vectors
        }
    }

    /// Writes `documents` to `collection` with the vectors `embed` gives: points whose
    /// `content_hash` already matches are skipped (unless `force`), the others embedded and
    /// upserted `batchSize` at a time. Returns how many were embedded.
    @discardableResult
    func write(_ documents: [KnowledgeDocument], into collection: String, force: Bool, embed: ([String]) async throws -> [[Float]]) async throws -> Int {
        guard !documents.isEmpty else { return 0 }
        var changed = documents
        if !force {
            let existing = try await vectorCall(VectorSearchMethods.getPoints, .with {
                $0.collection = collection
                $0.ids = documents.map(\.id)
                $0.withPayload = true
            })
            var hashes: [String: String] = [:]
            for point in existing.points {
                if case .keyword(let hash) = point.payload[KnowledgeDocument.hashField]?.kind { hashes[point.id] = hash }
            }
            changed = documents.filter { hashes[$0.id] != $0.contentHash }
            let unchanged = documents.count - changed.count
            if unchanged > 0, collection == configuration.collection {
                state.withLock { $0.unchanged += Int64(unchanged) }
                Counter(label: "knowledge_index_unchanged_total").increment(by: unchanged)
            }
        }
        for start in stride(from: 0, to: changed.count, by: configuration.batchSize) {
            let batch = Array(changed[start..<min(start + configuration.batchSize, changed.count)])
            let vectors = try await embed(batch.map(\.text))
            _ = try await vectorCall(VectorSearchMethods.upsertPoints, .with {
                $0.collection = collection
                $0.points = zip(batch, vectors).map { $0.point(vector: $1) }
            })
        }
        return changed.count
    }

    // MARK: Resynchronisation

    /// Brings the collection equal to the graph without the feed (README, "The change feed",
    /// steps 1–3): note the head, upsert every entity of every team (unchanged ones are not
    /// embedded), delete the points of entities that are gone, and follow from the noted head.
    /// Returns that head, stored as the cursor.
    func resynchronise() async throws -> Int64 {
        try await work.run {
            try await self.ensureCollection(self.configuration.collection)
            let head = try await self.graphCall(GraphStoreMethods.getStats, .init()).feedHeadSeq
            var keep: [String] = []
            try await self.forEachEntityPage(teams: nil) { entities in
                let documents = entities.map { KnowledgeDocument($0) }
                keep += documents.map(\.id)
                try await self.index(documents, into: self.configuration.collection)
            }
            let stale = try await self.vectorCall(VectorSearchMethods.deletePoints, .with {
                $0.collection = self.configuration.collection
                $0.filter = .with { $0.mustNot = [.with { $0.hasID_p = .with { $0.values = keep } }] }
            })
            if let provider = self.provider {
                try await self.ensureCollection(provider.collection, dimension: provider.dimension)
                _ = try await self.vectorCall(VectorSearchMethods.deletePoints, .with {
                    $0.collection = provider.collection
                    $0.filter = .with { $0.mustNot = [.with { $0.hasID_p = .with { $0.values = keep } }] }
                })
            }
            try self.cursorFile.store(head)
            self.state.withLock {
                $0.resyncs += 1
                $0.deleted += stale.deleted
                $0.cursor = head
            }
            Counter(label: "knowledge_index_resyncs_total").increment()
            self.logger.notice("indexer resynchronised from the graph", metadata: ["entities": "\(keep.count)", "stale_points_deleted": "\(stale.deleted)", "head_seq": "\(head)"])
            return head
        }
    }

    /// Calls `body` with every entity of `teams` (nil: every team), a page at a time.
    func forEachEntityPage(teams: [String]?, _ body: ([Kb_Graph_V1_Entity]) async throws -> Void) async throws {
        var teams = teams ?? []
        if teams.isEmpty { teams = try await graphCall(GraphStoreMethods.listTeams, .init()).teams.map(\.team) }
        guard !teams.isEmpty else { return }
        var cursor = ""
        repeat {
            let page = try await graphCall(GraphStoreMethods.queryEntities, .with {
                $0.teams = teams
                $0.sort = .name
                $0.limit = 1000
                $0.cursor = cursor
            })
            for start in stride(from: 0, to: page.entities.count, by: configuration.batchSize) {
                try await body(Array(page.entities[start..<min(start + configuration.batchSize, page.entities.count)]))
            }
            cursor = page.nextCursor
        } while !cursor.isEmpty
    }

    /// Creates `name` (384 dimensions unless told, cosine, text field `text`) when vector-search lacks it.
    /// Returns whether it had to create it.
    @discardableResult
    func ensureCollection(_ name: String, dimension: Int = TextEmbedder.dimension) async throws -> Bool {
        do {
            _ = try await vectorCall(VectorSearchMethods.describeCollection, .with { $0.name = name })
            return false
        } catch let failure as PeerFailure where (failure.error as? RPCError)?.code == .notFound {
            _ = try await vectorCall(VectorSearchMethods.createCollection, .with {
                $0.config = .with {
                    $0.name = name
                    $0.dimension = Int32(dimension)
                    $0.distance = .cosine
                    $0.textField = "text"
                }
            })
            logger.notice("indexer created its collection", metadata: ["collection": "\(name)"])
            return true
        }
    }

    // MARK: Peers, errors, metrics

    /// A call to graph-store or vector-search that failed, saying which.
    struct PeerFailure: Error, CustomStringConvertible {
        enum Peer: String { case graph = "graph-store", vectors = "vector-search" }
        let peer: Peer
        let error: any Error
        var description: String { "\(peer.rawValue): \(error)" }
    }

    func graphCall<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request, timeout: Duration = .seconds(30)) async throws -> Response {
        do {
            let answer = try await graph.call(method, request, options: CallOptions(timeout: timeout))
            state.withLock { $0.graphError = nil }
            return answer
        } catch let error as RPCError where ![.unavailable, .deadlineExceeded, .cancelled].contains(error.code) {
            state.withLock { $0.graphError = nil }  // it answered
            throw PeerFailure(peer: .graph, error: error)
        } catch {
            throw PeerFailure(peer: .graph, error: error)
        }
    }

    func vectorCall<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request) async throws -> Response {
        do {
            let answer = try await vectors.call(method, request, options: CallOptions(timeout: .seconds(60)))
            state.withLock { $0.vectorError = nil }
            return answer
        } catch let error as RPCError where ![.unavailable, .deadlineExceeded, .cancelled].contains(error.code) {
            state.withLock { $0.vectorError = nil }
            throw PeerFailure(peer: .vectors, error: error)
        } catch {
            throw PeerFailure(peer: .vectors, error: error)
        }
    }

    /// Notes a failed step for health and status.
    func record(_ error: any Error) {
        state.withLock { status in
            if let failure = error as? PeerFailure {
                switch failure.peer {
                case .graph: status.graphError = "\(failure.error)"
                case .vectors: status.vectorError = "\(failure.error)"
                }
            } else {
                status.otherError = "\(error)"
            }
        }
        Counter(label: "knowledge_index_errors_total").increment()
        publish()
    }

    /// The gauges: `knowledge_index_lag_seconds`, `knowledge_index_changes_behind`.
    func publish() {
        let status = self.status
        Gauge(label: "knowledge_index_lag_seconds").record(status.lagSeconds)
        Gauge(label: "knowledge_index_changes_behind").record(status.behind)
    }
}

/// Runs one body at a time (in arrival order), across suspension points: the indexer's batches,
/// resynchronisations and rebuilds never interleave.
final class ExclusiveAccess: Sendable {
    private let state = Mutex<(busy: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let enter = state.withLock { state -> Bool in
                if state.busy {
                    state.waiters.append(continuation)
                    return false
                }
                state.busy = true
                return true
            }
            if enter { continuation.resume() }
        }
        defer {
            let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
                if state.waiters.isEmpty {
                    state.busy = false
                    return nil
                }
                return state.waiters.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}
