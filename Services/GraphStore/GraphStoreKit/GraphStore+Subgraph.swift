import Dispatch
import KBKnowledge
import Synchronization
import KBLevelDB
import KBProto
import KBRPC

extension GraphStore {
    static let defaultSubgraphEntities = 2000
    static let maxSubgraphEntities = 20_000
    static let maxSubgraphDepth = 3

    /// A part of the graph to draw: the most significant entities that pass the filters (read
    /// from the significance index, which carries type and source, so only the chosen records
    /// are decoded), or the neighbourhood of a focus entity; then every relation among them,
    /// from the chosen entities' outbound adjacency. The answer stays under
    /// `limits.maxAnswerBytes` (`truncated` when that cut it); `cancellation` is checked in
    /// every scan and read loop.
    public func subgraph(_ request: Kb_Graph_V1_SubgraphRequest, cancellation: WorkCancellation = .never) throws -> Kb_Graph_V1_SubgraphResponse {
        var stop = cancellation
        let maxAnswerBytes = limits.maxAnswerBytes
        let teams = try Self.teams(request.teams)
        try Self.check { () throws(KnowledgeRuleError) in
            for (index, type) in request.entityTypes.enumerated() { try KnowledgeRules.checkType(type, field: "entity_types[\(index)]") }
            for (index, type) in request.relationTypes.enumerated() { try KnowledgeRules.checkType(type, field: "relation_types[\(index)]") }
            if case .UNRECOGNIZED(let raw) = request.source { throw KnowledgeRuleError(field: "source", reason: .unknownValue, "unknown source \(raw)") }
            guard request.maxEntities >= 0, Int(request.maxEntities) <= Self.maxSubgraphEntities else {
                throw KnowledgeRuleError(field: "max_entities", reason: .outOfRange, "must be 0 (default \(Self.defaultSubgraphEntities)) to \(Self.maxSubgraphEntities) (got \(request.maxEntities))")
            }
            if !request.focus.isEmpty {
                try KnowledgeRules.checkName(request.focus, field: "focus")
                try KnowledgeRules.checkTeam(request.focusTeam, field: "focus_team")
                guard request.depth >= 0, Int(request.depth) <= Self.maxSubgraphDepth else {
                    throw KnowledgeRuleError(field: "depth", reason: .outOfRange, "must be 1–\(Self.maxSubgraphDepth) (got \(request.depth))")
                }
            }
        }
        let cap = request.maxEntities == 0 ? Self.defaultSubgraphEntities : Int(request.maxEntities)
        let entityTypes = Set(request.entityTypes)
        let relationTypes = Set(request.relationTypes)
        let snapshot = db.snapshot()
        var response = Kb_Graph_V1_SubgraphResponse()
        // Bytes of the entities in the answer, counted as they are read.
        var entityBytes = 0

        if !request.focus.isEmpty {
            // Bytes, never `String ==`: "équipe" in NFC and in NFD are equal Strings but two
            // teams' keys; a canonical comparison here let one team's request read the other.
            guard teams.contains(where: { CanonicalName.sameBytes($0, request.focusTeam) }) else {
                throw RPCError.invalidArgument(field: "focus_team", reason: .inconsistent, "must be one of the teams asked for")
            }
            var around = Kb_Graph_V1_NeighborsRequest()
            around.team = request.focusTeam
            around.name = request.focus
            around.depth = max(1, request.depth)
            around.maxEntities = Int32(min(cap, Self.maxMaxEntities))
            around.relationTypes = request.relationTypes
            around.entityTypes = request.entityTypes
            let found = try neighbors(around, withObservations: request.withObservations, cancellation: cancellation, entityBytes: &entityBytes)
            // Unset counts as manual, as in the index.
            response.entities = found.entities.filter { $0.name == request.focus || request.source == .unspecified || ($0.source == .auto) == (request.source == .auto) }
            response.truncated = found.truncated
            response.matchingEntities = Int64(response.entities.count)
        } else {
            // Per team, the first `cap` passing entries of its significance index (and a count of
            // all passing ones); then the best `cap` of all teams.
            // How many pass comes from the counters when one filter at most applies (then the
            // scan stops at the cap); with both a type and a source filter the scan counts them.
            var counted: Int64?
            let counters = try self.counters(teams: teams, snapshot: snapshot)
            let sourceName = request.source.name
            if request.source == .unspecified {
                counted = counters.values.reduce(0) { total, team in
                    total + (entityTypes.isEmpty ? team.entities : entityTypes.reduce(0) { $0 + (team.byType[$1] ?? 0) })
                }
            } else if entityTypes.isEmpty {
                counted = counters.values.reduce(0) { $0 + ($1.bySource[sourceName] ?? 0) }
            }
            // The types as bytes: the index values are compared without making strings.
            let typeBytes = Set(entityTypes.map { ArraySlice(Array($0.utf8)) })
            var chosen: [(rank: UInt8, team: String, name: String)] = []
            var matching: Int64 = 0
            for team in teams {
                let prefix = GraphKey.teamPrefix(GraphKey.significance, team)
                var taken = 0
                try db.forEach(prefix: prefix, snapshot: snapshot) { key, value in
                    try stop.check()
                    if request.source != .unspecified, value.first != UInt8(request.source.rawValue) { return true }
                    if !typeBytes.isEmpty, value.count > 0, !typeBytes.contains(value[1...]) { return true }
                    matching += 1
                    if taken < cap {
                        taken += 1
                        chosen.append((key[prefix.count], team, String(decoding: key.dropFirst(prefix.count + 1), as: UTF8.self)))
                        return true
                    }
                    return counted == nil
                }
            }
            if let counted { matching = counted }
            if teams.count > 1 {
                chosen.sort { ($0.rank, $0.team, $0.name) < ($1.rank, $1.team, $1.name) }
            }
            response.truncated = chosen.count > cap || matching > Int64(min(chosen.count, cap))
            response.matchingEntities = matching
            // The records, read on both cores when there are many.
            let strip = !request.withObservations
            let picked = Array(chosen.prefix(cap))
            // Each half of the reading fills at most its share of the answer's bytes.
            let share = maxAnswerBytes / (picked.count >= 1000 ? 2 : 1)
            let readBytes = Mutex(0)
            response.entities = try Self.inHalves(picked) { items in
                var stop = cancellation
                var records: [Kb_Graph_V1_Entity] = []
                var bytes = 0
                for item in items {
                    try stop.check()
                    guard let stored = try db.get(GraphKey.entity(item.team, item.name), snapshot: snapshot) else { continue }
                    var record = try Self.decodeEntity(stored)
                    var size = stored.count
                    if strip, !record.observations.isEmpty {
                        size = GraphLimits.sizeWithoutObservations(record, storedBytes: size)
                        record.observations = []
                    }
                    guard bytes + GraphLimits.itemBytes(size) <= share else { break }
                    bytes += GraphLimits.itemBytes(size)
                    records.append(record)
                }
                readBytes.withLock { $0 += bytes }
                return records
            }
            entityBytes = readBytes.withLock { $0 }
            if response.entities.count < picked.count { response.truncated = true }
        }
        try stop.checkNow()

        // Every relation among the chosen entities (both ends chosen, type passing), read from
        // their outbound adjacency on both cores. For a drawing (no observations asked for) the
        // relation comes from its key alone: ends and type, no record decoded.
        // Members by team bytes, so two spellings of one team name never share a member list.
        var teamMembers: [[UInt8]: Set<String>] = [:]
        for entity in response.entities { teamMembers[Array(entity.team.utf8), default: []].insert(entity.name) }
        let members = teamMembers
        let entities = response.entities
        let details = request.withObservations
        let relationShare = max(0, maxAnswerBytes - entityBytes) / (entities.count >= 1000 ? 2 : 1)
        let relationsCut = Mutex(false)
        response.relations = try Self.inHalves(entities) { slice in
            var stop = cancellation
            var relations: [Kb_Graph_V1_Relation] = []
            var bytes = 0
            for entity in slice where bytes <= relationShare {
                let names = members[Array(entity.team.utf8)]!
                let prefix = GraphKey.adjacencyPrefix(GraphKey.outbound, entity.team, entity.name)
                try db.forEach(prefix: prefix, snapshot: snapshot) { key, value in
                    try stop.check()
                    let parts = GraphKey.components(key, after: prefix)
                    guard parts.count == 2, names.contains(parts[1]), relationTypes.isEmpty || relationTypes.contains(parts[0]) else { return true }
                    // A relation costs its record, or (a drawing's) its key and team.
                    bytes += GraphLimits.itemBytes(details ? value.count : key.count + entity.team.utf8.count + 8)
                    if bytes > relationShare {
                        relationsCut.withLock { $0 = true }
                        return false
                    }
                    if details {
                        relations.append(try Self.decodeRelation(value))
                    } else {
                        var relation = Kb_Graph_V1_Relation()
                        relation.team = entity.team
                        relation.from = entity.name
                        relation.relationType = parts[0]
                        relation.to = parts[1]
                        relations.append(relation)
                    }
                    return true
                }
            }
            return relations
        }
        if relationsCut.withLock({ $0 }) { response.truncated = true }
        return response
    }

    /// `body` over the first and second half of `items` on two threads (one when there are
    /// fewer than 1,000), the results in order; the first error thrown is rethrown.
    static func inHalves<T: Sendable, R: Sendable>(_ items: [T], _ body: @Sendable (ArraySlice<T>) throws -> [R]) throws -> [R] {
        let parts = items.count >= 1000 ? 2 : 1
        let chunk = (items.count + parts - 1) / parts
        let results = Mutex<[[R]]>(Array(repeating: [], count: parts))
        let failure = Mutex<(any Error)?>(nil)
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            do {
                let mine = try body(items[min(items.count, part * chunk)..<min(items.count, (part + 1) * chunk)])
                results.withLock { $0[part] = mine }
            } catch {
                failure.withLock { $0 = $0 ?? error }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        return results.withLock { $0.flatMap { $0 } }
    }
}
