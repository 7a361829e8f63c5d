import Foundation
import KBProto
import KBRPC
import VectorIndex

/// One collection in memory: its HNSW index, the point ids and payloads of its nodes, the BM25
/// index of its text field, and keyword postings for filter cardinality. Writes are applied by
/// the store's commit thread in commit order; searches run concurrently with them.
public final class VectorCollection: @unchecked Sendable {
    public let config: Kb_Vector_V1_CollectionConfig
    public let metric: Metric
    private(set) var index: HNSWIndex
    private(set) var indexState: Kb_Vector_V1_IndexState = .ready
    private(set) var indexProblem = ""

    private let lock = NSLock()
    private var ids: [String?] = []
    private var nodes: [String: UInt32] = [:]
    private var payloads: [Payload?] = []
    private var keywords = KeywordIndex()
    private var postings: [String: Set<UInt32>] = [:]

    /// Searches on fewer points than this, or whose filter leaves fewer candidates, scan exactly.
    static let fullScanThreshold = 2000
    /// The default breadth of a search.
    static let defaultEF = 64

    init(config: Kb_Vector_V1_CollectionConfig) {
        self.config = config
        metric = Self.metric(config.distance)
        index = HNSWIndex(dimension: Int(config.dimension), metric: metric, parameters: HNSWParameters(m: Int(config.hnsw.m), efConstruction: Int(config.hnsw.efConstruct)))
    }

    static func metric(_ distance: Kb_Vector_V1_Distance) -> Metric {
        switch distance {
        case .dot: .dot
        case .euclidean: .euclidean
        default: .cosine
        }
    }

    // MARK: State

    /// Live points.
    public var pointCount: Int { lock.withLock { nodes.count } }

    func setIndex(_ index: HNSWIndex, state: Kb_Vector_V1_IndexState, problem: String = "") {
        lock.withLock {
            self.index = index
            indexState = state
            indexProblem = problem
        }
    }

    func markIndex(_ state: Kb_Vector_V1_IndexState, problem: String = "") {
        lock.withLock {
            indexState = state
            indexProblem = problem
        }
    }

    var currentIndex: (HNSWIndex, Kb_Vector_V1_IndexState, String) { lock.withLock { (index, indexState, indexProblem) } }

    public var info: Kb_Vector_V1_CollectionInfo {
        let (index, state, _) = currentIndex
        var info = Kb_Vector_V1_CollectionInfo()
        info.config = config
        info.pointCount = Int64(pointCount)
        info.indexState = state
        info.memoryBytes = Int64(index.memoryBytes)
        info.deletedCount = Int64(index.tombstones)
        return info
    }

    /// Node ids → point ids of every live point (for snapshots).
    var nodeIds: [String?] { lock.withLock { ids } }

    // MARK: Applying writes (commit thread only)

    /// Inserts or replaces a point: the old node is tombstoned, a new one added to the graph.
    func apply(upsert point: Kb_Vector_V1_Point) {
        insert(point)
        quantizeWhenDue()
    }

    private func insert(_ point: Kb_Vector_V1_Point) {
        if let old = lock.withLock({ detach(point.id) }) { index.remove(old) }
        guard indexState != .unavailable else {
            // No graph to add to: the point gets a keyword-only placeholder node (see attach).
            lock.withLock { attach(0, point: point) }
            return
        }
        let node = point.vector.withUnsafeBufferPointer { index.add($0) }
        lock.withLock { attach(node, point: point) }
    }

    /// int8 quantization learns its ranges once the collection has enough points.
    private func quantizeWhenDue() {
        guard indexState != .unavailable else { return }
        if config.int8Quantization && !index.isQuantized && index.count >= Self.quantizationTrainingPoints { index.quantize() }
    }

    /// Points needed before an int8-quantized collection learns its ranges (searches use floats until then).
    static let quantizationTrainingPoints = 1000

    /// Removes a point; false when there was none.
    @discardableResult
    func apply(delete id: String) -> Bool {
        guard let old = lock.withLock({ detach(id) }) else { return false }
        if indexState != .unavailable { index.remove(old) }
        return true
    }

    /// Keyword-only placeholders while the index is unavailable: node ids above any real node.
    private static let placeholderBase = UInt32(1 << 31)
    private var nextPlaceholder = placeholderBase

