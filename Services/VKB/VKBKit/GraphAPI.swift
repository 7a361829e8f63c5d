import Foundation
import Hummingbird
import KBKnowledge
import KBKnowledgeTransfer
import KBProto
import KBRPC
import KBRuntime
import NIOCore

/// The HTTP API (described by `Web/openapi.json`), every call one or a few graph-store RPCs.
///
///     GET    /api/teams                       teams with counts
///     GET    /api/stats?team=…                totals by team, type, source, relation type
///     GET    /api/changes?team=&after=&wait=  the change feed after a sequence number (long poll)
///     GET    /api/entities?team=&type=&source=&q=&sort=&limit=&cursor=
///     POST   /api/entities                    create (409 when it exists)
///     GET    /api/entities/{team}/{name}      one entity with its relations
///     PATCH  /api/entities/{team}/{name}      update (merge observations, set fields)
///     DELETE /api/entities/{team}/{name}      delete with its relations
///     GET    /api/relations?team=&entity=&type=&direction=&limit=&cursor=
///     POST   /api/relations                   create
///     DELETE /api/relations                   delete (body or query: team, from, to, relationType)
///     GET    /api/search?q=&team=&limit=&mode= search by meaning, or words (SearchAPI)
///     GET    /api/similar?team=&name=&limit=  the nearest entities in meaning (SearchAPI)
///     GET    /api/graph?team=&type=&relationType=&source=&focus=team:name&depth=&limit=
///     POST   /api/import?dryRun=true&team=    shared-memory JSON; dry run previews
///     GET    /api/export?team=                shared-memory JSON
public struct GraphAPI: Sendable {
    public let client: RPCClient
    public let configuration: VKBConfiguration
    /// Recent server layouts, by the exact nodes and links they were computed for.
    let layouts = LayoutCache(capacity: 8)
    var graphStore: String { "\(configuration.graphStore.host):\(configuration.graphStore.port)" }

    public init(client: RPCClient, configuration: VKBConfiguration) {
        self.client = client
        self.configuration = configuration
    }

    /// Adds the API routes to `router`.
    public func addRoutes(to router: Router<VKBRequestContext>) {
        let api = self
        router.get("/api/teams") { _, _ in try await api.teams() }
        router.get("/api/stats") { request, _ in try await api.stats(request) }
        router.get("/api/changes") { request, _ in try await api.changes(request) }
        router.get("/api/entities") { request, _ in try await api.entities(request) }
        router.post("/api/entities") { request, _ in try await api.createEntity(request) }
        router.get("/api/entities/:team/:name") { _, context in try await api.entity(context) }
        router.patch("/api/entities/:team/:name") { request, context in try await api.updateEntity(request, context) }
        router.put("/api/entities/:team/:name") { request, context in try await api.updateEntity(request, context) }
        router.delete("/api/entities/:team/:name") { _, context in try await api.deleteEntity(context) }
        router.get("/api/relations") { request, _ in try await api.relations(request) }
        router.post("/api/relations") { request, _ in try await api.createRelation(request) }
        router.delete("/api/relations") { request, _ in try await api.deleteRelation(request) }
        router.get("/api/graph") { request, _ in try await api.graph(request) }
        router.post("/api/import") { request, _ in try await api.importDocument(request) }
        router.get("/api/export") { request, _ in try await api.export(request) }
    }

    // MARK: Calls

    /// One graph-store call; its failure as the API's error.
    func call<Request: Sendable, Response: Sendable>(_ method: RPCMethod<Request, Response>, _ request: Request, timeout: Duration? = nil) async throws(APIError) -> Response {
        try await graphStoreWork { try await client.call(method, request, options: CallOptions(timeout: timeout)) }
    }

    /// Work against the graph store (one call, or an import or export of many); a failure as the
    /// API's error: an RPC status by its meaning, anything else as the store being unavailable.
    func graphStoreWork<T>(_ body: () async throws -> T) async throws(APIError) -> T {
        do {
            return try await body()
        } catch let error as APIError {
            throw error
        } catch let error as RPCError {
            throw APIError(error, graphStore: graphStore)
        } catch {
            throw APIError(.serviceUnavailable, "graph_store_unavailable", "the graph store at \(graphStore) is unavailable (\(error))")
        }
    }

