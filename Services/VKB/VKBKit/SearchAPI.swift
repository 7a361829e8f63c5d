import Foundation
import Hummingbird
import KBKnowledge
import KBProto
import KBRPC
import KBRuntime

/// Search by meaning in VKB, the same search as `ukb search`:
///
///     GET /api/search?q=&team=&type=&limit=&mode=hybrid|semantic|keyword
///     GET /api/similar?team=&name=&limit=
///
/// `hybrid` (the default) is vector 0.7 + BM25 0.3 over the indexed text, through vector-search's
/// hybrid mode, with the query embedded by the inference gateway; `semantic` is the vector part
/// alone; `keyword` is the graph store's word search. When vector-search or the gateway does not
/// answer, a hybrid or semantic search falls back to the word search and the answer says
/// `degraded: true` with the reason (the page shows it). Results are the graph's entities as
/// they are now: a hit whose entity was deleted since it was indexed is left out.
struct SearchAPI: Sendable {
    let graph: GraphAPI
    let meaning: MeaningSearch

    func addRoutes(to router: Router<VKBRequestContext>) {
        let api = self
        router.get("/api/search") { request, _ in try await api.search(request) }
        router.get("/api/similar") { request, _ in try await api.similar(request) }
    }

    func search(_ request: Request) async throws(APIError) -> Response {
        let text = (request.uri.queryParameters.get("q") ?? "").trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { throw APIError.invalid("q", "is required: the words to look for") }
        guard text.count <= 500 else { throw APIError.invalid("q", "at most 500 characters") }
        let modeText = request.uri.queryParameters.get("mode") ?? ""
        guard let mode = modeText.isEmpty ? .hybrid : SearchMode(rawValue: modeText) else {
            throw APIError.invalid("mode", "must be hybrid, semantic or keyword (got '\(modeText)')")
        }
        let named = GraphAPI.list(request, "team", "teams")
        for team in named {
            do { try KnowledgeRules.checkTeam(team, field: "team") } catch { throw APIError(error) }
        }
        let types = GraphAPI.list(request, "type", "types")
        let limit = try GraphAPI.integer(request, "limit", default: 20, range: 1...200)

        var degradedReason: String?
        if mode != .keyword {
            do {
                let hits = try await meaning.search(text, teams: named, types: types, limit: limit, mode: mode)
                let entities = try await entities(of: hits)
                return JSONResponse.make(.object([
                    ("query", .string(text)),
                    ("mode", .string(mode.rawValue)),
                    ("degraded", false),
                    ("results", .array(zip(hits, entities).compactMap { hit, entity in
                        entity.map { entity in
                            .object([
                                ("entity", KnowledgeJSON.entity(entity)),
                                ("score", .number(Double(hit.score))),
                                ("vectorScore", .number(Double(hit.vectorScore))),
                                ("keywordScore", .number(Double(hit.keywordScore))),
                            ])
                        }
                    })),
                ]))
            } catch let error as APIError {
                throw error
            } catch {
                degradedReason = "search by meaning is unavailable (\(MeaningSearch.describe(error))); these results are a word search"
            }
        }
        var query = Kb_Graph_V1_QueryEntitiesRequest()
        query.teams = try await graph.teams(request)
        query.text = text
        query.sort = .relevance
        query.entityTypes = types
        query.limit = Int32(limit)
        var results: [JSONValue] = []
        if !query.teams.isEmpty {
            let page = try await graph.call(GraphStoreMethods.queryEntities, query)
            results = zip(page.entities, page.scores).map { entity, score in
                .object([("entity", KnowledgeJSON.entity(entity)), ("score", .number(score))])
            }
        }
        return JSONResponse.make(.object([
            ("query", .string(text)),
            ("mode", .string(mode.rawValue)),
            ("degraded", .bool(degradedReason != nil)),
            ("degradedReason", degradedReason.map { .string($0) } ?? .null),
            ("results", .array(results)),
        ]))
    }

    /// The entities nearest in meaning to one entity (its indexed vector), in its team.
    func similar(_ request: Request) async throws(APIError) -> Response {
        let team = request.uri.queryParameters.get("team") ?? ""
        let name = request.uri.queryParameters.get("name") ?? ""
        do {
            try KnowledgeRules.checkTeam(team, field: "team")
            try KnowledgeRules.checkName(name, field: "name")
        } catch {
            throw APIError(error)
        }
        let limit = try GraphAPI.integer(request, "limit", default: 10, range: 1...100)
        let hits: [MeaningSearch.Hit]
        do {
            hits = try await meaning.similar(to: name, team: team, types: [], limit: limit)
        } catch let error as RPCError where error.code == .notFound {
            throw APIError(.notFound, "not_indexed", field: "name", reason: .notFound, APIError.messageWithoutField(error))
        } catch {
            throw APIError(.serviceUnavailable, "search_unavailable", "search by meaning is unavailable (\(MeaningSearch.describe(error))): similar knowledge needs vector-search and the inference gateway's indexer")
        }
        let entities = try await entities(of: hits)
        return JSONResponse.make(.object([
            ("entity", .string("\(team):\(name)")),
            ("results", .array(zip(hits, entities).compactMap { hit, entity in
                entity.map { .object([("entity", KnowledgeJSON.entity($0)), ("score", .number(Double(hit.score)))]) }
            })),
        ]))
    }

    /// The graph's entity of each hit, in order; nil where it no longer exists.
    func entities(of hits: [MeaningSearch.Hit]) async throws(APIError) -> [Kb_Graph_V1_Entity?] {
        let client = graph.client
        return try await graph.graphStoreWork {
            try await withThrowingTaskGroup(of: (Int, Kb_Graph_V1_Entity?).self) { group in
                for (index, hit) in hits.enumerated() {
                    group.addTask {
                        do {
                            let found = try await client.call(GraphStoreMethods.getEntity, .with { $0.team = hit.team; $0.name = hit.name })
                            return (index, found.entity)
                        } catch let error as RPCError where error.code == .notFound {
                            return (index, nil)
                        }
                    }
                }
                var entities = [Kb_Graph_V1_Entity?](repeating: nil, count: hits.count)
                for try await (index, entity) in group { entities[index] = entity }
                return entities
            }
        }
    }
}
