import KBKnowledge
import KBLevelDB
import KBProto
import KBRPC

extension GraphStore {
    static let maxDepth = 5
    static let defaultMaxEntities = 500
    static let maxMaxEntities = 10_000

    /// One relation seen from an entity: the other end and the stored triple.
    struct Edge: Hashable {
        var from: String
        var type: String
        var to: String
        func other(than name: String) -> String { from == name ? to : from }
    }

    /// The relations of `name` in `direction`, filtered by type, from the adjacency keys alone.
    func edges(team: String, name: String, direction: Kb_Graph_V1_Direction, types: Set<String>, snapshot: Snapshot, records: inout [Edge: [UInt8]], stop: inout WorkCancellation) throws -> [Edge] {
        var edges: [Edge] = []
        if direction != .inbound {
            let prefix = GraphKey.adjacencyPrefix(GraphKey.outbound, team, name)
            try db.forEach(prefix: prefix, snapshot: snapshot) { key, value in
                try stop.check()
                let parts = GraphKey.components(key, after: prefix)
                if types.isEmpty || types.contains(parts[0]) {
                    let edge = Edge(from: name, type: parts[0], to: parts[1])
                    edges.append(edge)
                    records[edge] = value
                }
                return true
            }
        }
        if direction != .outbound {
            let prefix = GraphKey.adjacencyPrefix(GraphKey.inbound, team, name)
            try db.forEach(prefix: prefix, snapshot: snapshot) { key, _ in
                try stop.check()
                let parts = GraphKey.components(key, after: prefix)
                if types.isEmpty || types.contains(parts[0]) { edges.append(Edge(from: parts[1], type: parts[0], to: name)) }
                return true
            }
        }
        return edges
    }

    /// The entities within `depth` hops of one entity (the entity itself at depth 0), breadth
    /// first, and the relations among them; `truncated` when the cap, or the answer's byte
    /// limit (`limits.maxAnswerBytes`), cut the result. Without `withObservations` the entities
    /// come without their observations (and are counted so). `cancellation` is checked at
    /// every adjacency key and record read.
    public func neighbors(_ request: Kb_Graph_V1_NeighborsRequest, withObservations: Bool = true, cancellation: WorkCancellation = .never) throws -> Kb_Graph_V1_NeighborsResponse {
        var entityBytes = 0
        return try neighbors(request, withObservations: withObservations, cancellation: cancellation, entityBytes: &entityBytes)
    }

    /// `neighbors`, also giving the bytes its entities take in an answer (for Subgraph).
    func neighbors(_ request: Kb_Graph_V1_NeighborsRequest, withObservations: Bool, cancellation: WorkCancellation, entityBytes: inout Int) throws -> Kb_Graph_V1_NeighborsResponse {
        var stop = cancellation
        try Self.check { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            try KnowledgeRules.checkName(request.name, field: "name")
            guard request.depth >= 1, Int(request.depth) <= Self.maxDepth else { throw KnowledgeRuleError(field: "depth", reason: .outOfRange, "must be 1–\(Self.maxDepth) (got \(request.depth))") }
            guard request.maxEntities >= 0, Int(request.maxEntities) <= Self.maxMaxEntities else {
                throw KnowledgeRuleError(field: "max_entities", reason: .outOfRange, "must be 0 (default \(Self.defaultMaxEntities)) to \(Self.maxMaxEntities) (got \(request.maxEntities))")
            }
            if case .UNRECOGNIZED(let raw) = request.direction { throw KnowledgeRuleError(field: "direction", reason: .unknownValue, "unknown direction \(raw)") }
        }
        let cap = request.maxEntities == 0 ? Self.defaultMaxEntities : Int(request.maxEntities)
        let team = request.team
        let relationTypes = Set(request.relationTypes)
        let entityTypes = Set(request.entityTypes)
        let snapshot = db.snapshot()
        guard var start = try entity(team, request.name, snapshot: snapshot) else {
            throw RPCError(.notFound, "entity '\(request.name)' not found in team '\(team)'")
        }
        if !withObservations { start.observations = [] }
        // Bytes of the answer so far; an entity that would pass the limit is left out (truncated).
        var answerBytes = GraphLimits.itemBytes(try GraphLimits.encodedSize(start))
        let maxAnswerBytes = limits.maxAnswerBytes
        var response = Kb_Graph_V1_NeighborsResponse()
        var records: [String: Kb_Graph_V1_Entity] = [start.name: start]
        var order = [start.name]
        var depthByName = [start.name: Int32(0)]
        var edgesSeen = Set<Edge>()
        var edgeOrder: [Edge] = []
        var frontier = [start.name]
        var excluded = Set<String>()
        var relationRecords: [Edge: [UInt8]] = [:]
        for depth in 1...request.depth {
            var next: [String] = []
            for name in frontier {
                for edge in try edges(team: team, name: name, direction: request.direction, types: relationTypes, snapshot: snapshot, records: &relationRecords, stop: &stop) {
                    let other = edge.other(than: name)
                    if depthByName[other] == nil && !excluded.contains(other) {
                        guard order.count < cap else {
                            response.truncated = true
                            continue
                        }
                        try stop.check()
                        guard let bytes = try db.get(GraphKey.entity(team, other), snapshot: snapshot) else { continue }
                        var record = try Self.decodeEntity(bytes)
                        if !entityTypes.isEmpty && !entityTypes.contains(record.entityType) {
                            excluded.insert(other)
                            continue
                        }
                        var size = bytes.count
                        if !withObservations, !record.observations.isEmpty {
                            size = GraphLimits.sizeWithoutObservations(record, storedBytes: size)
                            record.observations = []
                        }
                        guard answerBytes + GraphLimits.itemBytes(size) <= maxAnswerBytes else {
                            response.truncated = true
                            excluded.insert(other)
                            continue
                        }
                        answerBytes += GraphLimits.itemBytes(size)
                        records[other] = record
                        depthByName[other] = depth
                        order.append(other)
                        next.append(other)
                    }
                    if depthByName[other] != nil, edgesSeen.insert(edge).inserted { edgeOrder.append(edge) }
                }
            }
            frontier = next
            if frontier.isEmpty { break }
        }
        response.entities = order.compactMap { records[$0] }
        entityBytes = answerBytes
        response.depthByName = depthByName
        for edge in edgeOrder {
            try stop.check()
            guard let bytes = try relationRecords[edge] ?? db.get(GraphKey.outbound(team, edge.from, edge.type, edge.to), snapshot: snapshot) else { continue }
            answerBytes += GraphLimits.itemBytes(bytes.count)
            if answerBytes > maxAnswerBytes {
                response.truncated = true
                break
            }
            response.relations.append(try Self.decodeRelation(bytes))
        }
        return response
    }

