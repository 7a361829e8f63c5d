import Foundation
import KBKnowledge
import KBProto
import KBRPC

/// Moves a graph between the graph store and a shared-memory JSON file, over RPC only.
public struct KnowledgeTransfer: Sendable {
    /// What an import did.
    public struct ImportSummary: Sendable {
        public var teams: [String] = []
        public var entitiesCreated = 0
        public var entitiesUpdated = 0
        public var relationsCreated = 0
        public var relationsExisting = 0
    }

    /// The graph store's client.
    public let client: RPCClient
    /// Entities or relations per PutEntities / PutRelations call.
    public var batchSize: Int

    /// A transfer over `client`, `batchSize` items per call.
    public init(client: RPCClient, batchSize: Int = 1000) {
        self.client = client
        self.batchSize = batchSize
    }

    // MARK: Export

    /// Reads every entity and relation of `teams`, page by page.
    public func export(teams: [String], progress: (@Sendable (Int, Int?) -> Void)? = nil) async throws -> SharedMemoryDocument {
        var document = SharedMemoryDocument(team: teams.count == 1 ? teams[0] : nil)
        let total = try await client.call(GraphStoreMethods.getStats, .with { $0.teams = teams })
        let expected = Int(total.totalEntities + total.totalRelations)
        for team in teams {
            var cursor = ""
            repeat {
                let page = try await client.call(GraphStoreMethods.queryEntities, .with {
                    $0.teams = [team]
                    $0.sort = .name
                    $0.limit = Int32(batchSize)
                    $0.cursor = cursor
                })
                document.entities += page.entities
                cursor = page.nextCursor
                progress?(document.entities.count + document.relations.count, expected)
            } while !cursor.isEmpty
            repeat {
                let page = try await client.call(GraphStoreMethods.queryRelations, .with {
                    $0.teams = [team]
                    $0.limit = Int32(batchSize)
                    $0.cursor = cursor
                })
                document.relations += page.relations
                cursor = page.nextCursor
                progress?(document.entities.count + document.relations.count, expected)
            } while !cursor.isEmpty
        }
        return document
    }

    // MARK: Import

    /// A failure found before anything was written: which entry, and why.
    public struct ImportRejected: Error, CustomStringConvertible, Sendable {
        /// The relation end at fault, e.g. `relations[3].to`.
        public var field: String
        /// What is wrong with it, for people.
        public var rule: String
        /// Why, machine-readable: the end names no entity.
        public var reason: RPCError.Reason { .notFound }

        public var description: String { "\(field): \(rule)" }
    }

    /// The team each entity and relation goes to: `override` when given, else its own `team`,
    /// else the file's `metadata.team`, else `fallback`.
    public static func assignTeams(_ document: inout SharedMemoryDocument, override: String?, fallback: String) {
        for index in document.entities.indices {
            document.entities[index].team = override ?? nonEmpty(document.entities[index].team) ?? document.team ?? fallback
        }
        for index in document.relations.indices {
            document.relations[index].team = override ?? nonEmpty(document.relations[index].team) ?? document.team ?? fallback
        }
    }

    /// Checks that every relation's ends are in the file or already in the store, so a file
    /// that would fail halfway is refused before the first write.
    public func checkRelationEnds(_ document: SharedMemoryDocument) async throws {
        var known = Set(document.entities.map { "\($0.team)\u{0}\($0.name)" })
        for (index, relation) in document.relations.enumerated() {
            for (end, name) in [("from", relation.from), ("to", relation.to)] where !known.contains("\(relation.team)\u{0}\(name)") {
                do {
                    _ = try await client.call(GraphStoreMethods.getEntity, .with { $0.team = relation.team; $0.name = name })
                    known.insert("\(relation.team)\u{0}\(name)")
                } catch let error as RPCError where error.code == .notFound {
                    throw ImportRejected(field: "relations[\(index)].\(end)", rule: "entity '\(name)' is neither in the file nor in team '\(relation.team)'")
                }
            }
        }
    }

    /// Writes the document's entities, then its relations, in batches per team.
    public func importDocument(_ document: SharedMemoryDocument, progress: (@Sendable (Int, Int) -> Void)? = nil) async throws -> ImportSummary {
        var summary = ImportSummary()
        let total = document.entities.count + document.relations.count
        var done = 0
        let entityTeams = Dictionary(grouping: document.entities, by: \.team)
        let relationTeams = Dictionary(grouping: document.relations, by: \.team)
        summary.teams = Set(entityTeams.keys).union(relationTeams.keys).sorted()
        for team in summary.teams {
            for batch in (entityTeams[team] ?? []).chunked(batchSize) {
                let response = try await client.call(GraphStoreMethods.putEntities, .with {
                    $0.team = team
                    $0.entities = batch
                    $0.omitEntities = true
                }, options: CallOptions(timeout: .seconds(120)))
                summary.entitiesCreated += Int(response.created)
                summary.entitiesUpdated += Int(response.updated)
                done += batch.count
                progress?(done, total)
            }
        }
        for team in summary.teams {
            for batch in (relationTeams[team] ?? []).chunked(batchSize) {
                let response = try await client.call(GraphStoreMethods.putRelations, .with {
                    $0.team = team
                    $0.relations = batch
                }, options: CallOptions(timeout: .seconds(120)))
                summary.relationsCreated += Int(response.created)
                summary.relationsExisting += Int(response.existing)
                done += batch.count
                progress?(done, total)
            }
        }
        return summary
    }

    private static func nonEmpty(_ text: String) -> String? { text.isEmpty ? nil : text }
}

extension Array {
    /// The array in consecutive slices of at most `size` elements.
    func chunked(_ size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: Swift.max(1, size)).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}