    /// The teams a request names (`team=a&team=b` or `team=a,b`; `teams` too), each checked;
    /// every team when it names none.
    func teams(_ request: Request) async throws(APIError) -> [String] {
        let named = Self.list(request, "team", "teams")
        for team in named {
            do { try KnowledgeRules.checkTeam(team, field: "team") } catch { throw APIError(error) }
        }
        var seen = Set<String>()
        if !named.isEmpty { return named.filter { seen.insert($0).inserted } }
        return try await call(GraphStoreMethods.listTeams, .init()).teams.map(\.team)
    }

    static func list(_ request: Request, _ names: String...) -> [String] {
        var values: [String] = []
        for name in names {
            for value in request.uri.queryParameters.getAll(name) {
                values += value.split(separator: ",").map(String.init).filter { !$0.isEmpty }
            }
        }
        return values
    }

    static func integer(_ request: Request, _ name: String, default defaultValue: Int, range: ClosedRange<Int>) throws(APIError) -> Int {
        guard let text = request.uri.queryParameters.get(name), !text.isEmpty else { return defaultValue }
        guard let value = Int(text), range.contains(value) else { throw APIError.invalid(name, "must be an integer \(range.lowerBound)–\(range.upperBound) (got '\(text)')") }
        return value
    }

    static func source(_ request: Request) throws(APIError) -> Kb_Graph_V1_Source {
        switch request.uri.queryParameters.get("source") ?? "" {
        case "", "all": return .unspecified
        case "automatic": return .auto
        case let text:
            guard let source = Kb_Graph_V1_Source(name: text) else { throw APIError.invalid("source", "must be manual or auto (got '\(text)')") }
            return source
        }
    }

    static func flag(_ request: Request, _ name: String) -> Bool {
        ["1", "true", "yes"].contains(request.uri.queryParameters.get(name)?.lowercased() ?? "")
    }

    func body(_ request: Request) async throws(APIError) -> Data {
        do {
            let buffer = try await request.body.collect(upTo: configuration.maxBodyBytes)
            return Data(buffer: buffer)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", field: "body", reason: .tooLong, "the body is larger than \(configuration.maxBodyBytes) bytes (KB_VKB_MAX_BODY_BYTES)")
        }
    }

    static func pathName(_ context: VKBRequestContext, _ key: String) throws(APIError) -> String {
        let raw = context.parameters.get(key) ?? ""
        let decoded = raw.removingPercentEncoding ?? raw
        do {
            if key == "team" { try KnowledgeRules.checkTeam(decoded, field: "team") } else { try KnowledgeRules.checkName(decoded, field: key) }
        } catch {
            throw APIError(error)
        }
        return decoded
    }

    // MARK: Reads

    func teams() async throws(APIError) -> Response {
        let teams = try await call(GraphStoreMethods.listTeams, .init()).teams
        return JSONResponse.make(.object([("teams", .array(teams.map { team in
            .object([
                ("team", .string(team.team)),
                ("entities", .integer(team.entityCount)),
                ("relations", .integer(team.relationCount)),
                ("lastActivity", KnowledgeJSON.time(team.lastActivityMs)),
            ])
        }))]))
    }

    func stats(_ request: Request) async throws(APIError) -> Response {
        let named = Self.list(request, "team", "teams")
        for team in named {
            do { try KnowledgeRules.checkTeam(team, field: "team") } catch { throw APIError(error) }
        }
        let stats = try await call(GraphStoreMethods.getStats, .with { $0.teams = named })
        return JSONResponse.make(.object([
            ("entities", .integer(stats.totalEntities)),
            ("relations", .integer(stats.totalRelations)),
            ("teams", .integer(Int64(stats.entitiesByTeam.count))),
            ("types", .integer(Int64(stats.entitiesByType.count))),
            ("entitiesByTeam", stats.entitiesByTeam.jsonObject { .integer($0) }),
            ("entitiesByType", stats.entitiesByType.jsonObject { .integer($0) }),
            ("entitiesBySource", stats.entitiesBySource.jsonObject { .integer($0) }),
            ("relationsByType", stats.relationsByType.jsonObject { .integer($0) }),
            ("lastUpdate", KnowledgeJSON.time(stats.lastUpdateMs)),
            ("lastUpdateMs", .integer(stats.lastUpdateMs)),
            ("feedHeadSeq", .integer(stats.feedHeadSeq)),
        ]))
    }

