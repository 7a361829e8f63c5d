import Foundation
import KBKnowledge
import KBLevelDB
import KBProto
import KBRPC

extension GraphStore {
    static let defaultEntityLimit = 50
    static let defaultRelationLimit = 100
    static let maxLimit = 1000
    /// Records up to this size are kept between filtering and paging; larger ones are read
    /// again for the page, so a sorted query holds keys, not every candidate's observations.
    static let heldRecordBytes = 8192

    /// The entity `name` of `team` with its outbound and inbound relations, read on one
    /// snapshot; `GraphStoreError` `.notFound` when it does not exist.
    public func getEntity(team: String, name: String) throws -> EntityWithRelations {
        let snapshot = db.snapshot()
        guard let bytes = try db.get(GraphKey.entity(team, name), snapshot: snapshot) else {
            throw GraphStoreError(.notFound, "entity '\(name)' not found in team '\(team)'")
        }
        var result = EntityWithRelations(entity: try Self.storedEntity(bytes), outbound: [], inbound: [])
        try db.forEach(prefix: GraphKey.adjacencyPrefix(GraphKey.outbound, team, name), snapshot: snapshot) { _, value in
            result.outbound.append(try Self.storedRelation(value))
            return true
        }
        let inboundPrefix = GraphKey.adjacencyPrefix(GraphKey.inbound, team, name)
        try db.forEach(prefix: inboundPrefix, snapshot: snapshot) { key, _ in
            let parts = GraphKey.components(key, after: inboundPrefix)
            if let bytes = try db.get(GraphKey.outbound(team, parts[1], parts[0], name), snapshot: snapshot) {
                result.inbound.append(try Self.storedRelation(bytes))
            }
            return true
        }
        return result
    }

    // MARK: Entities

