import Foundation
import KBLevelDB
import KBProto
import SwiftProtobuf
import KBRuntime
import KBTime

/// Group commit: write operations queue here and one thread applies them in order, as many as
/// are waiting, then writes all their changes in one synced LevelDB batch. Each caller is
/// answered only after that batch is on disk, so an acknowledged write survives `kill -9`, and
/// concurrent writers share one `fsync`.
final class CommitQueue: @unchecked Sendable {
    /// A finished group: how many operations, how many keys, how long the synced write took.
    struct GroupReport: Sendable {
        var operations: Int
        var keys: Int
        var duration: Duration
        var entityDelta: Int
        var relationDelta: Int
    }

    /// One write operation: runs on the commit thread against the group's view of the store.
    private typealias Job = (GraphTransaction) throws -> any Sendable

    private let db: LevelDB
    private let feed: ChangeFeed
    private let clock: @Sendable () -> Int64
    private let onGroup: @Sendable (GroupReport) -> Void
    private var queue: GroupCommitQueue<Job, any Sendable>!

    /// A queue writing to `db` and numbering its changes in `feed`; `clock` gives the time of a
    /// group (Unix milliseconds).
    init(db: LevelDB, feed: ChangeFeed, clock: @escaping @Sendable () -> Int64 = UnixTime.nowMilliseconds, maxOperationsPerGroup: Int = 512,
         onGroup: @escaping @Sendable (GroupReport) -> Void = { _ in }) {
        self.db = db
        self.feed = feed
        self.clock = clock
        self.onGroup = onGroup
        queue = GroupCommitQueue(
            name: "graph-store commit", maxJobsPerGroup: maxOperationsPerGroup,
            closedError: { GraphStoreError(.unavailable, "graph store is shutting down") }
        ) { [unowned self] jobs in self.runGroup(jobs) }
    }

    /// Runs `body` in the next group and returns its result once the group is on disk.
    /// A throw from `body` is returned to this caller alone; nothing of its changes is written.
    /// A caller cancelled before its operation joins a group gets `CancellationError`, and
    /// nothing is written.
    func commit<R: Sendable>(_ body: @escaping @Sendable (GraphTransaction) throws -> R) async throws -> R {
        try await queue.submit { transaction in try body(transaction) } as! R
    }

    /// Finishes what is queued, then stops the thread. Later commits fail with `.unavailable`.
    func close() {
        queue.close()
    }

    deinit {
        queue.close()
    }

    private func runGroup(_ jobs: [Job]) -> [Result<any Sendable, any Error>] {
        let (head, first) = feed.position
        let group = GroupOverlay(nextSeq: head + 1)
        var outcomes: [Result<any Sendable, any Error>] = []
        var entityDelta = 0, relationDelta = 0
        let now = clock()
        for job in jobs {
            let transaction = GraphTransaction(db: db, overlay: group, now: now)
            do {
                outcomes.append(.success(try job(transaction)))
                entityDelta += transaction.entityDelta
                relationDelta += transaction.relationDelta
            } catch {
                transaction.rollBack()
                outcomes.append(.failure(error))
            }
        }
        if !group.entries.isEmpty || group.blind.count > 0 {
            var batch = group.blind
            for (key, value) in group.entries {
                if let value { batch.put(key.bytes, value) } else { batch.delete(key.bytes) }
            }
            let newHead = group.nextSeq - 1
            var newFirst = first
            if newHead > head {
                batch.put(GraphKey.feedHeadKey, GraphKey.int64Value(newHead))
                newFirst = trim(&batch, head: head, newHead: newHead, first: first, now: now)
                if newFirst != first { batch.put(GraphKey.feedFirstKey, GraphKey.int64Value(newFirst)) }
            }
            let start = ContinuousClock.now
            do {
                try db.write(batch, sync: true)
                if newHead > head { feed.committed(head: newHead, first: newFirst) }
                let elapsed = ContinuousClock.now - start
                onGroup(GroupReport(operations: jobs.count, keys: batch.count, duration: elapsed, entityDelta: entityDelta, relationDelta: relationDelta))
            } catch {
                let damaged = (error as? LevelDB.Error)?.code == .damaged
                let failure = GraphStoreError(damaged ? .dataLoss : .internalError, "graph store write failed: \(error)")
                outcomes = outcomes.map { $0.flatMap { _ in .failure(failure) } }
            }
        }
        return outcomes
    }

    /// Adds to `batch` the deletes that bring the feed back into its window once it holds up
    /// to `newHead`: the oldest entries past the count, then those older than the age. Removes
    /// at most twice as many as the group added (1024 at least), so a window made smaller
    /// catches up over a few groups without one slow commit. Returns the new oldest number.
    private func trim(_ batch: inout WriteBatch, head: Int64, newHead: Int64, first: Int64, now: Int64) -> Int64 {
        var first = first
        var budget = max(1024, 2 * (newHead - head))
        while newHead - first + 1 > feed.window.maxChanges, budget > 0 {
            batch.delete(GraphKey.feed(first))
            first += 1
            budget -= 1
        }
        // By age: only entries already on disk can be old (this group's are `now`).
        let cutoff = now - feed.window.maxAgeMs
        while first <= head, budget > 0 {
            guard let bytes = try? db.get(GraphKey.feed(first)), let change = try? Kb_Graph_V1_Change(serializedBytes: bytes), change.timeMs < cutoff else { break }
            batch.delete(GraphKey.feed(first))
            first += 1
            budget -= 1
        }
        return first
    }
}
