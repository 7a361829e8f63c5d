import Foundation
import KBKnowledge
import KBLevelDB
import KBProto
import KBRPC
import NIOPosix
import SwiftProtobuf

/// Which teams' changes a `Changes` call lists.
public enum FeedScope: Sendable, Hashable {
    /// Every team's: the caller asked for all teams (the indexer, VKB with no team named).
    case allTeams
    /// These teams' only (names as bytes: two spellings of one name are two teams).
    case teams(Set<[UInt8]>)

    func includes(_ team: String) -> Bool {
        switch self {
        case .allTeams: true
        case .teams(let teams): teams.contains(Array(team.utf8))
        }
    }
}

extension GraphStore {
    /// Changes per answer when the request says 0.
    static let defaultChangeLimit = 1000
    /// Most changes per answer.
    static let maxChangeLimit = 10_000
    /// Longest wait of a long poll.
    static let maxChangeWaitMs: Int32 = 30_000
    /// Most feed entries one answer looks at (of other teams included) before it answers with
    /// what it has, so a follower of a quiet team never makes the store scan the whole feed.
    static let maxChangesScanned = 100_000

    /// The changes after `after`, in order, of the teams in `scope`: at most `limit` of them
    /// and `limits.maxAnswerBytes` of bytes. When there is none yet, waits up to `wait` for a
    /// commit that brings one (a long poll: the waiting task is suspended, no thread is held),
    /// and answers at once when one commits. The wait also ends when the calling task is
    /// cancelled or the store closes; the answer is then what there is (often nothing).
    ///
    /// Throws `RPCError` `OUT_OF_RANGE` (field `after_seq`) when the changes after `after` are
    /// no longer all kept (the window dropped some) or `after` is past the newest change (the
    /// store was restored from an older backup): the message says how to resynchronise.
    public func changes(scope: FeedScope, after: Int64, limit: Int, wait: Duration) async throws -> Kb_Graph_V1_ChangesResponse {
        let until = ContinuousClock.now + wait
        var cursor = after
        while true {
            // Reads are LevelDB calls: off the concurrency threads, on NIO's blocking pool.
            let from = cursor
            let page = try await NIOThreadPool.singleton.runIfActive { try self.readChanges(scope: scope, after: from, limit: limit) }
            if !page.changes.isEmpty || page.nextAfterSeq < page.headSeq { return page }
            let left = until - ContinuousClock.now
            if left <= .zero || Task.isCancelled { return page }
            cursor = page.nextAfterSeq
            await feed.waitForCommit(after: page.headSeq, timeout: left)
            if Task.isCancelled || feed.isClosed {
                return try readChanges(scope: scope, after: cursor, limit: limit)
            }
        }
    }

    /// One page of the feed after `after`, without waiting, read on one snapshot.
    func readChanges(scope: FeedScope, after: Int64, limit: Int) throws -> Kb_Graph_V1_ChangesResponse {
        let snapshot = db.snapshot()
        let head = GraphKey.int64(try db.get(GraphKey.feedHeadKey, snapshot: snapshot))
        let first = try db.get(GraphKey.feedFirstKey, snapshot: snapshot).map { GraphKey.int64($0) } ?? 1
        try Self.checkCursor(after, head: head, first: first, window: feed.window)
        var response = Kb_Graph_V1_ChangesResponse()
        response.headSeq = head
        response.firstSeq = first
        response.nextAfterSeq = head
        var answerBytes = 0, scanned = 0
        try db.forEach(prefix: GraphKey.feedPrefix, after: GraphKey.feed(after), snapshot: snapshot) { _, value in
            let change: Kb_Graph_V1_Change
            do { change = try Kb_Graph_V1_Change(serializedBytes: value) } catch { throw GraphStoreError(.dataLoss, "stored change does not decode: \(error)") }
            scanned += 1
            if scope.includes(change.team) {
                if !response.changes.isEmpty && answerBytes + GraphLimits.itemBytes(value.count) > limits.maxAnswerBytes {
                    response.nextAfterSeq = response.changes.last!.seq
                    return false
                }
                answerBytes += GraphLimits.itemBytes(value.count)
                response.changes.append(change)
            }
            if response.changes.count == limit || scanned == Self.maxChangesScanned {
                response.nextAfterSeq = change.seq
                return false
            }
            return true
        }
        return response
    }

    /// Refuses a cursor the feed cannot continue from, saying how to resynchronise.
    static func checkCursor(_ after: Int64, head: Int64, first: Int64, window: FeedWindow) throws {
        let resynchronise = "resynchronise from a snapshot: note the feed's head (feed_head_seq of GetStats, now \(head)), read every entity and relation (QueryEntities, QueryRelations), then follow Changes from that head (apply what it replays again: upserts are idempotent)"
        if after > head {
            throw RPCError(.outOfRange, field: "after_seq", reason: .outOfRange, "\(after) is past the newest change (\(head)): the store was restored from an older backup or replaced; \(resynchronise)")
        }
        if after + 1 < first {
            throw RPCError(.outOfRange, field: "after_seq", reason: .outOfRange, "the changes after \(after) are no longer kept: the feed holds \(first)…\(head) (window: \(window.maxChanges) changes, \(window.maxAgeMs / 1000) s; KB_GRAPH_FEED_MAX_CHANGES, KB_GRAPH_FEED_MAX_AGE_SECONDS); \(resynchronise)")
        }
    }

    /// The feed's newest sequence number on disk and the oldest it holds.
    public var feedPosition: (head: Int64, first: Int64) { feed.position }

    /// How many long polls of `Changes` wait for a commit now.
    public var feedWaiters: Int { feed.waiting }
}