    /// Entities of one or more teams, filtered, searched, sorted and paged by cursor.
    ///
    /// Candidates come from the narrowest index that applies (text words, entity types, the
    /// modified-time range, or the team's entities); the cursor is the sort key of the last
    /// entity returned, so paging neither repeats nor skips entities while others are written.
    /// A page ends at `limit` entities or at `limits.maxAnswerBytes` of them, whichever comes
    /// first (at least one entity); `next_cursor` then continues it. `cancellation` is checked
    /// through every scan.
    public func queryEntities(_ request: Kb_Graph_V1_QueryEntitiesRequest, cancellation: WorkCancellation = .never) throws -> Kb_Graph_V1_QueryEntitiesResponse {
        var stop = cancellation
        let limit = try Self.limit(request.limit, default: Self.defaultEntityLimit)
        let teams = try Self.teams(request.teams)
        try Self.check { () throws(KnowledgeRuleError) in
            for (index, type) in request.entityTypes.enumerated() { try KnowledgeRules.checkType(type, field: "entity_types[\(index)]") }
            guard request.minConfidence.isFinite, (0...1).contains(request.minConfidence) else {
                throw KnowledgeRuleError(field: "min_confidence", reason: .outOfRange, "must be in [0, 1] (got \(request.minConfidence))")
            }
            guard request.modifiedAfterMs >= 0, request.modifiedBeforeMs >= 0 else { throw KnowledgeRuleError(field: "modified_after_ms", reason: .outOfRange, "must not be negative") }
            if case .UNRECOGNIZED(let raw) = request.sort { throw KnowledgeRuleError(field: "sort", reason: .unknownValue, "unknown sort \(raw)") }
        }
        let queryWords = TextIndex.words(request.text, minimumLength: 1)
        if !request.text.isEmpty && queryWords.isEmpty {
            throw RPCError.invalidArgument(field: "text", reason: .invalidFormat, "must contain a letter or a digit")
        }
        let sort: Kb_Graph_V1_EntitySort = request.sort == .relevance && queryWords.isEmpty ? .name : request.sort
        let cursor = try EntityCursor(request.cursor, sort: sort, descending: request.descending)
        let snapshot = db.snapshot()
        let filter = EntityFilter(request: request)

        // The common paging case, one team by name without text: a range scan from the cursor.
        if teams.count == 1, queryWords.isEmpty, request.entityTypes.isEmpty, sort == .name, !request.descending {
            return try streamByName(team: teams[0], after: cursor?.orderKey, filter: filter, limit: limit, snapshot: snapshot, stop: &stop)
        }

        var candidates: [(team: String, name: String, score: Double)] = []
        for team in teams {
            if !queryWords.isEmpty {
                for (name, score) in try textMatches(team: team, words: queryWords, phrase: queryWords.joined(separator: " "), snapshot: snapshot, stop: &stop) {
                    candidates.append((team, name, score))
                }
            } else if !request.entityTypes.isEmpty {
                for type in Set(request.entityTypes) {
                    let prefix = GraphKey.teamPrefix(GraphKey.entityType, team) + Array(type.utf8) + [0]
                    try db.forEach(prefix: prefix, snapshot: snapshot) { key, _ in
                        try stop.check()
                        candidates.append((team, String(decoding: key.dropFirst(prefix.count), as: UTF8.self), 0))
                        return true
                    }
                }
            } else if request.modifiedAfterMs > 0 || request.modifiedBeforeMs > 0 {
                let prefix = GraphKey.teamPrefix(GraphKey.modified, team)
                let start = prefix + GraphKey.bigEndian(UInt64(request.modifiedAfterMs))
                try db.forEach(prefix: prefix, after: start, snapshot: snapshot) { key, _ in
                    try stop.check()
                    let time = Int64(GraphKey.readBigEndian(key.dropFirst(prefix.count)))
                    if request.modifiedBeforeMs > 0 && time >= request.modifiedBeforeMs { return false }
                    candidates.append((team, String(decoding: key.dropFirst(prefix.count + 8), as: UTF8.self), 0))
                    return true
                }
            } else {
                let prefix = GraphKey.teamPrefix(GraphKey.entity, team)
                try db.forEach(prefix: prefix, snapshot: snapshot) { key, _ in
                    try stop.check()
                    candidates.append((team, String(decoding: key.dropFirst(prefix.count), as: UTF8.self), 0))
                    return true
                }
            }
        }

        // Records are read only when a filter or the sort needs them, else only for the page.
        let needsRecords = filter.needsRecord(textSearch: !queryWords.isEmpty) || ![.name, .relevance].contains(sort)
        var ranked: [(orderKey: [UInt8], team: String, name: String, score: Double, entity: Kb_Graph_V1_Entity?, size: Int)] = []
        ranked.reserveCapacity(candidates.count)
        for candidate in candidates {
            try stop.check()
            var record: Kb_Graph_V1_Entity?
            var size = 0
            if needsRecords {
                guard let bytes = try db.get(GraphKey.entity(candidate.team, candidate.name), snapshot: snapshot) else { continue }
                let entity = try Self.decodeEntity(bytes)
                guard filter.accepts(entity) else { continue }
                record = entity
                size = bytes.count
            }
            let key = EntityCursor.orderKey(sort: sort, team: candidate.team, name: candidate.name, score: candidate.score, entity: record)
            if let cursor, !cursor.isBefore(key) { continue }
            // Large records are read again for the page rather than all held while sorting.
            if size > Self.heldRecordBytes { record = nil }
            ranked.append((key, candidate.team, candidate.name, candidate.score, record, size))
        }
        ranked.sort { request.descending ? $1.orderKey.lexicographicallyPrecedes($0.orderKey) : $0.orderKey.lexicographicallyPrecedes($1.orderKey) }

        var response = Kb_Graph_V1_QueryEntitiesResponse()
        var lastKey: [UInt8]?
        var answerBytes = 0
        for item in ranked {
            try stop.check()
            guard response.entities.count < limit else {
                if let lastKey { response.nextCursor = EntityCursor(sort: sort, descending: request.descending, orderKey: lastKey).encoded }
                break
            }
            var entity = item.entity, size = item.size
            if entity == nil {
                guard let bytes = try db.get(GraphKey.entity(item.team, item.name), snapshot: snapshot) else { continue }
                entity = try Self.decodeEntity(bytes)
                size = bytes.count
            }
            // The page ends where the next entity would pass the answer's byte limit.
            answerBytes += GraphLimits.itemBytes(size) + (queryWords.isEmpty ? 0 : 8)
            if answerBytes > limits.maxAnswerBytes, let lastKey {
                response.nextCursor = EntityCursor(sort: sort, descending: request.descending, orderKey: lastKey).encoded
                break
            }
            response.entities.append(entity!)
            if !queryWords.isEmpty { response.scores.append(item.score) }
            lastKey = item.orderKey
        }
        return response
    }

