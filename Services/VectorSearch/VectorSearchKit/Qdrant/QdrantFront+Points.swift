import Foundation
import HTTPTypes
import Hummingbird
import KBProto
import KBRPC

/// Points: upsert, retrieve, delete, payload changes, scroll and count. Writes go through the
/// store's group commit like RPC writes (`wait` is accepted and always true: an answer means
/// on disk).
extension QdrantFront {
    func addPointRoutes<Context: RequestContext>(to router: Router<Context>) {
        let store = self.store
        handle(router, .put, "/collections/:name/points") { _, context, body in
            let collection = try namedCollection(context)
            var request = Kb_Vector_V1_UpsertPointsRequest()
            request.collection = collection.config.name
            request.points = try Self.points(body, textField: collection.config.textField)
            return Self.completed(Int64(try await store.upsert(request)))
        }
        handle(router, .post, "/collections/:name/points") { _, context, body in
            let collection = try namedCollection(context)
            let ids = try QdrantPointMapping.ids(body?["ids"], field: "ids")
            guard ids.count <= 10_000 else { throw QdrantError.invalid("ids", "at most 10000 ids per call") }
            let selection = try QdrantPointMapping.PayloadSelection(body?["with_payload"], field: "with_payload", fallback: .all)
            let withVector = try QdrantPointMapping.withVector(body?["with_vector"], field: "with_vector", fallback: false)
            let points = collection.points(ids, withPayload: selection.wanted, withVector: withVector)
            return .array(points.map { QdrantPointMapping.record($0, payload: selection, withVector: withVector) })
        }
        handle(router, .get, "/collections/:name/points/:id") { _, context, _ in
            let collection = try namedCollection(context)
            let raw = context.parameters.get("id") ?? ""
            let id = try QdrantPointMapping.id(UInt64(raw).map { QdrantJSON.uint($0) } ?? QdrantJSON.string(raw), field: "id")
            guard let point = collection.points([id], withPayload: true, withVector: true).first else {
                throw QdrantError(status: 404, message: "Not found: No point with id \(raw) found", field: "id")
            }
            return QdrantPointMapping.record(point, payload: .all, withVector: true)
        }
        handle(router, .post, "/collections/:name/points/delete") { _, context, body in
            let collection = try namedCollection(context)
            var request = Kb_Vector_V1_DeletePointsRequest()
            request.collection = collection.config.name
            let (ids, filter) = try Self.selector(body)
            request.ids = ids
            if let filter { request.filter = filter }
            return Self.completed(Int64(try await store.deletePoints(request)))
        }
        for method: HTTPRequest.Method in [.post, .put] {
            handle(router, method, "/collections/:name/points/payload") { _, context, body in
                let collection = try namedCollection(context)
                let payload = try QdrantPointMapping.payload(body?["payload"], field: "payload", textField: collection.config.textField)
                if let key = body?["key"], key != .null { throw QdrantError.invalid("key", "setting a payload under a nested key is not supported") }
                return try await changePayloads(collection, body) { old in
                    method == .put ? payload : old.merging(payload) { $1 }
                }
            }
        }
        handle(router, .post, "/collections/:name/points/payload/delete") { _, context, body in
            let collection = try namedCollection(context)
            let keys = Set(try QdrantPointMapping.PayloadSelection.keys(body?["keys"], field: "keys"))
            return try await changePayloads(collection, body) { old in old.filter { !keys.contains($0.key) } }
        }
        handle(router, .post, "/collections/:name/points/payload/clear") { _, context, body in
            let collection = try namedCollection(context)
            return try await changePayloads(collection, body) { _ in [:] }
        }
        handle(router, .post, "/collections/:name/points/scroll") { _, context, body in
            let collection = try namedCollection(context)
            let filter = try QdrantFilter.optional(body?["filter"], field: "filter").map { try PayloadFilter($0) }
            let limit = try Self.integer(body?["limit"], field: "limit", default: 10, range: 1...10_000)
            let given = body?["offset"]
            let offset = try given.flatMap { value -> String? in
                if value == .null { return nil }
                return try QdrantPointMapping.id(value, field: "offset")
            }
            if let order = body?["order_by"], order != .null { throw QdrantError.invalid("order_by", "ordering by a payload field is not supported; points come in id order") }
            let selection = try QdrantPointMapping.PayloadSelection(body?["with_payload"], field: "with_payload", fallback: .all)
            let withVector = try QdrantPointMapping.withVector(body?["with_vector"], field: "with_vector", fallback: false)
            return try await Self.blocking {
                var ids = (filter.map { collection.ids(matching: $0) } ?? collection.allIds).sorted(by: QdrantPointMapping.precedes)
                if let offset { ids = Array(ids.drop { QdrantPointMapping.precedes($0, offset) }) }
                let page = Array(ids.prefix(limit))
                let points = collection.points(page, withPayload: selection.wanted, withVector: withVector)
                return .object([
                    "points": .array(points.map { QdrantPointMapping.record($0, payload: selection, withVector: withVector) }),
                    "next_page_offset": ids.count > limit ? QdrantPointMapping.json(id: ids[limit]) : .null,
                ])
            }
        }
        handle(router, .post, "/collections/:name/points/count") { _, context, body in
            let collection = try namedCollection(context)
            let filter = try QdrantFilter.optional(body?["filter"], field: "filter").map { try PayloadFilter($0) }
            let count = try await Self.blocking { filter.map { collection.ids(matching: $0).count } ?? collection.pointCount }
            return .object(["count": .int(Int64(count))])
        }
    }