    /// The longest wait of `/api/changes`: under the graph store's bound (30 s) and under the
    /// connection idle timeout, which a silent long poll must not reach.
    var maxChangeWaitMs: Int {
        let idle = Int(configuration.connectionLimits.idleTimeout.nanoseconds / 1_000_000)
        return max(0, min(25_000, idle - 5_000))
    }

    /// The graph store's change feed after `after` (the teams named, or every team), waiting up
    /// to `wait` ms for a change when there is none: the page's live refresh. Without `after`,
    /// answers at once with the feed's head and no changes (where a new follower starts).
    /// A cursor the feed no longer covers is 410 (`changes_out_of_range`): reload and start
    /// again from the head.
    func changes(_ request: Request) async throws(APIError) -> Response {
        let named = Self.list(request, "team", "teams")
        for team in named {
            do { try KnowledgeRules.checkTeam(team, field: "team") } catch { throw APIError(error) }
        }
        let wait = min(try Self.integer(request, "wait", default: 0, range: 0...30_000), maxChangeWaitMs)
        let limit = try Self.integer(request, "limit", default: 1000, range: 1...10_000)
        guard let afterText = request.uri.queryParameters.get("after"), !afterText.isEmpty else {
            let stats = try await call(GraphStoreMethods.getStats, .init())
            return JSONResponse.make(.object([("head", .integer(stats.feedHeadSeq)), ("next", .integer(stats.feedHeadSeq)), ("changes", .array([]))]))
        }
        guard let after = Int64(afterText), after >= 0 else { throw APIError.invalid("after", "must be a sequence number, 0 or more (got '\(afterText)')") }
        var feedRequest = Kb_Graph_V1_ChangesRequest()
        if named.isEmpty { feedRequest.allTeams = true } else { feedRequest.teams = named }
        feedRequest.afterSeq = after
        feedRequest.limit = Int32(limit)
        feedRequest.waitMs = Int32(wait)
        let feed: Kb_Graph_V1_ChangesResponse = try await graphStoreWork {
            do {
                return try await client.call(GraphStoreMethods.changes, feedRequest, options: CallOptions(timeout: .milliseconds(Int64(wait) + 5_000)))
            } catch let error as RPCError where error.code == .outOfRange {
                throw APIError(.gone, "changes_out_of_range", field: "after", reason: .outOfRange, APIError.messageWithoutField(error))
            }
        }
        return JSONResponse.make(.object([
            ("head", .integer(feed.headSeq)),
            ("next", .integer(feed.nextAfterSeq)),
            ("changes", .array(feed.changes.map(KnowledgeJSON.change))),
        ]))
    }

    func entities(_ request: Request) async throws(APIError) -> Response {
        var query = Kb_Graph_V1_QueryEntitiesRequest()
        query.teams = try await teams(request)
        query.entityTypes = Self.list(request, "type", "types")
        query.source = try Self.source(request)
        query.text = request.uri.queryParameters.get("q") ?? request.uri.queryParameters.get("text") ?? ""
        query.limit = Int32(try Self.integer(request, "limit", default: 50, range: 1...1000))
        query.cursor = request.uri.queryParameters.get("cursor") ?? ""
        switch request.uri.queryParameters.get("sort") ?? "" {
        case "": query.sort = query.text.isEmpty ? .name : .relevance
        case "name": query.sort = .name
        case "relevance": query.sort = .relevance
        case "created": query.sort = .created
        case "modified": query.sort = .modified
        case "significance": query.sort = .significance
        case "confidence": query.sort = .confidence
        case let other: throw APIError.invalid("sort", "must be name, relevance, created, modified, significance or confidence (got '\(other)')")
        }
        query.descending = Self.flag(request, "desc") || (request.uri.queryParameters.get("sort") == "significance" && request.uri.queryParameters.get("desc") == nil)
        if query.teams.isEmpty {
            return JSONResponse.make(.object([("entities", .array([])), ("nextCursor", .null)]))
        }
        let page = try await call(GraphStoreMethods.queryEntities, query)
        return JSONResponse.make(.object([
            ("entities", .array(page.entities.map { KnowledgeJSON.entity($0) })),
            ("nextCursor", page.nextCursor.isEmpty ? .null : .string(page.nextCursor)),
        ]))
    }

