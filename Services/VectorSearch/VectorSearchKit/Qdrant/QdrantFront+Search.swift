import Foundation
import HTTPTypes
import Hummingbird
import KBProto
import KBRPC

/// Searches: `points/search`, `points/search/batch`, and the query API (`points/query`,
/// `points/query/batch`) for nearest-neighbour queries (a vector, `{"nearest": …}`, or a point
/// id whose vector is the query), each with `filter`, `params.hnsw_ef`, `params.exact`,
/// `score_threshold`, `limit`, `offset`, `with_payload` and `with_vector`. They run the engine's
/// search (`VectorSearchService.search`, the same latency histogram as the RPC).
extension QdrantFront {
    func addSearchRoutes<Context: RequestContext>(to router: Router<Context>) {
        let store = self.store
        handle(router, .post, "/collections/:name/points/search") { _, context, body in
            let collection = try namedCollection(context)
            let search = try Self.search(body, collection: collection, vectorField: "vector", store: store)
            return try await Self.blocking { try Self.run(search, store: store) }
        }
        handle(router, .post, "/collections/:name/points/search/batch") { _, context, body in
            let collection = try namedCollection(context)
            let searches = try Self.batch(body) { item, path in try Self.search(item, collection: collection, vectorField: "vector", store: store, path: path) }
            return try await Self.blocking { .array(try searches.map { try Self.run($0, store: store) }) }
        }
        handle(router, .post, "/collections/:name/points/query") { _, context, body in
            let collection = try namedCollection(context)
            let query = try Self.query(body, collection: collection, store: store)
            return try await Self.blocking { .object(["points": try Self.run(query, store: store)]) }
        }
        handle(router, .post, "/collections/:name/points/query/batch") { _, context, body in
            let collection = try namedCollection(context)
            let queries = try Self.batch(body) { item, path in try Self.query(item, collection: collection, store: store, path: path) }
            return try await Self.blocking { .array(try queries.map { .object(["points": try Self.run($0, store: store)]) }) }
        }
    }

    /// One search as the engine runs it and as its answer is shaped.
    struct PreparedSearch: Sendable {
        var request: Kb_Vector_V1_SearchRequest
        var offset: Int
        var payload: QdrantPointMapping.PayloadSelection
        var withVector: Bool
        /// A query without a vector (the query API's "no query"): points in id order, score 0.
        var scroll: PayloadFilter?? = nil
    }

    static func batch(_ body: QdrantJSON?, _ prepare: (QdrantJSON, String) throws -> PreparedSearch) throws -> [PreparedSearch] {
        guard case .array(let items)? = body?["searches"] else { throw QdrantError.invalid("searches", "is required: a list of requests") }
        guard items.count <= 100 else { throw QdrantError.invalid("searches", "at most 100 per call (found \(items.count))") }
        return try items.enumerated().map { try prepare($0.element, "searches[\($0.offset)].") }
    }

    /// `points/search`'s body: `vector`, `filter`, `params`, `limit`, `offset`, `score_threshold`,
    /// `with_payload` (default false), `with_vector`.
    static func search(_ body: QdrantJSON?, collection: VectorCollection, vectorField: String, store: VectorStore, path: String = "") throws -> PreparedSearch {
        guard case .object? = body else { throw QdrantError.invalid(path.isEmpty ? "body" : String(path.dropLast()), "must be a JSON object") }
        var prepared = try common(body, collection: collection, path: path, payloadFallback: .none)
        prepared.request.vector = try QdrantPointMapping.vector(body?[vectorField], field: path + vectorField)
        return prepared
    }