    private func streamByName(team: String, after: [UInt8]?, filter: EntityFilter, limit: Int, snapshot: Snapshot, stop: inout WorkCancellation) throws -> Kb_Graph_V1_QueryEntitiesResponse {
        let prefix = GraphKey.teamPrefix(GraphKey.entity, team)
        var response = Kb_Graph_V1_QueryEntitiesResponse()
        // The name order key is name · 0 · team; the entity key after the cursor is prefix · name.
        let start = after.map { key in prefix + Array(key.prefix { $0 != 0 }) }
        var answerBytes = 0
        let maxAnswerBytes = limits.maxAnswerBytes
        try db.forEach(prefix: prefix, after: start, snapshot: snapshot) { _, value in
            try stop.check()
            // The record's bytes are its size in the answer: counted before it is decoded.
            let full = response.entities.count == limit
                || (!response.entities.isEmpty && answerBytes + GraphLimits.itemBytes(value.count) > maxAnswerBytes)
            if full {
                guard let last = response.entities.last else { return false }
                // Only an entity the filter accepts continues the page: check it first.
                guard filter.accepts(try Self.decodeEntity(value)) else { return true }
                response.nextCursor = EntityCursor(sort: .name, descending: false, orderKey: EntityCursor.orderKey(sort: .name, team: team, name: last.name, score: 0, entity: last)).encoded
                return false
            }
            let entity = try Self.decodeEntity(value)
            guard filter.accepts(entity) else { return true }
            answerBytes += GraphLimits.itemBytes(value.count)
            response.entities.append(entity)
            return true
        }
        return response
    }

    /// Entities of `team` matching every query word (as a word prefix), with their scores.
    ///
    /// Works on the key bytes (names are made Strings only for the matches): a common word can
    /// hit a large share of a team's entities.
    func textMatches(team: String, words: [String], phrase: String, snapshot: Snapshot, stop: inout WorkCancellation) throws -> [String: Double] {
        var scores: [OverlayKey: Double]?
        let teamPrefix = GraphKey.teamPrefix(GraphKey.text, team)
        // Rarest-looking (longest) words first, so later scans only check membership.
        for word in Set(words).sorted(by: { $0.utf8.count > $1.utf8.count }) {
            var best: [OverlayKey: Double] = [:]
            let wordLength = word.utf8.count
            try db.forEach(prefix: teamPrefix + Array(word.utf8), snapshot: snapshot) { key, value in
                try stop.check()
                guard let separator = key[teamPrefix.count...].firstIndex(of: 0) else { return true }
                let name = OverlayKey(Array(key[(separator + 1)...]))
                if let scores, scores[name] == nil { return true }
                let score = TextIndex.score(exact: separator - teamPrefix.count == wordLength, hits: TextIndex.Hits(bytes: value))
                if score > best[name, default: -1] { best[name] = score }
                return true
            }
            if let previous = scores {
                scores = best.reduce(into: [:]) { result, item in
                    if let earlier = previous[item.key] { result[item.key] = earlier + item.value }
                }
            } else {
                scores = best
            }
            if scores?.isEmpty == true { return [:] }
        }
        var result: [String: Double] = [:]
        for (key, score) in scores ?? [:] {
            let name = String(decoding: key.bytes, as: UTF8.self)
            result[name] = score + TextIndex.nameBonus(name: name, query: phrase)
        }
        return result
    }

    // MARK: Relations

