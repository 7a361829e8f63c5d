import ArgumentParser
import Foundation
import KBKnowledge
import KBLearning
import KBProto
import KBRPC
import KBRuntime
import KBSessions

/// `ukb trajectory [SESSION] [--since T]`: the sessions `ukb learn` has followed, or one
/// session's path — each exchange's intent over time, the goal, the knowledge it produced and
/// used.
struct Trajectory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Coding sessions' trajectories: the sessions learned from, or one session's intents over time, goal, and the knowledge it produced and used.",
        discussion: "Sessions are `Session` entities of the team's graph written by `ukb learn` (named `session <id>`). --since takes an ISO 8601 time or date."
    )
    @OptionGroup var common: Common
    @Argument(help: "A session id (or the start of one); none lists the sessions.") var session: String?
    @Option(help: "Only sessions (or exchanges) since this time (ISO 8601, e.g. 2025-06-01 or 2025-06-01T09:00:00Z).") var since: String?
    @Option(help: "At most this many sessions in the list.") var limit = 50

    func run() async throws {
        let team = common.resolvedTeam
        var sinceMs: Int64 = 0
        if let since {
            guard let parsed = SessionReader.parseTime(since) else { fail("--since: '\(since)' is not an ISO 8601 time or date") }
            sinceMs = parsed
        }
        try await execute { client in
            if let session {
                try await show(session, team: team, sinceMs: sinceMs, client: client)
            } else {
                try await list(team: team, sinceMs: sinceMs, client: client)
            }
        }
    }

    func sessions(team: String, sinceMs: Int64, client: RPCClient) async throws -> [Kb_Graph_V1_Entity] {
        let page = try await client.call(GraphStoreMethods.queryEntities, .with {
            $0.teams = [team]
            $0.entityTypes = ["Session"]
            $0.modifiedAfterMs = sinceMs
            $0.sort = .modified
            $0.descending = true
            $0.limit = Int32(clamping: max(1, min(1000, limit)))
        })
        return page.entities
    }

    func list(team: String, sinceMs: Int64, client: RPCClient) async throws {
        let found = try await sessions(team: team, sinceMs: sinceMs, client: client)
        if common.json {
            let rows: [[String: Any]] = found.map { entity in
                ["session": entity.metadata["session"] ?? entity.name, "goal": entity.metadata["goal"] ?? "", "exchanges": entity.observations.count,
                 "last": SharedMemoryDocument.iso(entity.lastModifiedMs), "project": entity.metadata["project"] ?? ""]
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: ["team": team, "sessions": rows], options: [.sortedKeys]), as: UTF8.self))
            return
        }
        guard !found.isEmpty else {
            print("No sessions learned from in team \(team)\(since.map { " since \($0)" } ?? ""): `ukb learn PATH` reads them.")
            return
        }
        for entity in found {
            let intents = Dictionary(grouping: entity.observations.compactMap { $0.metadata["intent"] }, by: { $0 }).mapValues(\.count)
                .sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            print("\(entity.metadata["session"] ?? entity.name)  \(SharedMemoryDocument.iso(entity.lastModifiedMs))  \(entity.observations.count) exchanges  [\(intents)]")
            if let goal = entity.metadata["goal"] { print("    goal: \(goal)") }
        }
    }

    func show(_ session: String, team: String, sinceMs: Int64, client: RPCClient) async throws {
        var entity: Kb_Graph_V1_Entity?
        var outbound: [Kb_Graph_V1_Relation] = []
        if let found = try? await client.call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = Learner.sessionEntityName(session) }) {
            entity = found.entity
            outbound = found.outbound
        } else {
            let candidates = try await sessions(team: team, sinceMs: 0, client: client).filter { ($0.metadata["session"] ?? "").hasPrefix(session) }
            guard candidates.count <= 1 else { fail("'\(session)' starts \(candidates.count) sessions' ids; give more of it") }
            if let name = candidates.first?.name {
                let found = try await client.call(GraphStoreMethods.getEntity, .with { $0.team = team; $0.name = name })
                entity = found.entity
                outbound = found.outbound
            }
        }
        guard let entity else { fail("no session '\(session)' in team \(team): `ukb trajectory` lists them") }
        let steps = entity.observations.filter { observation in
            guard sinceMs > 0 else { return true }
            return (SessionReader.parseTime(observation.date) ?? Int64.max) >= sinceMs
        }.sorted { $0.date < $1.date }
        let produced = outbound.filter { $0.relationType == "produced" }.map(\.to)
        let used = outbound.filter { $0.relationType == "used" }.map(\.to)
        if common.json {
            let object: [String: Any] = [
                "session": entity.metadata["session"] ?? entity.name, "goal": entity.metadata["goal"] ?? "", "project": entity.metadata["project"] ?? "",
                "exchanges": steps.map { step -> [String: Any] in
                    ["time": step.date, "intent": step.metadata["intent"] ?? "", "intentConfidence": Double(step.metadata["intent_confidence"] ?? "") ?? 0,
                     "intentBy": step.metadata["intent_by"] ?? "", "goal": step.metadata["goal"] ?? "", "concepts": step.metadata["concepts"] ?? "",
                     "produced": step.metadata["produced"] ?? "", "exchange": step.metadata["exchange"] ?? "", "text": step.content]
                },
                "produced": produced, "used": used,
            ]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print("Session \(entity.metadata["session"] ?? entity.name)\(entity.metadata["project"].map { " (\($0))" } ?? "")")
        if let goal = entity.metadata["goal"] { print("Goal: \(goal)") }
        for step in steps {
            print("  \(step.content)")
            if let concepts = step.metadata["concepts"] { print("      close to: \(concepts)") }
            if let made = step.metadata["produced"] { print("      produced: \(made)") }
        }
        if !produced.isEmpty { print("Produced: \(produced.joined(separator: ", "))") }
        if !used.isEmpty { print("Used: \(used.joined(separator: ", "))") }
    }
}