    private func attach(_ node: UInt32, point: Kb_Vector_V1_Point) {
        var node = node
        if indexState == .unavailable {
            node = nextPlaceholder
            nextPlaceholder += 1
        }
        let slot = Int(node)
        if node < Self.placeholderBase {
            if slot >= ids.count {
                ids.append(contentsOf: repeatElement(nil, count: slot - ids.count + 1))
                payloads.append(contentsOf: repeatElement(nil, count: slot - payloads.count + 1))
            }
            ids[slot] = point.id
            payloads[slot] = point.payload
        } else {
            placeholderIds[node] = point.id
            placeholderPayloads[node] = point.payload
        }
        nodes[point.id] = node
        if !config.textField.isEmpty, case .text(let text)? = point.payload[config.textField]?.kind {
            keywords.add(node, text: text)
        }
        for (field, value) in point.payload {
            for term in Self.terms(value) { postings[field + "=" + term, default: []].insert(node) }
        }
    }

    private var placeholderIds: [UInt32: String] = [:]
    private var placeholderPayloads: [UInt32: Payload] = [:]

    private func detach(_ id: String) -> UInt32? {
        guard let node = nodes.removeValue(forKey: id) else { return nil }
        let payload = payloadUnlocked(node) ?? [:]
        if !config.textField.isEmpty, case .text(let text)? = payload[config.textField]?.kind {
            keywords.remove(node, text: text)
        }
        for (field, value) in payload {
            for term in Self.terms(value) { postings[field + "=" + term]?.remove(node) }
        }
        if node >= Self.placeholderBase {
            placeholderIds.removeValue(forKey: node)
            placeholderPayloads.removeValue(forKey: node)
            return nil
        }
        ids[Int(node)] = nil
        payloads[Int(node)] = nil
        return node
    }

    private func payloadUnlocked(_ node: UInt32) -> Payload? {
        node >= Self.placeholderBase ? placeholderPayloads[node] : (Int(node) < payloads.count ? payloads[Int(node)] : nil)
    }

    private func idUnlocked(_ node: UInt32) -> String? {
        node >= Self.placeholderBase ? placeholderIds[node] : (Int(node) < ids.count ? ids[Int(node)] : nil)
    }

    static func terms(_ value: Kb_Vector_V1_PayloadValue) -> [String] {
        switch value.kind {
        case .keyword, .integer, .boolean: [PayloadFilter.term(value)]
        case .keywords(let list): list.values.map { "k:" + $0 }
        // A text field also matches as one keyword (an exact `match`), so it is a term too.
        case .text(let text): ["k:" + text]
        default: []
        }
    }

    /// Replaces the whole in-memory state: a freshly built or loaded index with its points.
    func reset(index: HNSWIndex, state: Kb_Vector_V1_IndexState, problem: String, points: [(node: UInt32?, point: Kb_Vector_V1_Point)]) {
        lock.withLock {
            self.index = index
            indexState = state
            indexProblem = problem
            ids = []
            nodes = [:]
            payloads = []
            keywords = KeywordIndex()
            postings = [:]
            placeholderIds = [:]
            placeholderPayloads = [:]
            nextPlaceholder = Self.placeholderBase
            for (node, point) in points { attach(node ?? 0, point: point) }
        }
    }

    /// Rebuilds the graph from the points, exclusively (state BUILDING meanwhile).
    func rebuild(from points: [Kb_Vector_V1_Point]) {
        markIndex(.building)
        let fresh = HNSWIndex(dimension: Int(config.dimension), metric: metric, parameters: HNSWParameters(m: Int(config.hnsw.m), efConstruction: Int(config.hnsw.efConstruct)), capacity: max(points.count, 16))
        var placed: [(UInt32?, Kb_Vector_V1_Point)] = []
        placed.reserveCapacity(points.count)
        for point in points {
            let node = point.vector.withUnsafeBufferPointer { fresh.add($0) }
            placed.append((node, point))
        }
        if config.int8Quantization && !points.isEmpty { fresh.quantize() }
        reset(index: fresh, state: .ready, problem: "", points: placed)
    }

    // MARK: Reads

    /// Points by id, in the order asked (unknown ids are left out).
    func points(_ requested: [String], withPayload: Bool, withVector: Bool) -> [Kb_Vector_V1_Point] {
        let (index, state, _) = currentIndex
        return requested.compactMap { id -> Kb_Vector_V1_Point? in
            guard let (node, payload) = lock.withLock({ nodes[id].map { ($0, payloadUnlocked($0)) } }) else { return nil }
            var point = Kb_Vector_V1_Point()
            point.id = id
            if withPayload { point.payload = payload ?? [:] }
            if withVector && state != .unavailable && node < Self.placeholderBase { point.vector = index.storedVector(node) }
            return point
        }
    }

    /// Ids of the points `filter` accepts.
    func ids(matching filter: PayloadFilter) -> [String] {
        lock.withLock {
            nodes.compactMap { id, node in filter.matches(id: id, payload: payloadUnlocked(node) ?? [:]) ? id : nil }
        }
    }