    /// Relations of one or more teams, by entity and direction and by type, paged by cursor; a
    /// page ends at `limit` relations or `limits.maxAnswerBytes` of them.
    public func queryRelations(_ request: Kb_Graph_V1_QueryRelationsRequest, cancellation: WorkCancellation = .never) throws -> Kb_Graph_V1_QueryRelationsResponse {
        var stop = cancellation
        let maxAnswerBytes = limits.maxAnswerBytes
        var answerBytes = 0
        let limit = try Self.limit(request.limit, default: Self.defaultRelationLimit)
        let teams = try Self.teams(request.teams)
        try Self.check { () throws(KnowledgeRuleError) in
            if !request.entity.isEmpty { try KnowledgeRules.checkName(request.entity, field: "entity") }
            for (index, type) in request.relationTypes.enumerated() { try KnowledgeRules.checkType(type, field: "relation_types[\(index)]") }
            if case .UNRECOGNIZED(let raw) = request.direction { throw KnowledgeRuleError(field: "direction", reason: .unknownValue, "unknown direction \(raw)") }
        }
        let after: [UInt8]?
        if request.cursor.isEmpty {
            after = nil
        } else if let decoded = Data(base64URL: request.cursor), decoded.first == GraphKey.outbound {
            after = Array(decoded)
        } else {
            throw RPCError.invalidArgument(field: "cursor", reason: .invalidFormat, "is not a cursor of QueryRelations")
        }
        let types = Set(request.relationTypes)
        let snapshot = db.snapshot()
        var response = Kb_Graph_V1_QueryRelationsResponse()

        if request.entity.isEmpty && types.isEmpty {
            // Every relation of the teams, in key order: a range scan per team from the cursor.
            for team in teams.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                let prefix = GraphKey.teamPrefix(GraphKey.outbound, team)
                var done = false
                try db.forEach(prefix: prefix, after: after, snapshot: snapshot) { key, value in
                    try stop.check()
                    if let after, !after.lexicographicallyPrecedes(key) { return true }
                    answerBytes += GraphLimits.itemBytes(value.count)
                    if response.relations.count == limit || (!response.relations.isEmpty && answerBytes > maxAnswerBytes) {
                        done = true
                        return false
                    }
                    response.relations.append(try Self.decodeRelation(value))
                    return true
                }
                if done, let last = response.relations.last {
                    response.nextCursor = Data(GraphKey.outbound(last.team, last.from, last.relationType, last.to)).base64URLEncoded()
                    break
                }
            }
            return response
        }

        var keys: [[UInt8]] = []
        for team in teams {
            if !request.entity.isEmpty {
                if request.direction != .inbound {
                    let prefix = GraphKey.adjacencyPrefix(GraphKey.outbound, team, request.entity)
                    try db.forEach(prefix: prefix, snapshot: snapshot) { key, _ in
                        try stop.check()
                        let parts = GraphKey.components(key, after: prefix)
                        if types.isEmpty || types.contains(parts[0]) { keys.append(key) }
                        return true
                    }
                }
                if request.direction != .outbound {
                    let prefix = GraphKey.adjacencyPrefix(GraphKey.inbound, team, request.entity)
                    try db.forEach(prefix: prefix, snapshot: snapshot) { key, _ in
                        try stop.check()
                        let parts = GraphKey.components(key, after: prefix)
                        if parts[1] != request.entity || request.direction == .inbound, types.isEmpty || types.contains(parts[0]) {
                            keys.append(GraphKey.outbound(team, parts[1], parts[0], request.entity))
                        }
                        return true
                    }
                }
            } else {
                for type in types {
                    let prefix = GraphKey.teamPrefix(GraphKey.relationType, team) + Array(type.utf8) + [0]
                    try db.forEach(prefix: prefix, snapshot: snapshot) { key, _ in
                        try stop.check()
                        let parts = GraphKey.components(key, after: prefix)
                        keys.append(GraphKey.outbound(team, parts[0], type, parts[1]))
                        return true
                    }
                }
            }
        }
        keys.sort { $0.lexicographicallyPrecedes($1) }
        for key in keys {
            try stop.check()
            if let after, !after.lexicographicallyPrecedes(key) { continue }
            guard let bytes = try db.get(key, snapshot: snapshot) else { continue }
            answerBytes += GraphLimits.itemBytes(bytes.count)
            if response.relations.count == limit || (!response.relations.isEmpty && answerBytes > maxAnswerBytes), let last = response.relations.last {
                response.nextCursor = Data(GraphKey.outbound(last.team, last.from, last.relationType, last.to)).base64URLEncoded()
                break
            }
            response.relations.append(try Self.decodeRelation(bytes))
        }
        return response
    }

    // MARK: Request pieces

    static func limit(_ value: Int32, default defaultValue: Int) throws -> Int {
        guard value >= 0, value <= maxLimit else { throw RPCError.invalidArgument(field: "limit", reason: .outOfRange, "must be 0 (default \(defaultValue)) to \(maxLimit) (got \(value))") }
        return value == 0 ? defaultValue : Int(value)
    }

    static func teams(_ teams: [String]) throws -> [String] {
        guard !teams.isEmpty else { throw RPCError.invalidArgument(field: "teams", reason: .required, "must name at least one team") }
        try check { () throws(KnowledgeRuleError) in
            for (index, team) in teams.enumerated() { try KnowledgeRules.checkTeam(team, field: "teams[\(index)]") }
        }
        // By bytes: `Set<String>` would take two spellings of one name (NFC, NFD) for one.
        var seen = Set<[UInt8]>()
        return teams.filter { seen.insert(Array($0.utf8)).inserted }
    }
}

