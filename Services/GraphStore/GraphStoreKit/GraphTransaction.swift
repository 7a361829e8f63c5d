import KBLevelDB
import KBProto
import SwiftProtobuf

/// A key of the commit overlay, hashed as one block of bytes (an array of bytes hashes byte by
/// byte, which dominated the commit thread's time in the import benchmark).
struct OverlayKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

/// The changes of one commit group not yet on disk.
///
/// `entries` holds the keys an operation may read back (records, inbound adjacency, counters),
/// by key, nil marking a delete. `blind` holds, in order, changes to keys nothing reads while
/// writing (the type, relation-type, time and text indexes): they skip the dictionary.
final class GroupOverlay {
    var entries: [OverlayKey: [UInt8]?] = [:]
    var blind = WriteBatch()
    /// The sequence number the next change of the group gets (the feed's head + 1 at the start).
    var nextSeq: Int64

    init(nextSeq: Int64) {
        self.nextSeq = nextSeq
    }
}

/// One write operation's view of the store: the database under the changes of its commit
/// group so far (its own included).
///
/// Operations run one at a time on the commit thread, so a read-modify-write (a counter, an
/// upsert's merge) never races another. The operation writes into the group's overlay and keeps
/// an undo log: if it throws, `rollBack()` restores the overlay and the rest of the group is
/// unaffected.
final class GraphTransaction {
    let db: LevelDB
    private let overlay: GroupOverlay
    private var undo: [(key: OverlayKey, previous: [UInt8]??)] = []
    /// Changes of entity and relation totals, for the metrics once the group is on disk.
    var entityDelta = 0
    var relationDelta = 0
    /// The time of the write, in Unix milliseconds.
    let now: Int64

    /// The group's next sequence number when this operation started (restored by `rollBack`).
    private let firstSeq: Int64

    init(db: LevelDB, overlay: GroupOverlay, now: Int64) {
        self.db = db
        self.overlay = overlay
        self.now = now
        firstSeq = overlay.nextSeq
    }

    /// Appends `change` to the change feed with the next sequence number and this write's time:
    /// a blind entry of the group's batch, so it is on disk exactly when the write is.
    func record(_ change: Kb_Graph_V1_Change) throws {
        var change = change
        change.seq = overlay.nextSeq
        change.timeMs = now
        let bytes: [UInt8] = try change.serializedBytes()
        putBlind(GraphKey.feed(change.seq), bytes)
        overlay.nextSeq += 1
    }

    /// Records that an entity was created or changed, with its content hash.
    func recordUpsert(team: String, name: String, contentHash: String) throws {
        try record(.with {
            $0.team = team
            $0.kind = .entityUpserted
            $0.name = name
            $0.contentHash = contentHash
        })
    }

    /// Records that an entity was deleted.
    func recordDeletion(team: String, name: String) throws {
        try record(.with {
            $0.team = team
            $0.kind = .entityDeleted
            $0.name = name
        })
    }

    /// Records that a relation was added (`added`) or removed.
    func recordRelation(team: String, _ id: RelationID, added: Bool) throws {
        try record(.with {
            $0.team = team
            $0.kind = added ? .relationAdded : .relationRemoved
            $0.from = id.from
            $0.relationType = id.relationType
            $0.to = id.to
        })
    }

    func get(_ key: [UInt8]) throws -> [UInt8]? {
        if let change = overlay.entries[OverlayKey(key)] { return change }
        return try db.get(key)
    }

    func contains(_ key: [UInt8]) throws -> Bool { try get(key) != nil }

    func put(_ key: [UInt8], _ value: [UInt8]) { set(OverlayKey(key), value) }
    func delete(_ key: [UInt8]) { set(OverlayKey(key), nil) }

    /// Writes a key that no operation reads back while writing (an index entry).
    func putBlind(_ key: [UInt8], _ value: [UInt8]) {
        markBlind()
        overlay.blind.put(key, value)
    }

    /// Deletes a key that no operation reads back while writing.
    func deleteBlind(_ key: [UInt8]) {
        markBlind()
        overlay.blind.delete(key)
    }

    private var blindStart: Int?
    private func markBlind() {
        if blindStart == nil { blindStart = overlay.blind.count }
    }

    private func set(_ key: OverlayKey, _ value: [UInt8]?) {
        undo.append((key, overlay.entries[key]))
        overlay.entries[key] = .some(value)
    }

    /// Takes this operation's changes back out of the group.
    func rollBack() {
        for (key, previous) in undo.reversed() {
            if let previous { overlay.entries[key] = .some(previous) } else { overlay.entries.removeValue(forKey: key) }
        }
        undo = []
        if let blindStart { overlay.blind.truncate(to: blindStart) }
        blindStart = nil
        overlay.nextSeq = firstSeq
    }

    /// The entries under `prefix` as this transaction sees them, in key order.
    func scan(prefix: [UInt8]) throws -> [(key: [UInt8], value: [UInt8])] {
        var merged: [OverlayKey: [UInt8]] = [:]
        try db.forEach(prefix: prefix) { key, value in
            merged[OverlayKey(key)] = value
            return true
        }
        for (key, value) in overlay.entries where key.bytes.starts(with: prefix) {
            merged[key] = value
        }
        return merged.map { ($0.key.bytes, $0.value) }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
    }

    /// Adds `delta` to a team counter; a counter that reaches 0 is removed.
    func add(_ delta: Int64, to counter: String, team: String) throws {
        guard delta != 0 else { return }
        let key = GraphKey.counter(team, counter)
        let value = GraphKey.int64(try get(key)) + delta
        if value == 0 { delete(key) } else { put(key, GraphKey.int64Value(value)) }
    }

    /// Records that `team` changed now.
    func touch(team: String, at milliseconds: Int64) throws {
        let key = GraphKey.counter(team, GraphKey.activityCounter)
        if GraphKey.int64(try get(key)) < milliseconds { put(key, GraphKey.int64Value(milliseconds)) }
    }
}