    /// Every point id.
    var allIds: [String] { lock.withLock { Array(nodes.keys) } }

    /// Answers a search (see `VectorSearchService` for the semantics). `isCancelled` is asked
    /// every 256 candidates the filter looks at, and before the results are assembled; once it
    /// is true the search stops with `CancellationError`.
    func search(_ request: Kb_Vector_V1_SearchRequest, isCancelled: @escaping () -> Bool = { false }) throws -> Kb_Vector_V1_SearchResponse {
        let dimension = Int(config.dimension)
        let hasVector = !request.vector.isEmpty
        let text = request.textQuery
        guard hasVector || !text.isEmpty else { throw RPCError.invalidArgument(field: "vector", reason: .required, "is required unless text_query is given") }
        if hasVector {
            guard request.vector.count == dimension else {
                throw RPCError.invalidArgument(field: "vector", reason: .inconsistent, "has \(request.vector.count) values; collection '\(config.name)' has dimension \(dimension)")
            }
            guard request.vector.allSatisfy(\.isFinite) else { throw RPCError.invalidArgument(field: "vector", reason: .outOfRange, "must hold finite numbers (found NaN or infinity)") }
        }
        guard request.limit >= 0, request.limit <= 1000 else { throw RPCError.invalidArgument(field: "limit", reason: .outOfRange, "must be between 0 and 1000 (found \(request.limit))") }
        guard request.ef >= 0, request.ef <= 10000 else { throw RPCError.invalidArgument(field: "ef", reason: .outOfRange, "must be between 0 and 10000 (found \(request.ef))") }
        if !text.isEmpty && config.textField.isEmpty {
            throw RPCError(.failedPrecondition, field: "text_query", reason: .inconsistent, "collection '\(config.name)' has no text field for keyword search")
        }
        let vectorWeight = request.hasVectorWeight ? request.vectorWeight.value : 0.7
        let keywordWeight = request.hasKeywordWeight ? request.keywordWeight.value : 0.3
        guard vectorWeight.isFinite, keywordWeight.isFinite, vectorWeight >= 0, keywordWeight >= 0, vectorWeight + keywordWeight > 0 else {
            throw RPCError.invalidArgument(field: "vector_weight", reason: .outOfRange, "weights must be finite, not negative, and not both zero")
        }
        let limit = request.limit == 0 ? 10 : Int(request.limit)
        let filter = request.hasFilter ? try PayloadFilter(request.filter) : nil
        let (index, state, problem) = currentIndex
        var response = Kb_Vector_V1_SearchResponse()

        // A cancelled search rejects every further candidate, so the walk ends quickly; the
        // flag then turns the (empty) result into `CancellationError`.
        var looked = 0
        var cancelled = false
        let stillWanted: () -> Bool = {
            looked &+= 1
            if looked & 255 == 0, !cancelled, isCancelled() { cancelled = true }
            return !cancelled
        }
        let accept: (UInt32) -> Bool = { [self] node in
            guard stillWanted() else { return false }
            return lock.withLock {
                guard let id = idUnlocked(node) else { return false }
                return filter?.matches(id: id, payload: payloadUnlocked(node) ?? [:]) ?? true
            }
        }

        // The vector index cannot serve: keywords alone, said so.
        if state != .ready || !hasVector {
            guard !text.isEmpty else {
                throw RPCError(.unavailable, "collection '\(config.name)': the vector index is \(state == .building ? "being rebuilt" : "unavailable")\(problem.isEmpty ? "" : " (\(problem))"); searches with a text_query are answered from keywords")
            }
            let found = lock.withLock { keywords.search(text, limit: limit, accept: { _ in true }) }.filter { accept($0.node) }
            let best = found.first?.score ?? 1
            response.degraded = hasVector
            response.results = found.prefix(limit).compactMap { hit in
                let keywordScore = best > 0 ? hit.score / best : 0
                if request.hasScoreThreshold && keywordScore < request.scoreThreshold.value { return nil }
                return scored(node: hit.node, score: keywordScore, vectorScore: 0, keywordScore: keywordScore, request: request, index: index, withVector: false)
            }
            return response
        }

        let fetch = text.isEmpty ? limit : max(limit * 4, 40)
        var neighbors: [Neighbor]
        let candidates = filter.flatMap { candidateNodes(for: $0) }
        if request.exact || index.count <= Self.fullScanThreshold {
            neighbors = index.exactSearch(request.vector, k: fetch, filter: filter == nil ? nil : accept)
            response.exact = true
        } else if let candidates, candidates.count <= Self.fullScanThreshold {
            neighbors = index.exactSearch(request.vector, k: fetch, among: candidates.filter(accept))
            response.exact = true
        } else {
            let ef = request.ef == 0 ? max(Self.defaultEF, fetch) : max(Int(request.ef), fetch)
            neighbors = index.search(request.vector, k: fetch, ef: ef, filter: filter == nil ? { [self] node in stillWanted() && lock.withLock { idUnlocked(node) != nil } } : accept)
        }

        if cancelled || isCancelled() { throw CancellationError() }
        var results: [(node: UInt32, score: Float, vector: Float, keyword: Float)]
        if text.isEmpty {
            results = neighbors.map { ($0.id, metric.score(distance: $0.distance), metric.score(distance: $0.distance), 0) }
        } else {
            // Hybrid: the union of both candidate lists, each scored on both sides, fused.
            let keywordHits = lock.withLock { keywords.search(text, limit: fetch, accept: { _ in true }) }.filter { accept($0.node) }
            var keywordScores: [UInt32: Float] = [:]
            for hit in keywordHits { keywordScores[hit.node] = hit.score }
            var vectorDistances: [UInt32: Float] = [:]
            for neighbor in neighbors { vectorDistances[neighbor.id] = neighbor.distance }
            var query = request.vector
            if metric == .cosine {
                let norm = query.reduce(0) { $0 + $1 * $1 }.squareRoot()
                if norm > 0 { query = query.map { $0 / norm } }
            }
            for hit in keywordHits where vectorDistances[hit.node] == nil {
                let stored = index.storedVector(hit.node)
                let distance: Float = switch metric {
                case .cosine: 1 - zip(query, stored).reduce(0) { $0 + $1.0 * $1.1 }
                case .dot: -zip(query, stored).reduce(0) { $0 + $1.0 * $1.1 }
                case .euclidean: zip(query, stored).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
                }
                vectorDistances[hit.node] = distance
            }
            let bestKeyword = keywordHits.first?.score ?? 0
            let distances = Array(vectorDistances.values)
            let (low, high) = (distances.min() ?? 0, distances.max() ?? 0)
            results = vectorDistances.map { node, distance in
                // Vector side in [0, 1]: cosine similarity mapped from [-1, 1]; others min-max.
                let vectorPart: Float = metric == .cosine ? (2 - distance) / 2 : (high > low ? (high - distance) / (high - low) : 1)
                let keywordPart: Float = bestKeyword > 0 ? (keywordScores[node] ?? keywordIfAny(node, text)) / bestKeyword : 0
                let fused = (vectorWeight * vectorPart + keywordWeight * min(1, keywordPart)) / (vectorWeight + keywordWeight)
                return (node, fused, metric.score(distance: distance), min(1, keywordPart))
            }
            results.sort { $0.score > $1.score || ($0.score == $1.score && $0.node < $1.node) }
        }
        response.results = results.compactMap { item in
            if request.hasScoreThreshold {
                let threshold = request.scoreThreshold.value
                if text.isEmpty && !metric.higherIsBetter ? item.score > threshold : item.score < threshold { return nil }
            }
            return scored(node: item.node, score: item.score, vectorScore: item.vector, keywordScore: item.keyword, request: request, index: index, withVector: request.withVector)
        }.prefix(limit).map { $0 }
        return response
    }

