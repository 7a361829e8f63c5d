import Foundation
import KBKnowledge
import KBLevelDB
import KBProto
import KBRPC
import KBTime
import Synchronization

extension GraphStore {
    /// The counters of every team (or of `teams`), from the `C` keys alone.
    struct TeamCounters {
        var entities: Int64 = 0
        var relations: Int64 = 0
        var lastActivity: Int64 = 0
        var byType: [String: Int64] = [:]
        var bySource: [String: Int64] = [:]
        var byRelationType: [String: Int64] = [:]
    }

    func counters(teams: [String]? = nil, snapshot: Snapshot? = nil) throws -> [String: TeamCounters] {
        Dictionary(try teamCounters(teams: teams, snapshot: snapshot).map { ($0.team, $0.counters) }) { first, _ in first }
    }

    /// The counters of every team (or of `teams`), one entry per team's bytes: two spellings of
    /// one name (NFC, NFD: equal as Swift Strings) stored apart stay apart.
    func teamCounters(teams: [String]? = nil, snapshot: Snapshot? = nil) throws -> [(team: String, counters: TeamCounters)] {
        var result: [[UInt8]: TeamCounters] = [:]
        var names: [[UInt8]: String] = [:]
        let prefixes = teams.map { $0.map { GraphKey.teamPrefix(GraphKey.counter, $0) } } ?? [[GraphKey.counter]]
        for prefix in prefixes {
            try db.forEach(prefix: prefix, snapshot: snapshot) { key, value in
                guard let name = GraphKey.team(of: key) else { return true }
                let team = Array(name.utf8)
                if names[team] == nil { names[team] = name }
                let rest = Array(key.dropFirst(GraphKey.teamPrefix(GraphKey.counter, name).count))
                let number = GraphKey.int64(value)
                let label = String(decoding: rest.dropFirst(2), as: UTF8.self)
                switch rest.first {
                case UInt8(ascii: "E"): result[team, default: TeamCounters()].entities = number
                case UInt8(ascii: "R"): result[team, default: TeamCounters()].relations = number
                case UInt8(ascii: "A"): result[team, default: TeamCounters()].lastActivity = number
                case UInt8(ascii: "t"): result[team, default: TeamCounters()].byType[label] = number
                case UInt8(ascii: "s"): result[team, default: TeamCounters()].bySource[label] = number
                case UInt8(ascii: "r"): result[team, default: TeamCounters()].byRelationType[label] = number
                default: break
                }
                return true
            }
        }
        return result.map { (names[$0.key]!, $0.value) }
    }

    /// Totals and breakdowns of the given teams (all when none are named).
    public func stats(_ request: Kb_Graph_V1_GetStatsRequest) throws -> Kb_Graph_V1_GetStatsResponse {
        let teams = request.teams.isEmpty ? nil : try Self.teams(request.teams)
        var response = Kb_Graph_V1_GetStatsResponse()
        for (team, counters) in try teamCounters(teams: teams) {
            response.totalEntities += counters.entities
            response.totalRelations += counters.relations
            if counters.entities > 0 { response.entitiesByTeam[team] = counters.entities }
            response.entitiesByType.merge(counters.byType, uniquingKeysWith: +)
            response.entitiesBySource.merge(counters.bySource, uniquingKeysWith: +)
            response.relationsByType.merge(counters.byRelationType, uniquingKeysWith: +)
            response.lastUpdateMs = max(response.lastUpdateMs, counters.lastActivity)
        }
        // The feed at this moment: a follower that reads everything after this answer and then
        // follows from this head misses nothing (docs/ARCHITECTURE.md §6, the change feed).
        (response.feedHeadSeq, response.feedFirstSeq) = feed.position
        return response
    }

    /// Every team holding something, with its counts and last activity, by name.
    public func listTeams() throws -> Kb_Graph_V1_ListTeamsResponse {
        var response = Kb_Graph_V1_ListTeamsResponse()
        for (team, counters) in try teamCounters() where counters.entities > 0 || counters.relations > 0 {
            response.teams.append(.with {
                $0.team = team
                $0.entityCount = counters.entities
                $0.relationCount = counters.relations
                $0.lastActivityMs = counters.lastActivity
            })
        }
        response.teams.sort { Array($0.team.utf8).lexicographicallyPrecedes(Array($1.team.utf8)) }
        return response
    }