    /// The shortest chain of relations from one entity to another (breadth first from both ends,
    /// expanding the smaller side), up to `max_depth` hops.
    public func shortestPath(_ request: Kb_Graph_V1_ShortestPathRequest, cancellation: WorkCancellation = .never) throws -> Kb_Graph_V1_ShortestPathResponse {
        var stop = cancellation
        try Self.check { () throws(KnowledgeRuleError) in
            try KnowledgeRules.checkTeam(request.team)
            try KnowledgeRules.checkName(request.from, field: "from")
            try KnowledgeRules.checkName(request.to, field: "to")
            guard request.maxDepth >= 0, Int(request.maxDepth) <= Self.maxDepth else { throw KnowledgeRuleError(field: "max_depth", reason: .outOfRange, "must be 0 (default \(Self.maxDepth)) to \(Self.maxDepth) (got \(request.maxDepth))") }
            if case .UNRECOGNIZED(let raw) = request.direction { throw KnowledgeRuleError(field: "direction", reason: .unknownValue, "unknown direction \(raw)") }
        }
        let team = request.team
        let maxDepth = request.maxDepth == 0 ? Self.maxDepth : Int(request.maxDepth)
        let types = Set(request.relationTypes)
        let snapshot = db.snapshot()
        for (field, name) in [("from", request.from), ("to", request.to)] where try db.get(GraphKey.entity(team, name), snapshot: snapshot) == nil {
            throw RPCError(.notFound, field: field, reason: .notFound, "entity '\(name)' not found in team '\(team)'")
        }
        var response = Kb_Graph_V1_ShortestPathResponse()
        if request.from == request.to {
            response.found = true
            response.names = [request.from]
            return response
        }
        let backwardDirection: Kb_Graph_V1_Direction = switch request.direction {
        case .outbound: .inbound
        case .inbound: .outbound
        default: .both
        }
        // parent[name] = (the previous name towards the side's start, the edge between them).
        var forwardParent: [String: (String, Edge)?] = [request.from: nil]
        var backwardParent: [String: (String, Edge)?] = [request.to: nil]
        var forwardFrontier = [request.from], backwardFrontier = [request.to]
        var hops = 0
        var meeting: String?
        var relationRecords: [Edge: [UInt8]] = [:]
        search: while hops < maxDepth, !forwardFrontier.isEmpty, !backwardFrontier.isEmpty {
            hops += 1
            let forward = forwardFrontier.count <= backwardFrontier.count
            var next: [String] = []
            for name in forward ? forwardFrontier : backwardFrontier {
                for edge in try edges(team: team, name: name, direction: forward ? request.direction : backwardDirection, types: types, snapshot: snapshot, records: &relationRecords, stop: &stop) {
                    let other = edge.other(than: name)
                    if forward {
                        guard forwardParent[other] == nil else { continue }
                        forwardParent[other] = (name, edge)
                        if backwardParent[other] != nil { meeting = other; break search }
                    } else {
                        guard backwardParent[other] == nil else { continue }
                        backwardParent[other] = (name, edge)
                        if forwardParent[other] != nil { meeting = other; break search }
                    }
                    next.append(other)
                }
            }
            if forward { forwardFrontier = next } else { backwardFrontier = next }
        }
        guard let meeting else { return response }
        var names = [meeting]
        var edges: [Edge] = []
        var cursor = meeting
        while let step = forwardParent[cursor], let link = step {
            let (previous, edge) = link
            names.insert(previous, at: 0)
            edges.insert(edge, at: 0)
            cursor = previous
        }
        cursor = meeting
        while let step = backwardParent[cursor], let link = step {
            let (next, edge) = link
            names.append(next)
            edges.append(edge)
            cursor = next
        }
        response.found = true
        response.names = names
        for edge in edges {
            if let relation = try relation(team, edge.from, edge.type, edge.to, snapshot: snapshot) { response.relations.append(relation) }
        }
        return response
    }
}
