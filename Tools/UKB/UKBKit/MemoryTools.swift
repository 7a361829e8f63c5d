import Foundation
import KBKnowledge
import KBProto
import KBRPC
import MCP

/// The tools of `ukb mcp`: those of the reference MCP memory server
/// (`@modelcontextprotocol/server-memory`), with the same argument and result shapes so that an
/// agent configured for it works unchanged, plus `semantic_search` and `similar` (search by
/// meaning). Every tool reads and writes one team of the graph store; entities created here have
/// source `auto` (knowledge an agent captured, not a person).
///
/// A call never throws: bad arguments, an unknown tool, a refused write or a service that does
/// not answer become a tool result with `isError` and a message saying what to change.
public struct MemoryTools: Sendable {
    /// The tools' names, in the order `tools/list` gives them.
    public static let names = [
        "create_entities", "create_relations", "add_observations", "delete_entities", "delete_observations",
        "delete_relations", "read_graph", "search_nodes", "open_nodes", "semantic_search", "similar",
    ]

    /// The team every tool reads and writes.
    public let team: String
    let graph: RPCClient
    /// Search by meaning; nil when its services are not configured (then `semantic_search` is
    /// degraded to the graph's word search and `similar` fails).
    let meaning: MeaningSearch?
    /// Orders the calls that write.
    let writes = WriteQueue()

    /// Tools over `graph` (graph-store) for `team`, searching by meaning with `meaning`.
    public init(team: String, graph: RPCClient, meaning: MeaningSearch?) {
        self.team = team
        self.graph = graph
        self.meaning = meaning
    }

    /// `configuration` (graph-store's, from the environment) as `ukb mcp` uses it: one
    /// connection, and a store that does not answer fails the call at once (UNAVAILABLE, a tool
    /// error saying to start it) instead of holding the agent until the call's deadline.
    public static func graphClientConfiguration(_ configuration: RPCClient.Configuration) -> RPCClient.Configuration {
        var configuration = configuration
        configuration.connections = 1
        configuration.connectTimeout = .seconds(2)
        configuration.maxBackoff = .seconds(1)
        configuration.failFast = true
        return configuration
    }

    /// The tools that write: run one at a time, in the order they arrive.
    static let writing: Set<String> = ["create_entities", "create_relations", "add_observations", "delete_entities", "delete_observations", "delete_relations"]

    /// Runs tool `name` with `arguments` (the `tools/call` request's parameters). Calls that
    /// write run one after another, as in the reference server: an agent may send several at
    /// once, and each one's look at what exists must not interleave with another's write.
    public func call(_ name: String, arguments: [String: Value]?) async -> CallTool.Result {
        guard Self.writing.contains(name) else { return await run(name, arguments: arguments) }
        return await writes.run { await self.run(name, arguments: arguments) }
    }

    func run(_ name: String, arguments: [String: Value]?) async -> CallTool.Result {
        let arguments = ToolArguments(tool: name, values: arguments ?? [:])
        do {
            switch name {
            case "create_entities": return try await createEntities(arguments)
            case "create_relations": return try await createRelations(arguments)
            case "add_observations": return try await addObservations(arguments)
            case "delete_entities": return try await deleteEntities(arguments)
            case "delete_observations": return try await deleteObservations(arguments)
            case "delete_relations": return try await deleteRelations(arguments)
            case "read_graph": return try await readGraph()
            case "search_nodes": return try await searchNodes(arguments)
            case "open_nodes": return try await openNodes(arguments)
            case "semantic_search": return try await semanticSearch(arguments)
            case "similar": return try await similar(arguments)
            default:
                return Self.failure("unknown tool \(name.debugDescription); the tools are \(Self.names.joined(separator: ", "))")
            }
        } catch let error as ToolFailure {
            return Self.failure(error.message)
        } catch let error as RPCError {
            return Self.failure("\(name) failed: \(describe(error))")
        } catch {
            return Self.failure("\(name) failed: \(error)")
        }
    }

    // MARK: The reference memory server's tools