/// The filters of QueryEntities that look at a record.
struct EntityFilter {
    var types: Set<String>
    var source: Kb_Graph_V1_Source
    var after: Int64
    var before: Int64
    var minConfidence: Double

    init(request: Kb_Graph_V1_QueryEntitiesRequest) {
        types = Set(request.entityTypes)
        source = request.source
        after = request.modifiedAfterMs
        before = request.modifiedBeforeMs
        minConfidence = request.minConfidence
    }

    /// Whether any filter needs the record (types are answered by the type index unless the
    /// candidates came from the text index).
    func needsRecord(textSearch: Bool) -> Bool {
        source != .unspecified || after > 0 || before > 0 || minConfidence > 0 || (textSearch && !types.isEmpty)
    }

    func accepts(_ entity: Kb_Graph_V1_Entity) -> Bool {
        if !types.isEmpty && !types.contains(entity.entityType) { return false }
        if source != .unspecified && entity.source != source { return false }
        if after > 0 && entity.lastModifiedMs < after { return false }
        if before > 0 && entity.lastModifiedMs >= before { return false }
        if entity.confidence < minConfidence { return false }
        return true
    }
}

/// Where a page of QueryEntities ended: the sort, its direction, and the last sort key.
struct EntityCursor {
    var sort: Kb_Graph_V1_EntitySort
    var descending: Bool
    var orderKey: [UInt8]

    init(sort: Kb_Graph_V1_EntitySort, descending: Bool, orderKey: [UInt8]) {
        self.sort = sort
        self.descending = descending
        self.orderKey = orderKey
    }

    /// Decodes a client's cursor; nil for none. A cursor of another sort is INVALID_ARGUMENT.
    init?(_ text: String, sort: Kb_Graph_V1_EntitySort, descending: Bool) throws {
        guard !text.isEmpty else { return nil }
        guard let data = Data(base64URL: text), data.count >= 2 else { throw RPCError.invalidArgument(field: "cursor", reason: .invalidFormat, "is not a cursor of QueryEntities") }
        let bytes = Array(data)
        guard Int(bytes[0]) == sort.rawValue, bytes[1] == (descending ? 1 : 0) else {
            throw RPCError.invalidArgument(field: "cursor", reason: .inconsistent, "belongs to a query with another sort or direction")
        }
        self.init(sort: sort, descending: descending, orderKey: Array(bytes.dropFirst(2)))
    }

    var encoded: String { Data([UInt8(sort.rawValue), descending ? 1 : 0] + orderKey).base64URLEncoded() }

    /// Whether `key` comes after the cursor in the query's order.
    func isBefore(_ key: [UInt8]) -> Bool {
        descending ? key.lexicographicallyPrecedes(orderKey) : orderKey.lexicographicallyPrecedes(key)
    }

    /// The bytes whose order is the sort's order, ending in name and team so that ties are broken
    /// the same way on every page.
    static func orderKey(sort: Kb_Graph_V1_EntitySort, team: String, name: String, score: Double, entity: Kb_Graph_V1_Entity?) -> [UInt8] {
        var key: [UInt8]
        switch sort {
        case .relevance: key = GraphKey.orderedDouble(-score)
        case .created: key = GraphKey.bigEndian(UInt64(max(0, entity?.createdAtMs ?? 0)))
        case .modified: key = GraphKey.bigEndian(UInt64(max(0, entity?.lastModifiedMs ?? 0)))
        case .significance: key = GraphKey.bigEndian(UInt64(max(0, entity?.significance ?? 0)))
        case .confidence: key = GraphKey.orderedDouble(entity?.confidence ?? 0)
        case .name, .UNRECOGNIZED: key = []
        }
        key += name.utf8
        key.append(0)
        key += team.utf8
        return key
    }
}

extension Data {
    /// Base64 with the URL alphabet and no padding: cursors travel in URLs (VKB) unchanged.
    func base64URLEncoded() -> String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    init?(base64URL text: String) {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        self.init(base64Encoded: base64)
    }
}
