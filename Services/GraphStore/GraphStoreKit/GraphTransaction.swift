import KBLevelDB

/// Changes not yet on disk, by key; nil marks a delete.
typealias Overlay = [[UInt8]: [UInt8]?]

/// One write operation's view of the store: the database, under the changes of the operations
/// committed before it in the same group, under its own changes.
///
/// Operations run one at a time on the commit thread, so a read-modify-write (a counter, an
/// upsert's merge) never races another. If the operation throws, its changes are dropped and the
/// rest of the group is unaffected.
final class GraphTransaction {
    let db: LevelDB
    private let group: Overlay
    private(set) var changes: Overlay = [:]
    /// Changes of entity and relation totals, for the metrics once the group is on disk.
    var entityDelta = 0
    var relationDelta = 0
    /// The time of the write, in Unix milliseconds.
    let now: Int64

    init(db: LevelDB, group: Overlay, now: Int64) {
        self.db = db
        self.group = group
        self.now = now
    }

    func get(_ key: [UInt8]) throws -> [UInt8]? {
        if let change = changes[key] { return change }
        if let change = group[key] { return change }
        return try db.get(key)
    }

    func contains(_ key: [UInt8]) throws -> Bool { try get(key) != nil }

    func put(_ key: [UInt8], _ value: [UInt8]) { changes[key] = .some(value) }
    func delete(_ key: [UInt8]) { changes[key] = .some(nil) }

    /// The entries under `prefix` as this transaction sees them, in key order.
    func scan(prefix: [UInt8]) throws -> [(key: [UInt8], value: [UInt8])] {
        var merged: [[UInt8]: [UInt8]] = [:]
        try db.forEach(prefix: prefix) { key, value in
            merged[key] = value
            return true
        }
        for layer in [group, changes] {
            for (key, value) in layer where key.starts(with: prefix) {
                merged[key] = value
            }
        }
        return merged.map { ($0.key, $0.value) }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
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