    private func keywordIfAny(_ node: UInt32, _ text: String) -> Float {
        lock.withLock { keywords.search(text, limit: Int.max, accept: { $0 == node }).first?.score ?? 0 }
    }

    /// The nodes a filter's required keyword terms allow (the smallest posting), nil when it has none.
    private func candidateNodes(for filter: PayloadFilter) -> [UInt32]? {
        let terms = filter.requiredTerms
        guard !terms.isEmpty else { return nil }
        return lock.withLock {
            terms.map { postings[$0.0 + "=" + $0.1] ?? [] }.min { $0.count < $1.count }.map { Array($0).filter { $0 < Self.placeholderBase } }
        }
    }

    private func scored(node: UInt32, score: Float, vectorScore: Float, keywordScore: Float, request: Kb_Vector_V1_SearchRequest, index: HNSWIndex, withVector: Bool) -> Kb_Vector_V1_ScoredPoint? {
        guard let (id, payload) = lock.withLock({ idUnlocked(node).map { ($0, payloadUnlocked(node)) } }) else { return nil }
        var result = Kb_Vector_V1_ScoredPoint()
        result.point.id = id
        if request.withPayload { result.point.payload = payload ?? [:] }
        if withVector && node < Self.placeholderBase { result.point.vector = index.storedVector(node) }
        result.score = score
        result.vectorScore = vectorScore
        result.keywordScore = keywordScore
        return result
    }
}