    func entity(_ context: VKBRequestContext) async throws(APIError) -> Response {
        let team = try Self.pathName(context, "team"), name = try Self.pathName(context, "name")
        let found = try await call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = name })
        return JSONResponse.make(.object([
            ("entity", KnowledgeJSON.entity(found.entity)),
            ("outbound", .array(found.outbound.map(KnowledgeJSON.relation))),
            ("inbound", .array(found.inbound.map(KnowledgeJSON.relation))),
        ]))
    }

    func relations(_ request: Request) async throws(APIError) -> Response {
        var query = Kb_Graph_V1_QueryRelationsRequest()
        query.teams = try await teams(request)
        query.entity = request.uri.queryParameters.get("entity") ?? ""
        query.relationTypes = Self.list(request, "type", "relationType")
        switch request.uri.queryParameters.get("direction") ?? "both" {
        case "both": query.direction = .both
        case "out", "outbound": query.direction = .outbound
        case "in", "inbound": query.direction = .inbound
        case let other: throw APIError.invalid("direction", "must be both, outbound or inbound (got '\(other)')")
        }
        query.limit = Int32(try Self.integer(request, "limit", default: 100, range: 1...1000))
        query.cursor = request.uri.queryParameters.get("cursor") ?? ""
        if query.teams.isEmpty {
            return JSONResponse.make(.object([("relations", .array([])), ("nextCursor", .null)]))
        }
        let page = try await call(GraphStoreMethods.queryRelations, query)
        return JSONResponse.make(.object([
            ("relations", .array(page.relations.map(KnowledgeJSON.relation))),
            ("nextCursor", page.nextCursor.isEmpty ? .null : .string(page.nextCursor)),
        ]))
    }

    /// The drawing: nodes and links, the cap and whether it cut anything.
    func graph(_ request: Request) async throws(APIError) -> Response {
        var query = Kb_Graph_V1_SubgraphRequest()
        query.teams = try await teams(request)
        query.entityTypes = Self.list(request, "type", "types")
        query.relationTypes = Self.list(request, "relationType", "relationTypes")
        query.source = try Self.source(request)
        let limit = try Self.integer(request, "limit", default: configuration.graphMaxNodes, range: 1...20_000)
        query.maxEntities = Int32(limit)
        if let focus = request.uri.queryParameters.get("focus"), !focus.isEmpty {
            guard let colon = focus.firstIndex(of: ":") else { throw APIError.invalid("focus", "must be team:name") }
            query.focusTeam = String(focus[..<colon])
            query.focus = String(focus[focus.index(after: colon)...])
            if !query.teams.contains(query.focusTeam) {
                if Self.list(request, "team", "teams").isEmpty { query.teams.append(query.focusTeam) }
            }
            query.depth = Int32(try Self.integer(request, "depth", default: 1, range: 1...3))
        }
        if query.teams.isEmpty {
            return JSONResponse.make(.object([("nodes", .array([])), ("links", .array([])), ("capped", false), ("matching", 0), ("limit", .integer(Int64(limit)))]))
        }
        let found = try await call(GraphStoreMethods.subgraph, query, timeout: .seconds(30))
        var nodes: [JSONValue] = []
        nodes.reserveCapacity(found.entities.count)
        // `layout=1`: positions from a force layout on the server, so the page draws at once.
        var positions: [(x: Double, y: Double)]?
        // Bounded: a layout of more than 10,000 nodes would hold a core for seconds; past that
        // the page lays the graph out itself.
        if Self.flag(request, "layout"), found.entities.count <= 10_000 {
            var index: [String: Int] = [:]
            for (offset, entity) in found.entities.enumerated() { index["\(entity.team):\(entity.name)"] = offset }
            let pairs = found.relations.compactMap { relation -> (Int, Int)? in
                guard let a = index["\(relation.team):\(relation.from)"], let b = index["\(relation.team):\(relation.to)"] else { return nil }
                return (a, b)
            }
            var hasher = Hasher()
            for entity in found.entities { hasher.combine(entity.team); hasher.combine(entity.name) }
            for (a, b) in pairs { hasher.combine(a); hasher.combine(b) }
            let key = hasher.finalize()
            if let cached = layouts.get(key, count: found.entities.count) {
                positions = cached
            } else {
                let computed = ForceLayout().positions(count: found.entities.count, links: pairs)
                layouts.put(key, computed)
                positions = computed
            }
        }
        for (offset, entity) in found.entities.enumerated() { nodes.append(KnowledgeJSON.node(entity, position: positions?[offset])) }
        var links: [JSONValue] = []
        links.reserveCapacity(found.relations.count)
        for relation in found.relations {
            links.append(.object([
                ("source", .string("\(relation.team):\(relation.from)")),
                ("target", .string("\(relation.team):\(relation.to)")),
                ("relationType", .string(relation.relationType)),
            ]))
        }
        return JSONResponse.make(.object([
            ("nodes", .array(nodes)),
            ("links", .array(links)),
            ("capped", .bool(found.truncated)),
            ("matching", .integer(max(found.matchingEntities, Int64(found.entities.count)))),
            ("limit", .integer(Int64(limit))),
            ("focus", query.focus.isEmpty ? .null : .string("\(query.focusTeam):\(query.focus)")),
        ]))
    }

    // MARK: Writes

    func createEntity(_ request: Request) async throws(APIError) -> Response {
        let object = try KnowledgeJSON.object(try await body(request))
        let team = try KnowledgeJSON.string(object, "team", required: true)!
        let name = try KnowledgeJSON.string(object, "name", required: true)!
        let entity = try KnowledgeJSON.entity(object, team: team, name: name, isUpdate: false)
        if (try? await call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = name })) != nil {
            throw APIError(.conflict, "already_exists", field: "name", "entity '\(name)' already exists in team '\(team)'; PATCH /api/entities/\(team)/… updates it")
        }
        let stored = try await call(GraphStoreMethods.putEntities, .with { $0.team = team; $0.entities = [entity] })
        return JSONResponse.make(.object([("entity", KnowledgeJSON.entity(stored.entities.first ?? entity))]), status: .created)
    }

    func updateEntity(_ request: Request, _ context: VKBRequestContext) async throws(APIError) -> Response {
        let team = try Self.pathName(context, "team"), name = try Self.pathName(context, "name")
        let object = try KnowledgeJSON.object(try await body(request))
        let entity = try KnowledgeJSON.entity(object, team: team, name: name, isUpdate: true)
        _ = try await call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = name })
        let stored = try await call(GraphStoreMethods.putEntities, .with { $0.team = team; $0.entities = [entity] })
        return JSONResponse.make(.object([("entity", KnowledgeJSON.entity(stored.entities.first ?? entity))]))
    }

    func deleteEntity(_ context: VKBRequestContext) async throws(APIError) -> Response {
        let team = try Self.pathName(context, "team"), name = try Self.pathName(context, "name")
        let deleted = try await call(GraphStoreMethods.deleteEntities, .with { $0.team = team; $0.names = [name] })
        guard deleted.deletedEntities > 0 else { throw APIError(.notFound, "not_found", "entity '\(name)' not found in team '\(team)'") }
        return JSONResponse.make(.object([("deletedEntities", .integer(Int64(deleted.deletedEntities))), ("deletedRelations", .integer(Int64(deleted.deletedRelations)))]))
    }

    func createRelation(_ request: Request) async throws(APIError) -> Response {
        let relation = try KnowledgeJSON.relation(try KnowledgeJSON.object(try await body(request)))
        let result = try await call(GraphStoreMethods.putRelations, .with { $0.team = relation.team; $0.relations = [relation] })
        return JSONResponse.make(.object([("created", .bool(result.created > 0)), ("relation", KnowledgeJSON.relation(relation))]), status: result.created > 0 ? .created : .ok)
    }

    func deleteRelation(_ request: Request) async throws(APIError) -> Response {
        let data = try await body(request)
        var object: [String: Any] = [:]
        if data.isEmpty {
            for key in ["team", "from", "to", "relationType"] { object[key] = request.uri.queryParameters.get(key) }
        } else {
            object = try KnowledgeJSON.object(data)
        }
        let relation = try KnowledgeJSON.relation(object)
        let result = try await call(GraphStoreMethods.deleteRelations, .with { $0.team = relation.team; $0.relations = [relation] })
        guard result.deleted > 0 else { throw APIError(.notFound, "not_found", "no relation \(relation.from) -\(relation.relationType)-> \(relation.to) in team '\(relation.team)'") }
        return JSONResponse.make(.object([("deleted", .integer(Int64(result.deleted)))]))
    }

    /// A shared-memory JSON upload: checked whole first (a wrong entry is 400 naming it, nothing
    /// written); with `dryRun=true` only a preview of what would change.
    func importDocument(_ request: Request) async throws(APIError) -> Response {
        let data = try await body(request)
        var document: SharedMemoryDocument
        do {
            document = try SharedMemoryDocument(json: data)
        } catch {
            throw APIError(error)
        }
        let override = request.uri.queryParameters.get("team").flatMap { $0.isEmpty ? nil : $0 }
        if let override {
            do { try KnowledgeRules.checkTeam(override, field: "team") } catch { throw APIError(error) }
        }
        KnowledgeTransfer.assignTeams(&document, override: override, fallback: "default")
        for (index, entity) in document.entities.enumerated() {
            do { try KnowledgeRules.check(entity, field: "entities[\(index)]") } catch { throw APIError(error) }
        }
        for (index, relation) in document.relations.enumerated() {
            do { try KnowledgeRules.check(relation, field: "relations[\(index)]") } catch { throw APIError(error) }
        }
        let transfer = KnowledgeTransfer(client: client)
        try await graphStoreWork {
            do {
                try await transfer.checkRelationEnds(document)
            } catch let rejected as KnowledgeTransfer.ImportRejected {
                throw APIError.invalid(rejected.field, reason: rejected.reason, rejected.rule)
            }
        }
        let teams = Set(document.entities.map(\.team)).union(document.relations.map(\.team)).sorted()
        if Self.flag(request, "dryRun") || Self.flag(request, "dry_run") {
            var existing = 0
            for entity in document.entities {
                if (try? await call(GraphStoreMethods.getEntity, .with { $0.team = entity.team; $0.name = entity.name })) != nil { existing += 1 }
            }
            return JSONResponse.make(.object([
                ("dryRun", true),
                ("teams", .array(teams.map { .string($0) })),
                ("entities", .integer(Int64(document.entities.count))),
                ("relations", .integer(Int64(document.relations.count))),
                ("newEntities", .integer(Int64(document.entities.count - existing))),
                ("existingEntities", .integer(Int64(existing))),
                ("sample", .array(document.entities.prefix(10).map { .object([("team", .string($0.team)), ("name", .string($0.name)), ("entityType", .string($0.entityType))]) })),
            ]))
        }
        let summary = try await graphStoreWork { try await transfer.importDocument(document) }
        return JSONResponse.make(.object([
            ("dryRun", false),
            ("teams", .array(summary.teams.map { .string($0) })),
            ("entitiesCreated", .integer(Int64(summary.entitiesCreated))),
            ("entitiesUpdated", .integer(Int64(summary.entitiesUpdated))),
            ("relationsCreated", .integer(Int64(summary.relationsCreated))),
            ("relationsExisting", .integer(Int64(summary.relationsExisting))),
        ]))
    }

    func export(_ request: Request) async throws(APIError) -> Response {
        let teams = try await teams(request)
        let document = try await graphStoreWork { try await KnowledgeTransfer(client: client).export(teams: teams) }
        let name = teams.count == 1 ? "shared-memory-\(teams[0]).json" : "shared-memory.json"
        return Response(
            status: .ok,
            headers: [.contentType: "application/json; charset=utf-8", .contentDisposition: "attachment; filename=\"\(name)\"", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: document.jsonData()))
        )
    }
}
