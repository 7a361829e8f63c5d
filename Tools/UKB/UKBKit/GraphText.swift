import Foundation
import KBKnowledge
import KBProto

/// How `ukb` prints graph answers for people (`--json` prints the messages instead).
public enum GraphText {
    /// `Total Entities: N` and `Total Relations: N` first (the operations scripts grep them:
    /// `grep "Total Entities" | awk '{print $3}'`), then the breakdowns.
    public static func stats(_ stats: Kb_Graph_V1_GetStatsResponse, teams: Int) -> String {
        var lines = [
            "Graph Database Statistics",
            "Total Entities: \(stats.totalEntities)",
            "Total Relations: \(stats.totalRelations)",
            "Total Teams: \(teams)",
            "Last Update: \(stats.lastUpdateMs > 0 ? SharedMemoryDocument.iso(stats.lastUpdateMs) : "never")",
        ]
        for (title, counts) in [("Entities by team", stats.entitiesByTeam), ("Entities by type", stats.entitiesByType), ("Entities by source", stats.entitiesBySource), ("Relations by type", stats.relationsByType)] where !counts.isEmpty {
            lines.append("")
            lines.append("\(title):")
            let width = counts.keys.map(\.count).max() ?? 0
            for (key, count) in counts.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }) {
                lines.append("  \(key.padding(toLength: width, withPad: " ", startingAt: 0))  \(count)")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// One entity in full, with its relations.
    public static func entity(_ response: Kb_Graph_V1_GetEntityResponse) -> String {
        let entity = response.entity
        var lines = [
            "\(entity.name)  (\(entity.entityType))",
            "  team: \(entity.team)   source: \(entity.source.name)   significance: \(entity.significance)   confidence: \(format(entity.confidence))",
            "  created: \(SharedMemoryDocument.iso(entity.createdAtMs))   modified: \(SharedMemoryDocument.iso(entity.lastModifiedMs))",
        ]
        for (key, value) in entity.metadata.sorted(by: { $0.key < $1.key }) { lines.append("  \(key): \(value)") }
        if !entity.observations.isEmpty {
            lines.append("  observations:")
            for observation in entity.observations {
                var prefix = "    - "
                if !observation.type.isEmpty { prefix += "[\(observation.type)] " }
                lines.append(prefix + observation.content.replacingOccurrences(of: "\n", with: "\n      "))
            }
        }
        if !response.outbound.isEmpty {
            lines.append("  outbound:")
            for relation in response.outbound { lines.append("    -[\(relation.relationType)]-> \(relation.to)") }
        }
        if !response.inbound.isEmpty {
            lines.append("  inbound:")
            for relation in response.inbound { lines.append("    <-[\(relation.relationType)]- \(relation.from)") }
        }
        return lines.joined(separator: "\n")
    }

    /// One line per entity: name, type, and the score when searching.
    public static func entityList(_ entities: [Kb_Graph_V1_Entity], scores: [Double] = [], teams: Bool = false) -> String {
        guard !entities.isEmpty else { return "no entities found" }
        let width = entities.map(\.name.count).max() ?? 0
        return entities.enumerated().map { index, entity in
            var line = ""
            if index < scores.count { line += String(format: "%7.2f  ", scores[index]) }
            if teams { line += "\(entity.team):" }
            line += "\(entity.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(entity.entityType)"
            if let first = entity.observations.first { line += "  — " + String(first.content.prefix(80)).replacingOccurrences(of: "\n", with: " ") }
            return line
        }.joined(separator: "\n")
    }

    /// Neighbours by depth, then the relations among them.
    public static func neighbors(_ response: Kb_Graph_V1_NeighborsResponse) -> String {
        var lines: [String] = []
        let byDepth = Dictionary(grouping: response.entities) { response.depthByName[$0.name] ?? 0 }
        for depth in byDepth.keys.sorted() {
            lines.append(depth == 0 ? "start:" : "depth \(depth):")
            for entity in byDepth[depth]!.sorted(by: { $0.name < $1.name }) { lines.append("  \(entity.name)  (\(entity.entityType))") }
        }
        if !response.relations.isEmpty {
            lines.append("relations:")
            for relation in response.relations { lines.append("  \(relation.from) -[\(relation.relationType)]-> \(relation.to)") }
        }
        if response.truncated { lines.append("(truncated: more entities are within reach; raise --max)") }
        return lines.joined(separator: "\n")
    }

    /// A path as `A -[type]-> B <-[type]- C`.
    public static func path(_ response: Kb_Graph_V1_ShortestPathResponse) -> String {
        guard response.found, let first = response.names.first else { return "no path found" }
        var line = first
        for (index, relation) in response.relations.enumerated() where index + 1 < response.names.count {
            let next = response.names[index + 1]
            line += relation.from == response.names[index] ? " -[\(relation.relationType)]-> \(next)" : " <-[\(relation.relationType)]- \(next)"
        }
        return line + "\n(\(response.relations.count) hop\(response.relations.count == 1 ? "" : "s"))"
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(format: "%.0f", value) : String(format: "%g", value)
    }
}