    func createEntities(_ arguments: ToolArguments) async throws -> CallTool.Result {
        var wanted: [Kb_Graph_V1_Entity] = []
        var seen = Set<String>()
        for (index, object) in try arguments.objects("entities").enumerated() {
            let path = "entities[\(index)]"
            let name = try arguments.string(object, "name", path)
            let entityType = try arguments.string(object, "entityType", path)
            let observations = try arguments.strings(object, "observations", path)
            // Like the reference: a name given twice in one call is created once.
            guard seen.insert(name).inserted else { continue }
            wanted.append(.with {
                $0.name = name
                $0.entityType = entityType
                $0.observations = observations.map { text in .with { $0.content = text } }
                $0.source = .auto
            })
        }
        // Like the reference: an entity that exists already is left as it is and not returned.
        var created: [Kb_Graph_V1_Entity] = []
        for entity in wanted where try await find(entity.name) == nil {
            created.append(entity)
        }
        if !created.isEmpty {
            _ = try await graph.call(GraphStoreMethods.putEntities, .with {
                $0.team = team
                $0.entities = created
                $0.omitEntities = true
            })
        }
        return Self.success(["entities": .array(created.map(Self.entityValue))])
    }

    func createRelations(_ arguments: ToolArguments) async throws -> CallTool.Result {
        var wanted: [Kb_Graph_V1_Relation] = []
        var seen = Set<RelationKey>()
        for (index, object) in try arguments.objects("relations").enumerated() {
            let relation = try arguments.relation(object, "relations[\(index)]")
            if seen.insert(RelationKey(relation)).inserted { wanted.append(relation) }
        }
        // Both ends must exist (nothing is written otherwise); a relation already there is
        // left as it is and not returned, as the reference does.
        var entities: [String: Kb_Graph_V1_GetEntityResponse] = [:]
        for relation in wanted {
            for name in [relation.from, relation.to] where entities[name] == nil {
                guard let found = try await find(name) else { throw ToolFailure("Entity with name \(name) not found in team \(team)") }
                entities[name] = found
            }
        }
        let created = wanted.filter { relation in
            !(entities[relation.from]?.outbound.contains { RelationKey($0) == RelationKey(relation) } ?? false)
        }
        if !created.isEmpty {
            _ = try await graph.call(GraphStoreMethods.putRelations, .with {
                $0.team = team
                $0.relations = created
            })
        }
        return Self.success(["relations": .array(created.map(Self.relationValue))])
    }

    func addObservations(_ arguments: ToolArguments) async throws -> CallTool.Result {
        var additions: [(name: String, contents: [String])] = []
        for (index, object) in try arguments.objects("observations").enumerated() {
            let path = "observations[\(index)]"
            additions.append((try arguments.string(object, "entityName", path), try arguments.strings(object, "contents", path)))
        }
        // Every entity must exist (nothing is written otherwise); contents the entity already
        // holds are not added again.
        var updates: [Kb_Graph_V1_Entity] = []
        var results: [Value] = []
        var pending: [String: Set<String>] = [:]
        for addition in additions {
            guard let found = try await find(addition.name) else { throw ToolFailure("Entity with name \(addition.name) not found in team \(team)") }
            var present = pending[addition.name] ?? Set(found.entity.observations.map(\.content))
            var added: [String] = []
            for content in addition.contents where present.insert(content).inserted { added.append(content) }
            pending[addition.name] = present
            results.append(.object(["entityName": .string(addition.name), "addedObservations": .array(added.map(Value.string))]))
            // Only observations: the entity keeps its type, source and other fields.
            if !added.isEmpty {
                updates.append(.with {
                    $0.name = addition.name
                    $0.observations = added.map { text in .with { $0.content = text } }
                })
            }
        }
        if !updates.isEmpty {
            _ = try await graph.call(GraphStoreMethods.putEntities, .with {
                $0.team = team
                $0.entities = updates
                $0.omitEntities = true
            })
        }
        return Self.success(["results": .array(results)])
    }

    func deleteEntities(_ arguments: ToolArguments) async throws -> CallTool.Result {
        let names = try arguments.strings(arguments.values, "entityNames", nil)
        var present: [String] = [], notFound: [String] = []
        for name in names {
            if try await find(name) != nil { present.append(name) } else { notFound.append(name) }
        }
        if !present.isEmpty {
            _ = try await graph.call(GraphStoreMethods.deleteEntities, .with {
                $0.team = team
                $0.names = present
            })
        }
        let message = notFound.isEmpty
            ? "Entities deleted successfully"
            : "Deleted \(present.count) of \(names.count) entities. Not found: \(notFound.joined(separator: ", "))"
        return Self.message(message)
    }