    // MARK: Backup

    /// The file a backup folder carries beside its LevelDB files.
    public static let backupManifest = "BACKUP.json"

    /// Copies a consistent snapshot of the whole store into a new LevelDB database in
    /// `directory` (which must not exist) while the store keeps serving, then writes a manifest.
    /// Blocking: call it off the event loops.
    public func backup(to directory: String) throws -> Kb_Graph_V1_BackupResponse {
        guard directory.hasPrefix("/") else { throw RPCError.invalidArgument(field: "directory", reason: .invalidFormat, "must be an absolute path (got '\(directory)')") }
        let url = URL(fileURLWithPath: directory).standardizedFileURL
        guard !FileManager.default.fileExists(atPath: url.path) else { throw RPCError(.alreadyExists, "backup directory \(url.path) already exists") }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.deletingLastPathComponent().path, isDirectory: &isFolder), isFolder.boolValue else {
            throw RPCError(.failedPrecondition, "parent folder of \(url.path) does not exist")
        }
        let snapshot = db.snapshot()
        var response = Kb_Graph_V1_BackupResponse()
        response.directory = url.path
        do {
            var options = LevelDB.Options()
            options.errorIfExists = true
            options.writeBufferSize = 16 << 20
            let target = try LevelDB(path: url.path, options: options)
            var batch = WriteBatch()
            try db.forEach(prefix: [], snapshot: snapshot) { key, value in
                if key.first == GraphKey.entity { response.entities += 1 }
                if key.first == GraphKey.outbound { response.relations += 1 }
                batch.put(key, value)
                if batch.count >= 20_000 {
                    try target.write(batch, sync: false)
                    batch = WriteBatch()
                }
                return true
            }
            try target.write(batch, sync: true)
            target.compact()
        } catch let error as LevelDB.Error {
            try? FileManager.default.removeItem(at: url)
            throw RPCError(.internal, "backup to \(url.path) failed: \(error)")
        }
        let manifest: [String: Any] = [
            "format": "kb-graph-leveldb-1",
            "created_at": SharedMemoryDocument.iso(UnixTime.nowMilliseconds()),
            "entities": response.entities,
            "relations": response.relations,
            "source": path,
        ]
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try Self.writeSynced(data, to: url.appendingPathComponent(Self.backupManifest))
        response.bytes = Self.folderSize(url)
        return response
    }

    static func writeSynced(_ data: Data, to url: URL) throws {
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.write(contentsOf: data)
        try handle.synchronize()
    }

    static func folderSize(_ url: URL) -> Int64 {
        let files = (try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: [.fileSizeKey])) ?? []
        return files.reduce(0) { $0 + Int64((try? $1.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0) }
    }

    // MARK: Verify

    /// Checks every record against every index and counter, on one snapshot: each entity has
    /// its type, time and word entries; each relation has both ends, its inbound and type
    /// entries; each index holds exactly as many entries as the records imply; every counter
    /// equals the records' count. Blocking: call it off the event loops.
    public func verify() throws -> Kb_Graph_V1_VerifyResponse {
        let snapshot = db.snapshot()
        var response = Kb_Graph_V1_VerifyResponse()
        var problems: [String] = []
        var problemCount = 0
        func problem(_ text: String) {
            problemCount += 1
            if problems.count < 100 { problems.append(text) }
        }
        var expected: [String: TeamCounters] = [:]
        var expectedIndex: [UInt8: Int64] = [:]

        try db.forEach(prefix: [GraphKey.entity], snapshot: snapshot) { key, value in
            response.entities += 1
            guard let team = GraphKey.team(of: key) else { problem("entity key without a team"); return true }
            let name = String(decoding: key.dropFirst(GraphKey.teamPrefix(GraphKey.entity, team).count), as: UTF8.self)
            guard let entity = try? Self.storedEntity(value) else { problem("entity \(team):\(name) does not decode"); return true }
            if entity.name != name || entity.team != team { problem("entity \(team):\(name) holds the record of \(entity.team):\(entity.name)") }
            if try db.get(GraphKey.entityType(team, entity.entityType, name), snapshot: snapshot) == nil { problem("entity \(team):\(name) is missing from the type index") }
            if try db.get(GraphKey.modified(team, entity.lastModifiedMs, name), snapshot: snapshot) == nil { problem("entity \(team):\(name) is missing from the time index") }
            if try db.get(GraphKey.significance(team, entity.significance, name), snapshot: snapshot) != GraphKey.significanceValue(entity) { problem("entity \(team):\(name) is missing from the significance index or has a stale entry") }
            let words = TextIndex.entries(of: entity)
            for (word, hits) in words {
                guard let stored = try db.get(GraphKey.text(team, word, name), snapshot: snapshot) else {
                    problem("entity \(team):\(name) is missing word '\(word)' from the text index")
                    continue
                }
                if TextIndex.Hits(bytes: stored) != hits { problem("entity \(team):\(name) has stale counts for word '\(word)'") }
            }
            expectedIndex[GraphKey.entityType, default: 0] += 1
            expectedIndex[GraphKey.modified, default: 0] += 1
            expectedIndex[GraphKey.significance, default: 0] += 1
            expectedIndex[GraphKey.text, default: 0] += Int64(words.count)
            expected[team, default: TeamCounters()].entities += 1
            expected[team, default: TeamCounters()].byType[entity.entityType, default: 0] += 1
            expected[team, default: TeamCounters()].bySource[entity.source.name, default: 0] += 1
            return true
        }

        try db.forEach(prefix: [GraphKey.outbound], snapshot: snapshot) { key, value in
            response.relations += 1
            guard let team = GraphKey.team(of: key) else { problem("relation key without a team"); return true }
            let parts = GraphKey.components(key, after: GraphKey.teamPrefix(GraphKey.outbound, team))
            guard parts.count == 3 else { problem("relation key of \(team) has \(parts.count) parts"); return true }
            let (from, type, to) = (parts[0], parts[1], parts[2])
            let label = "\(team):\(from) -\(type)-> \(team):\(to)"
            guard let relation = try? Self.decodeRelation(value) else { problem("relation \(label) does not decode"); return true }
            if relation.from != from || relation.to != to || relation.relationType != type || relation.team != team { problem("relation \(label) holds another relation's record") }
            if try db.get(GraphKey.entity(team, from), snapshot: snapshot) == nil { problem("relation \(label) starts at a missing entity") }
            if try db.get(GraphKey.entity(team, to), snapshot: snapshot) == nil { problem("relation \(label) ends at a missing entity") }
            if try db.get(GraphKey.inbound(team, to, type, from), snapshot: snapshot) == nil { problem("relation \(label) is missing from the inbound index") }
            if try db.get(GraphKey.relationType(team, type, from, to), snapshot: snapshot) == nil { problem("relation \(label) is missing from the relation-type index") }
            expectedIndex[GraphKey.inbound, default: 0] += 1
            expectedIndex[GraphKey.relationType, default: 0] += 1
            expected[team, default: TeamCounters()].relations += 1
            expected[team, default: TeamCounters()].byRelationType[type, default: 0] += 1
            return true
        }

        // Every record has its entries (above); equal counts mean no entry lacks its record.
        let indexNames: [UInt8: String] = [GraphKey.inbound: "inbound", GraphKey.entityType: "type", GraphKey.relationType: "relation-type", GraphKey.modified: "time", GraphKey.text: "text", GraphKey.significance: "significance"]
        for kind in GraphKey.indexKinds {
            var count: Int64 = 0
            try db.forEach(prefix: [kind], snapshot: snapshot) { _, _ in
                count += 1
                return true
            }
            if count != expectedIndex[kind, default: 0] {
                problem("the \(indexNames[kind]!) index has \(count) entries; the records imply \(expectedIndex[kind, default: 0])")
            }
        }

        // The change feed holds every number from its first to its head, once.
        let feedHead = GraphKey.int64(try db.get(GraphKey.feedHeadKey, snapshot: snapshot))
        var expectedSeq = try db.get(GraphKey.feedFirstKey, snapshot: snapshot).map { GraphKey.int64($0) } ?? 1
        var feedContiguous = true
        try db.forEach(prefix: GraphKey.feedPrefix, snapshot: snapshot) { key, _ in
            let seq = Int64(bitPattern: GraphKey.readBigEndian(key.dropFirst(GraphKey.feedPrefix.count)))
            guard seq == expectedSeq else {
                problem("the change feed has \(seq) where \(expectedSeq) was due")
                feedContiguous = false
                return false
            }
            expectedSeq += 1
            return true
        }
        if feedContiguous && expectedSeq - 1 != feedHead { problem("the change feed ends at \(expectedSeq - 1) but its head says \(feedHead)") }

        let stored = try counters(snapshot: snapshot)
        for team in Set(stored.keys).union(expected.keys).sorted() {
            let have = stored[team] ?? TeamCounters(), want = expected[team] ?? TeamCounters()
            if have.entities != want.entities { problem("team \(team) counts \(have.entities) entities; the records hold \(want.entities)") }
            if have.relations != want.relations { problem("team \(team) counts \(have.relations) relations; the records hold \(want.relations)") }
            if have.byType != want.byType { problem("team \(team) has wrong per-type entity counts") }
            if have.bySource != want.bySource { problem("team \(team) has wrong per-source entity counts") }
            if have.byRelationType != want.byRelationType { problem("team \(team) has wrong per-type relation counts") }
        }
        if problemCount > problems.count { problems.append("… and \(problemCount - problems.count) more problems") }
        response.problems = problems
        response.ok = problemCount == 0
        // Counters or indexes that disagree with the records make the store unhealthy until a
        // later verify passes (the health component reads `damage`).
        verifyFailure.withLock {
            $0 = response.ok ? nil : "verify found \(problemCount) problems (\(problems.prefix(3).joined(separator: "; "))). To recover: \(Self.restoreAdvice)"
        }
        return response
    }

    // MARK: Restore

    /// Empties the change feed of a restored store, keeping its head: a follower that had read
    /// past the backup (its cursor past the head, or its cursor in the feed while the store lost
    /// what came after) gets `OUT_OF_RANGE` and resynchronises; one exactly at the backup's
    /// head has seen exactly this state and goes on.
    func emptyFeedAfterRestore() throws {
        let head = GraphKey.int64(try db.get(GraphKey.feedHeadKey))
        var batch = WriteBatch()
        try db.forEach(prefix: GraphKey.feedPrefix) { key, _ in
            batch.delete(key)
            return true
        }
        batch.put(GraphKey.feedFirstKey, GraphKey.int64Value(head + 1))
        try db.write(batch, sync: true)
    }

    /// What a restore did.
    public struct RestoreReport: Sendable {
        /// Entities and relations in the restored store.
        public var entities: Int64
        public var relations: Int64
        /// Where the store that was replaced was moved, if there was one.
        public var previous: URL?
    }

    /// Replaces the store in `dataDirectory` with the backup in `backup`, offline: the caller
    /// must hold the data directory's lock (so no graph-store is running on it). The backup is
    /// copied and verified first; the current store is kept as `leveldb.pre-restore.<time>`.
    public static func restore(from backup: URL, into dataDirectory: URL) throws -> RestoreReport {
        let files = FileManager.default
        guard files.fileExists(atPath: backup.appendingPathComponent("CURRENT").path) else {
            throw RPCError(.invalidArgument, "\(backup.path) is not a graph-store backup (no LevelDB CURRENT file)")
        }
        let stamp = Int64(Date().timeIntervalSince1970)
        let staging = dataDirectory.appendingPathComponent("\(databaseFolder).restoring-\(stamp)")
        try? files.removeItem(at: staging)
        try files.copyItem(at: backup, to: staging)
        try? files.removeItem(at: staging.appendingPathComponent("LOCK"))
        let report: Kb_Graph_V1_VerifyResponse
        do {
            let store = try GraphStore(databasePath: staging.path)
            try store.emptyFeedAfterRestore()
            report = try store.verify()
            store.close()
        } catch {
            try? files.removeItem(at: staging)
            throw RPCError(.dataLoss, "backup \(backup.path) does not open: \(error)")
        }
        guard report.ok else {
            try? files.removeItem(at: staging)
            throw RPCError(.dataLoss, "backup \(backup.path) fails verification: \(report.problems.joined(separator: "; "))")
        }
        let current = dataDirectory.appendingPathComponent(databaseFolder)
        var previous: URL?
        if files.fileExists(atPath: current.path) {
            let aside = dataDirectory.appendingPathComponent("\(databaseFolder).pre-restore.\(stamp)")
            try files.moveItem(at: current, to: aside)
            previous = aside
        }
        try files.moveItem(at: staging, to: current)
        return RestoreReport(entities: report.entities, relations: report.relations, previous: previous)
    }
}
