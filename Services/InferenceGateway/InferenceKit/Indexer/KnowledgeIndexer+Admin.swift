import Foundation
import Hummingbird
import KBRPC
import KBRuntime
import NIOCore

extension KnowledgeIndexer {
    /// The `indexer` health component: healthy while it follows; degraded while graph-store or
    /// vector-search does not answer, or the local model is missing (it retries meanwhile).
    public func registerHealth(on health: HealthRegistry) {
        health.register("indexer") {
            let status = self.status
            var details: [String: HealthDetail] = [
                "collection": .string(self.configuration.collection),
                "cursor": .integer(status.cursor),
                "changes_behind": .integer(status.behind),
                "lag_seconds": .number(status.lagSeconds),
                "indexed": .integer(status.indexed),
            ]
            var problems: [String] = []
            if let error = status.graphError { problems.append("graph-store does not answer: \(error)") }
            if let error = status.vectorError { problems.append("vector-search does not answer: \(error)") }
            if case .failure(let error) = self.embedder { problems.append("no local embedding model: \(error)") }
            if let error = status.otherError { problems.append(error) }
            if let provider = self.provider {
                details["provider_collection"] = .string(provider.collection)
                details["provider_skipped"] = .integer(status.providerSkipped)
            }
            if !problems.isEmpty { details["error"] = .string(problems.joined(separator: "; ")) }
            return ComponentHealth(problems.isEmpty ? .healthy : .degraded, details)
        }
    }

    /// The status as JSON (`GET /internal/indexer`).
    public var statusJSON: [String: Any] {
        let status = self.status
        var object: [String: Any] = [
            "collection": configuration.collection, "cursor": status.cursor, "head": status.head, "changes_behind": status.behind,
            "lag_seconds": status.lagSeconds, "indexed": status.indexed, "unchanged": status.unchanged, "deleted": status.deleted,
            "windows": status.windows, "resyncs": status.resyncs, "caught_up": status.caughtUp,
        ]
        var errors: [String: String] = [:]
        if let error = status.graphError { errors["graph-store"] = error }
        if let error = status.vectorError { errors["vector-search"] = error }
        if let error = status.otherError { errors["indexer"] = error }
        if !errors.isEmpty { object["errors"] = errors }
        if let provider {
            var entry: [String: Any] = ["collection": provider.collection, "model": provider.model, "indexed": status.providerIndexed, "skipped": status.providerSkipped]
            if let error = status.providerError { entry["last_skip_reason"] = error }
            object["provider"] = entry
        }
        if let rebuild = status.rebuild {
            var entry: [String: Any] = ["phase": rebuild.phase, "done": rebuild.done, "total": rebuild.total, "started_ms": rebuild.startedMs]
            if let team = rebuild.team { entry["team"] = team }
            if let error = rebuild.error { entry["error"] = error }
            if rebuild.finishedMs > 0 { entry["finished_ms"] = rebuild.finishedMs }
            object["rebuild"] = entry
        }
        return object
    }

    /// `GET /internal/indexer` (status) and `POST /internal/indexer/rebuild` (`{"team": T}` or
    /// `{}`; 202, or 409 while one runs), the latter behind `KB_AUTH_TOKEN` when set.
    static func addAdminRoutes(_ indexer: KnowledgeIndexer?, to router: Router<BasicRequestContext>, authToken: String?) {
        router.get("/internal/indexer") { _, _ -> Response in
            guard let indexer else { return Self.off }
            return json(indexer.statusJSON, status: .ok)
        }
        router.post("/internal/indexer/rebuild") { request, context -> Response in
            if let authToken, !BearerToken.matches(request.headers[.authorization], token: authToken) {
                return APIError(.unauthorized, "unauthenticated", "missing or wrong 'Authorization: Bearer <KB_AUTH_TOKEN>'").response
            }
            guard let indexer else { return Self.off }
            let body = try await request.body.collect(upTo: 64 * 1024)
            var team: String?
            if body.readableBytes > 0 {
                guard let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] else {
                    return APIError(.badRequest, "invalid_argument", reason: .invalidFormat, "the body must be a JSON object, {\"team\": \"T\"} or {}").response
                }
                if let value = object["team"] {
                    guard let name = value as? String, !name.isEmpty else {
                        return APIError(.badRequest, "invalid_argument", field: "team", reason: .invalidFormat, "must be a team's name").response
                    }
                    team = name
                }
            }
            do {
                try indexer.startRebuild(team: team)
            } catch let error as IndexerError {
                return APIError(.conflict, "failed_precondition", error.message).response
            }
            return json(indexer.statusJSON, status: .accepted)
        }
    }

    static var off: Response {
        APIError(.notFound, "failed_precondition", "the indexer is off in this gateway (KB_INFERENCE_INDEXER=off, or KB_GRAPH_STORE_ADDR / KB_VECTOR_SEARCH_ADDR not set with the default auto)").response
    }

    static func json(_ object: [String: Any], status: HTTPResponse.Status) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