    func deleteObservations(_ arguments: ToolArguments) async throws -> CallTool.Result {
        var deletions: [(name: String, observations: [String])] = []
        for (index, object) in try arguments.objects("deletions").enumerated() {
            let path = "deletions[\(index)]"
            deletions.append((try arguments.string(object, "entityName", path), try arguments.strings(object, "observations", path)))
        }
        guard !deletions.isEmpty else { return Self.message("Observations deleted successfully") }
        // One atomic write in the store: the entities keep their other fields and relations.
        let answer = try await graph.call(GraphStoreMethods.deleteObservations, .with {
            $0.team = team
            $0.deletions = deletions.map { deletion in .with { $0.name = deletion.name; $0.contents = deletion.observations } }
        })
        let deleted = Int(answer.deleted), missing = answer.missing
        let requested = deletions.reduce(0) { $0 + $1.observations.count }
        let message = deleted == requested
            ? "Observations deleted successfully"
            : "Deleted \(deleted) of \(requested) observations." + (missing.isEmpty ? "" : " Entities not found: \(missing.joined(separator: ", "))")
        return Self.message(message)
    }

    func deleteRelations(_ arguments: ToolArguments) async throws -> CallTool.Result {
        var relations: [Kb_Graph_V1_Relation] = []
        var seen = Set<RelationKey>()
        let objects = try arguments.objects("relations")
        for (index, object) in objects.enumerated() {
            let relation = try arguments.relation(object, "relations[\(index)]")
            if seen.insert(RelationKey(relation)).inserted { relations.append(relation) }
        }
        var deleted = 0
        if !relations.isEmpty {
            deleted = Int(try await graph.call(GraphStoreMethods.deleteRelations, .with {
                $0.team = team
                $0.relations = relations
            }).deleted)
        }
        let requested = objects.count
        let message = deleted == requested
            ? "Relations deleted successfully"
            : "Deleted \(deleted) of \(requested) relations. The rest matched nothing."
        return Self.message(message)
    }

    func readGraph() async throws -> CallTool.Result {
        var entities: [Kb_Graph_V1_Entity] = []
        var cursor = ""
        repeat {
            let page = try await graph.call(GraphStoreMethods.queryEntities, .with {
                $0.teams = [team]
                $0.sort = .name
                $0.limit = 1000
                $0.cursor = cursor
            })
            entities += page.entities
            cursor = page.nextCursor
        } while !cursor.isEmpty
        var relations: [Kb_Graph_V1_Relation] = []
        repeat {
            let page = try await graph.call(GraphStoreMethods.queryRelations, .with {
                $0.teams = [team]
                $0.limit = 1000
                $0.cursor = cursor
            })
            relations += page.relations
            cursor = page.nextCursor
        } while !cursor.isEmpty
        return Self.success(Self.graphValue(entities, relations))
    }

    func searchNodes(_ arguments: ToolArguments) async throws -> CallTool.Result {
        let query = try arguments.string(arguments.values, "query", nil)
        guard query.count <= Self.maxQueryLength else {
            throw arguments.invalid("query", "must be at most \(Self.maxQueryLength) characters (got \(query.count))")
        }
        let found = try await graph.call(GraphStoreMethods.queryEntities, .with {
            $0.teams = [team]
            $0.text = query
            $0.limit = 1000
        })
        return Self.success(Self.graphValue(found.entities, try await relationsTouching(found.entities.map(\.name))))
    }

    func openNodes(_ arguments: ToolArguments) async throws -> CallTool.Result {
        let names = try arguments.strings(arguments.values, "names", nil)
        var entities: [Kb_Graph_V1_Entity] = []
        var relations: [Kb_Graph_V1_Relation] = []
        var seen = Set<RelationKey>()
        for name in Set(names).sorted() {
            guard let found = try await find(name) else { continue }
            entities.append(found.entity)
            for relation in found.outbound + found.inbound where seen.insert(RelationKey(relation)).inserted {
                relations.append(relation)
            }
        }
        return Self.success(Self.graphValue(entities, relations))
    }

    // MARK: Search by meaning

    /// Most characters of a search query (the reference server's bound).
    public static let maxQueryLength = 2048