    /// Rewrites the payload of the points a selector names (`points` or `filter`) with `change`,
    /// reading each point as stored and upserting it whole (one durable write).
    func changePayloads(_ collection: VectorCollection, _ body: QdrantJSON?, change: (Payload) -> Payload) async throws -> QdrantJSON {
        let name = collection.config.name
        var (ids, filter) = try Self.selector(body)
        if let filter { ids += collection.ids(matching: try PayloadFilter(filter)) }
        var request = Kb_Vector_V1_UpsertPointsRequest()
        request.collection = name
        request.points = try store.storedPoints(name, ids: Array(Set(ids)).sorted()).map { point in
            var point = point
            point.payload = change(point.payload)
            return point
        }
        guard !request.points.isEmpty else { return Self.completed(0) }
        return Self.completed(Int64(try await store.upsert(request)))
    }

    /// Qdrant's points selector: `{"points": [ids]}`, `{"filter": {...}}`, or both.
    static func selector(_ body: QdrantJSON?) throws -> (ids: [String], filter: Kb_Vector_V1_Filter?) {
        var ids: [String] = []
        if let points = body?["points"], points != .null { ids = try QdrantPointMapping.ids(points, field: "points") }
        let filter = try QdrantFilter.optional(body?["filter"], field: "filter")
        guard !ids.isEmpty || filter != nil || body?["points"] != nil else { throw QdrantError.invalid("points", "name the points: points [ids] or filter {...}") }
        return (ids, filter)
    }

    /// The points of an upsert body: `{"points": [{id, vector, payload}]}` or Qdrant's columnar
    /// `{"batch": {"ids", "vectors", "payloads"}}`.
    static func points(_ body: QdrantJSON?, textField: String) throws -> [Kb_Vector_V1_Point] {
        if case .array(let items)? = body?["points"] {
            guard items.count <= 10_000 else { throw QdrantError.invalid("points", "at most 10000 points per call (found \(items.count))") }
            return try items.enumerated().map { index, item in
                guard case .object = item else { throw QdrantError.invalid("points[\(index)]", "must be an object {id, vector, payload}") }
                var point = Kb_Vector_V1_Point()
                guard let id = item["id"] else { throw QdrantError.invalid("points[\(index)].id", "is required") }
                point.id = try QdrantPointMapping.id(id, field: "points[\(index)].id")
                point.vector = try QdrantPointMapping.vector(item["vector"], field: "points[\(index)].vector")
                point.payload = try QdrantPointMapping.payload(item["payload"], field: "points[\(index)].payload", textField: textField)
                return point
            }
        }
        if case .object? = body?["batch"], let batch = body?["batch"] {
            let ids = try QdrantPointMapping.ids(batch["ids"], field: "batch.ids")
            guard case .array(let vectors)? = batch["vectors"], vectors.count == ids.count else { throw QdrantError.invalid("batch.vectors", "must hold one vector per id") }
            var payloads: [QdrantJSON] = []
            if case .array(let given)? = batch["payloads"] {
                guard given.count == ids.count else { throw QdrantError.invalid("batch.payloads", "must hold one payload per id") }
                payloads = given
            }
            guard ids.count <= 10_000 else { throw QdrantError.invalid("batch.ids", "at most 10000 points per call (found \(ids.count))") }
            return try ids.indices.map { index in
                var point = Kb_Vector_V1_Point()
                point.id = ids[index]
                point.vector = try QdrantPointMapping.vector(vectors[index], field: "batch.vectors[\(index)]")
                if !payloads.isEmpty { point.payload = try QdrantPointMapping.payload(payloads[index], field: "batch.payloads[\(index)]", textField: textField) }
                return point
            }
        }
        throw QdrantError.invalid("points", "is required: a list of {id, vector, payload} (or batch {ids, vectors, payloads})")
    }

    /// An integer member within `range`; `default` when absent or null.
    static func integer(_ value: QdrantJSON?, field: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        switch value {
        case nil, .null?: return fallback
        case .int(let number)? where range.contains(Int(clamping: number)): return Int(number)
        case let other?: throw QdrantError.invalid(field, "must be an integer between \(range.lowerBound) and \(range.upperBound) (found \(other.serialized))")
        }
    }
}
