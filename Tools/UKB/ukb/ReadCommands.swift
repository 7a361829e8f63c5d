import ArgumentParser
import Foundation
import KBKnowledge
import KBProto
import KBRPC
import UKBKit

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Whether the graph store is serving, with its counts.")
    @OptionGroup var common: Common

    func run() async throws {
        try await execute { client in
            let health = try await client.call(HealthMethods.check, .init(), options: CallOptions(timeout: .seconds(5)))
            let stats = try await client.call(GraphStoreMethods.getStats, .init())
            let teams = try await client.call(GraphStoreMethods.listTeams, .init())
            if common.json {
                try printJSON(health)
                try printJSON(stats)
            } else {
                let serving = health.status == .serving
                print("graph-store at \(client.configuration.host):\(client.configuration.port): \(serving ? "serving" : "NOT SERVING")")
                for (name, component) in health.components.sorted(by: { $0.key < $1.key }) {
                    let details = component.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                    print("  \(name): \(component.status) \(details)")
                }
                print("Total Entities: \(stats.totalEntities)")
                print("Total Relations: \(stats.totalRelations)")
                print("Teams: \(teams.teams.map { "\($0.team) (\($0.entityCount))" }.joined(separator: ", "))")
            }
            if health.status != .serving { throw ExitCode(1) }
        }
    }
}

struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Statistics (--stats), or entities by type, source, date and confidence.")
    @OptionGroup var common: Common
    @Flag(help: "Print totals and breakdowns (all teams unless --team or KB_TEAM names one).") var stats = false
    @Option(name: .customLong("type"), help: "Only entities of this type (repeatable).") var types: [String] = []
    @Option(help: "Only entities from this source: manual or auto.") var source: String?
    @Option(help: "Only entities at least this confident (0–1).") var minConfidence: Double?
    @Option(help: "Sort: name, created, modified, significance, confidence.") var sort = "name"
    @Flag(help: "Reverse the sort.") var descending = false
    @Option(help: "At most this many entities (1–1000).") var limit = 50
    @Option(help: "Continue after this cursor (printed after a full page).") var cursor: String?

    func run() async throws {
        try await execute { client in
            if stats {
                let teams = common.explicitTeam.map { [$0] } ?? []
                let response = try await client.call(GraphStoreMethods.getStats, .with { $0.teams = teams })
                if common.json { return try printJSON(response) }
                let teamCount = teams.isEmpty ? try await client.call(GraphStoreMethods.listTeams, .init()).teams.count : response.entitiesByTeam.count
                print(GraphText.stats(response, teams: teamCount))
                return
            }
            var request = Kb_Graph_V1_QueryEntitiesRequest()
            request.teams = [common.resolvedTeam]
            request.entityTypes = types
            request.limit = Int32(clamping: limit)
            request.descending = descending
            request.cursor = cursor ?? ""
            request.minConfidence = minConfidence ?? 0
            if let source {
                guard let value = Kb_Graph_V1_Source(name: source) else { fail("--source must be manual or auto (got \(source))") }
                request.source = value
            }
            switch sort {
            case "name": request.sort = .name
            case "created": request.sort = .created
            case "modified": request.sort = .modified
            case "significance": request.sort = .significance
            case "confidence": request.sort = .confidence
            default: fail("--sort must be name, created, modified, significance or confidence (got \(sort))")
            }
            let response = try await client.call(GraphStoreMethods.queryEntities, request)
            if common.json { return try printJSON(response) }
            print(GraphText.entityList(response.entities))
            if !response.nextCursor.isEmpty { print("more: --cursor \(response.nextCursor)") }
        }
    }
}

struct Teams: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Teams with their counts and last activity.")
    @OptionGroup var common: Common

    func run() async throws {
        try await execute { client in
            let response = try await client.call(GraphStoreMethods.listTeams, .init())
            if common.json { return try printJSON(response) }
            if response.teams.isEmpty { print("no teams yet") }
            for team in response.teams {
                print("\(team.team)  entities: \(team.entityCount)  relations: \(team.relationCount)  last activity: \(SharedMemoryDocument.iso(team.lastActivityMs))")
            }
        }
    }
}

struct Search: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Find entities by meaning and words (hybrid: vector 0.7 + BM25 0.3), by meaning alone (--semantic), or by words alone (--keyword).",
        discussion: """
            Hybrid and semantic search need the inference gateway (the query's embedding) and \
            vector-search (the knowledge_384 collection its indexer writes); when either does not \
            answer, ukb says it is degraded (on stderr) and searches by words.
            """
    )
    @OptionGroup var common: Common
    @Argument(help: "What to find.") var text: String
    @Option(name: .customLong("type"), help: "Only entities of this type (repeatable).") var types: [String] = []
    @Option(help: "At most this many results.") var limit = 20
    @Flag(help: "By meaning alone (vector similarity).") var semantic = false
    @Flag(help: "By words alone: every word of TEXT, prefixes, any case (the graph store's search).") var keyword = false

    func validate() throws {
        guard !(semantic && keyword) else { throw ValidationError("--semantic and --keyword exclude each other") }
        guard (1...1000).contains(limit) else { throw ValidationError("--limit must be 1 to 1000") }
    }

    func run() async throws {
        let mode: SearchMode = keyword ? .keyword : (semantic ? .semantic : .hybrid)
        try await execute { client in
            if mode != .keyword {
                do {
                    let meaning = try MeaningSearch.fromEnvironment()
                    let hits: [MeaningSearch.Hit]
                    do {
                        hits = try await meaning.search(text, team: common.resolvedTeam, types: types, limit: limit, mode: mode)
                        await meaning.close()
                    } catch {
                        await meaning.close()
                        throw error
                    }
                    return try await printHits(hits, client: client, json: common.json, team: common.resolvedTeam)
                } catch {
                    degraded(error)
                }
            }
            let response = try await client.call(GraphStoreMethods.queryEntities, .with {
                $0.teams = [common.resolvedTeam]
                $0.text = text
                $0.entityTypes = types
                $0.limit = Int32(clamping: limit)
            })
            if common.json { return try printJSON(response) }
            print(GraphText.entityList(response.entities, scores: response.scores))
        }
    }
}