    /// The query API's body: `query` (a vector, `{"nearest": vector | id}`, a point id, or
    /// absent), `using` (only the unnamed vector), the rest as `search`; `with_payload` defaults
    /// to false as in Qdrant.
    static func query(_ body: QdrantJSON?, collection: VectorCollection, store: VectorStore, path: String = "") throws -> PreparedSearch {
        guard case .object(let members)? = body else { throw QdrantError.invalid(path.isEmpty ? "body" : String(path.dropLast()), "must be a JSON object") }
        for unsupported in ["prefetch", "lookup_from"] where members[unsupported] != nil && members[unsupported] != .null {
            throw QdrantError.invalid(path + unsupported, "is not supported by this server (nearest-neighbour queries are)")
        }
        if case .string(let using)? = members["using"], !using.isEmpty {
            throw QdrantError.invalid(path + "using", "named vectors are not supported (found '\(using)')")
        }
        var prepared = try common(body, collection: collection, path: path, payloadFallback: .none)
        var query = members["query"] ?? .null
        var field = path + "query"
        if case .object(let kinds) = query {
            guard let nearest = kinds["nearest"], kinds.count == 1 else {
                throw QdrantError.invalid(field, "only nearest-neighbour queries are supported: a vector, {\"nearest\": …} or a point id (found \(kinds.keys.sorted().joined(separator: ", ")))")
            }
            query = nearest
            field += ".nearest"
        }
        switch query {
        case .null:
            prepared.scroll = .some(try prepared.request.hasFilter ? PayloadFilter(prepared.request.filter) : nil)
        case .array:
            prepared.request.vector = try QdrantPointMapping.vector(query, field: field)
        case .int, .uint, .string:
            let id = try QdrantPointMapping.id(query, field: field)
            guard let point = try store.storedPoints(collection.config.name, ids: [id]).first else {
                throw QdrantError(status: 404, message: "Not found: No point with id \(id) found", field: field)
            }
            prepared.request.vector = point.vector
        default:
            throw QdrantError.invalid(field, "must be a vector, {\"nearest\": …} or a point id (found \(query.typeName))")
        }
        return prepared
    }

    /// What every search form shares.
    static func common(_ body: QdrantJSON?, collection: VectorCollection, path: String, payloadFallback: QdrantPointMapping.PayloadSelection) throws -> PreparedSearch {
        var request = Kb_Vector_V1_SearchRequest()
        request.collection = collection.config.name
        let limit = try integer(body?["limit"], field: path + "limit", default: 10, range: 1...1000)
        let offset = try integer(body?["offset"], field: path + "offset", default: 0, range: 0...1000)
        guard limit + offset <= 1000 else { throw QdrantError.invalid(path + "offset", "limit + offset must be at most 1000") }
        request.limit = Int32(limit + offset)
        if let filter = try QdrantFilter.optional(body?["filter"], field: path + "filter") { request.filter = filter }
        if let threshold = body?["score_threshold"], threshold != .null {
            guard let number = threshold.number else { throw QdrantError.invalid(path + "score_threshold", "must be a number") }
            request.scoreThreshold = .with { $0.value = Float(number) }
        }
        if let params = body?["params"], params != .null {
            guard case .object = params else { throw QdrantError.invalid(path + "params", "must be an object {hnsw_ef, exact}") }
            request.ef = Int32(try integer(params["hnsw_ef"], field: path + "params.hnsw_ef", default: 0, range: 0...10_000))
            switch params["exact"] {
            case nil, .null?: break
            case .bool(let exact)?: request.exact = exact
            case let other?: throw QdrantError.invalid(path + "params.exact", "must be a boolean (found \(other.typeName))")
            }
        }
        let payload = try QdrantPointMapping.PayloadSelection(body?["with_payload"], field: path + "with_payload", fallback: payloadFallback)
        let withVector = try QdrantPointMapping.withVector(body?["with_vector"], field: path + "with_vector", fallback: false)
        request.withPayload = payload.wanted
        request.withVector = withVector
        return PreparedSearch(request: request, offset: offset, payload: payload, withVector: withVector)
    }

    /// Runs one prepared search; Qdrant's list of `ScoredPoint`s.
    static func run(_ search: PreparedSearch, store: VectorStore) throws -> QdrantJSON {
        if let filter = search.scroll {
            let collection = try store.collection(search.request.collection)
            let ids = (filter.map { collection.ids(matching: $0) } ?? collection.allIds).sorted(by: QdrantPointMapping.precedes)
            let page = Array(ids.dropFirst(search.offset).prefix(Int(search.request.limit) - search.offset))
            return .array(collection.points(page, withPayload: search.payload.wanted, withVector: search.withVector).map { point in
                var hit = Kb_Vector_V1_ScoredPoint()
                hit.point = point
                return QdrantPointMapping.scoredPoint(hit, payload: search.payload, withVector: search.withVector)
            })
        }
        let response = try VectorSearchService.search(store, search.request)
        return .array(response.results.dropFirst(search.offset).map { QdrantPointMapping.scoredPoint($0, payload: search.payload, withVector: search.withVector) })
    }
}