    func semanticSearch(_ arguments: ToolArguments) async throws -> CallTool.Result {
        let query = try arguments.string(arguments.values, "query", nil)
        guard !query.isEmpty, query.count <= Self.maxQueryLength else {
            throw arguments.invalid("query", "must be 1–\(Self.maxQueryLength) characters (got \(query.count))")
        }
        let limit = try arguments.limit(default: 10)
        let types = try arguments.optionalStrings("entityTypes") ?? []
        let reason: String
        if let meaning {
            do {
                let hits = try await meaning.search(query, team: team, types: types, limit: limit, mode: .hybrid)
                return Self.success(try await hitsValue(hits, mode: "hybrid"))
            } catch {
                reason = MeaningSearch.describe(error)
            }
        } else {
            reason = "the inference gateway and vector-search are not configured"
        }
        // Degraded: the graph's word search, said so in the text and the structured result.
        let found = try await graph.call(GraphStoreMethods.queryEntities, .with {
            $0.teams = [team]
            $0.text = query
            $0.entityTypes = types
            $0.limit = Int32(limit)
        })
        let entities = found.entities.enumerated().map { index, entity in
            Self.entityValue(entity, score: index < found.scores.count ? found.scores[index] : 0)
        }
        let result: [String: Value] = ["entities": .array(entities), "mode": .string("keyword"), "degraded": .bool(true), "reason": .string(reason)]
        return Self.success(result, preface: "degraded: search by meaning is unavailable (\(reason)); searched by words instead")
    }

    func similar(_ arguments: ToolArguments) async throws -> CallTool.Result {
        let name = try arguments.string(arguments.values, "name", nil)
        let limit = try arguments.limit(default: 10)
        guard let meaning else {
            throw ToolFailure("similar needs search by meaning, which is not configured: set KB_INFERENCE_GATEWAY_ADDR and KB_VECTOR_SEARCH_ADDR")
        }
        do {
            let hits = try await meaning.similar(to: name, team: team, types: [], limit: limit)
            return Self.success(try await hitsValue(hits, mode: "semantic"))
        } catch let error as RPCError where error.code == .notFound {
            throw ToolFailure(error.message)
        } catch {
            throw ToolFailure("search by meaning is unavailable (\(MeaningSearch.describe(error))): similar needs the inference gateway's indexer and vector-search")
        }
    }

    /// Hits as entities read from the graph (names deleted since they were indexed left out),
    /// each with its score.
    func hitsValue(_ hits: [MeaningSearch.Hit], mode: String) async throws -> [String: Value] {
        var entities: [Value] = []
        for hit in hits {
            guard let found = try await find(hit.name) else { continue }
            entities.append(Self.entityValue(found.entity, score: Double(hit.score)))
        }
        return ["entities": .array(entities), "mode": .string(mode), "degraded": .bool(false)]
    }

    // MARK: Graph access

    /// Entity `name` of the team with its relations, or nil when there is none.
    func find(_ name: String) async throws -> Kb_Graph_V1_GetEntityResponse? {
        do {
            return try await graph.call(GraphStoreMethods.getEntity, .with {
                $0.team = team
                $0.name = name
            })
        } catch let error as RPCError where error.code == .notFound {
            return nil
        }
    }

    /// The relations touching any of `names`, each once.
    func relationsTouching(_ names: [String]) async throws -> [Kb_Graph_V1_Relation] {
        var relations: [Kb_Graph_V1_Relation] = []
        var seen = Set<RelationKey>()
        for name in names {
            guard let found = try await find(name) else { continue }
            for relation in found.outbound + found.inbound where seen.insert(RelationKey(relation)).inserted {
                relations.append(relation)
            }
        }
        return relations
    }

    func describe(_ error: RPCError) -> String {
        if error.code == .unavailable || error.code == .deadlineExceeded {
            return "graph-store is not reachable at \(graph.configuration.host):\(graph.configuration.port) (\(error.message)); start it with `kb up`"
        }
        return "\(error.code.name): \(error.message)"
    }
}

/// A relation's identity: ends and type.
struct RelationKey: Hashable {
    var from: String
    var to: String
    var type: String

    init(_ relation: Kb_Graph_V1_Relation) {
        from = relation.from
        to = relation.to
        type = relation.relationType
    }
}

/// Runs bodies one after another, in the order `run` is called (an actor alone would interleave
/// them at every `await`).
actor WriteQueue {
    private var last: Task<Void, Never>?

    func run<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
        let previous = last
        let task = Task {
            await previous?.value
            return await body()
        }
        last = Task { _ = await task.value }
        return await task.value
    }
}