struct Similar: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The entities nearest in meaning to NAME (its indexed vector), in its team.")
    @OptionGroup var common: Common
    @Argument(help: "The entity's name.") var name: String
    @Option(name: .customLong("type"), help: "Only entities of this type (repeatable).") var types: [String] = []
    @Option(help: "At most this many results.") var limit = 10

    func run() async throws {
        try await execute { client in
            let meaning: MeaningSearch
            do { meaning = try MeaningSearch.fromEnvironment() } catch { fail("\(error)") }
            do {
                let hits = try await meaning.similar(to: name, team: common.resolvedTeam, types: types, limit: max(1, min(limit, 1000)))
                await meaning.close()
                try await printHits(hits, client: client, json: common.json, team: common.resolvedTeam)
            } catch let error as RPCError where error.code == .notFound {
                await meaning.close()
                fail(error.message)
            } catch {
                await meaning.close()
                fail("search by meaning is unavailable (\(MeaningSearch.describe(error))): `ukb similar` needs the inference gateway's indexer and vector-search")
            }
        }
    }
}

/// Says on stderr that search by meaning could not run and words are searched instead.
func degraded(_ error: any Error) {
    FileHandle.standardError.write(Data("ukb: degraded: search by meaning is unavailable (\(MeaningSearch.describe(error))); searching by words instead\n".utf8))
}

/// Hits printed as `ukb search` prints entities (score, name, type, first observation), read
/// from the graph store; names deleted since they were indexed are left out.
func printHits(_ hits: [MeaningSearch.Hit], client: RPCClient, json: Bool, team: String) async throws {
    var entities: [Kb_Graph_V1_Entity] = []
    var scores: [Double] = []
    for hit in hits {
        guard let entity = try? await client.call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = hit.name }).entity else { continue }
        entities.append(entity)
        scores.append(Double(hit.score))
    }
    if json {
        var response = Kb_Graph_V1_QueryEntitiesResponse()
        response.entities = entities
        response.scores = scores
        return try printJSON(response)
    }
    print(GraphText.entityList(entities, scores: scores))
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One entity with its observations and relations.")
    @OptionGroup var common: Common
    @Argument(help: "The entity's name.") var name: String

    func run() async throws {
        try await execute { client in
            let response = try await client.call(GraphStoreMethods.getEntity, .with { $0.team = common.resolvedTeam; $0.name = name })
            if common.json { return try printJSON(response) }
            print(GraphText.entity(response))
        }
    }
}

/// `both`, `out` or `in` as a direction.
func parseDirection(_ text: String) -> Kb_Graph_V1_Direction {
    switch text {
    case "both": return .both
    case "out", "outbound": return .outbound
    case "in", "inbound": return .inbound
    default: fail("--direction must be both, out or in (got \(text))")
    }
}

struct Neighbors: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Entities within N hops of NAME.")
    @OptionGroup var common: Common
    @Argument(help: "The start entity.") var name: String
    @Option(help: "Hops, 1–5.") var depth = 1
    @Option(help: "both, out or in.") var direction = "both"
    @Option(name: .customLong("relation-type"), help: "Follow only this relation type (repeatable).") var relationTypes: [String] = []
    @Option(name: .customLong("type"), help: "Only entities of this type (repeatable).") var entityTypes: [String] = []
    @Option(help: "At most this many entities.") var max = 500

    func run() async throws {
        try await execute { client in
            let response = try await client.call(GraphStoreMethods.neighbors, .with {
                $0.team = common.resolvedTeam
                $0.name = name
                $0.depth = Int32(clamping: depth)
                $0.direction = parseDirection(direction)
                $0.relationTypes = relationTypes
                $0.entityTypes = entityTypes
                $0.maxEntities = Int32(clamping: max)
            })
            if common.json { return try printJSON(response) }
            print(GraphText.neighbors(response))
        }
    }
}

struct Path: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The shortest chain of relations from A to B.")
    @OptionGroup var common: Common
    @Argument(help: "From.") var from: String
    @Argument(help: "To.") var to: String
    @Option(help: "both, out or in.") var direction = "both"
    @Option(help: "Most hops, 1–5.") var maxDepth = 5

    func run() async throws {
        try await execute { client in
            let response = try await client.call(GraphStoreMethods.shortestPath, .with {
                $0.team = common.resolvedTeam
                $0.from = from
                $0.to = to
                $0.direction = parseDirection(direction)
                $0.maxDepth = Int32(clamping: maxDepth)
            })
            if common.json { return try printJSON(response) }
            print(GraphText.path(response))
            if !response.found { throw ExitCode(1) }
        }
    }
}
