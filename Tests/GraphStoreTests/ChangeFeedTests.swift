import Foundation
import KBKnowledge
import KBProto
import KBRPC
import KBTestSupport
import Logging
import Synchronization
import Testing
@testable import GraphStoreKit

/// A store with its own feed window and clock, in a fresh folder, closed when the test ends.
func withFeedStore<R>(window: FeedWindow = FeedWindow(), limits: GraphLimits = GraphLimits(), clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) },
                      _ body: (GraphStore) async throws -> R) async throws -> R {
    let directory = temporaryDirectory("graph-feed")
    let store = try GraphStore(databasePath: directory.appendingPathComponent("leveldb").path, limits: limits, feedWindow: window, clock: clock)
    defer {
        store.close()
        try? FileManager.default.removeItem(at: directory)
    }
    return try await body(store)
}

extension GraphStore {
    /// Every change after `after` of `scope`, without waiting.
    func listChanges(_ scope: FeedScope = .allTeams, after: Int64 = 0, limit: Int = 10_000) async throws -> Kb_Graph_V1_ChangesResponse {
        try await changes(scope: scope, after: after, limit: limit, wait: .zero)
    }

    /// Returns once `count` callers wait for a commit (no timing: the state is asked).
    func waitForWaiters(_ count: Int) async throws {
        while feed.waiting < count { try await Task.sleep(for: .milliseconds(5)) }
    }
}

/// A clock a test moves by hand (Unix milliseconds).
final class TestClock: Sendable {
    private let value: Atomic<Int64>
    init(_ start: Int64) { value = Atomic(start) }
    var now: Int64 {
        get { value.load(ordering: .relaxed) }
        set { value.store(newValue, ordering: .relaxed) }
    }
}

/// The kinds and subjects of `changes`, one short line each.
func described(_ changes: [Kb_Graph_V1_Change]) -> [String] {
    changes.map { change in
        switch change.kind {
        case .entityUpserted: "\(change.team) upsert \(change.name)"
        case .entityDeleted: "\(change.team) delete \(change.name)"
        case .relationAdded: "\(change.team) add \(change.from)-\(change.relationType)->\(change.to)"
        case .relationRemoved: "\(change.team) remove \(change.from)-\(change.relationType)->\(change.to)"
        default: "?"
        }
    }
}

@Suite("Graph store change feed")
struct ChangeFeedTests {
    @Test("every committed write is numbered 1, 2, 3… in commit order: upserts with a content hash, relations added and removed, a delete's relations before the entity")
    func writesAreNumberedInOrder() async throws {
        try await withFeedStore { (store: GraphStore) async throws in
            try await store.put("coding", [entity("Cache", "Pattern", ["use LRU"]), entity("Store", "Component")])
            try await store.relate("coding", [relation("Store", "uses", "Cache")])
            try await store.put("coding", [entity("Cache", "Pattern", ["size 1k"])])
            _ = try await store.deleteEntities(.with { $0.team = "coding"; $0.names = ["Cache"] })
            try await store.put("ops", [entity("Runbook", "Doc")])
            try await store.relate("ops", [relation("Runbook", "self", "Runbook")])
            _ = try await store.deleteRelations(.with { $0.team = "ops"; $0.relations = [relation("Runbook", "self", "Runbook")] })

            let feed = try await store.listChanges()
            #expect(described(feed.changes) == [
                "coding upsert Cache", "coding upsert Store", "coding add Store-uses->Cache", "coding upsert Cache",
                "coding remove Store-uses->Cache", "coding delete Cache", "ops upsert Runbook", "ops add Runbook-self->Runbook", "ops remove Runbook-self->Runbook",
            ])
            #expect(feed.changes.map(\.seq) == Array(1...9))
            #expect(feed.headSeq == 9 && feed.nextAfterSeq == 9 && feed.firstSeq == 1)
            #expect(feed.changes.allSatisfy { $0.timeMs > 0 })
            let hashes = feed.changes.filter { $0.kind == .entityUpserted }.map(\.contentHash)
            #expect(hashes.allSatisfy { $0.count == 64 })
            #expect(hashes[0] != hashes[2], "a new observation changes the content hash")
            #expect(try store.stats(.init()).feedHeadSeq == 9)
        }
    }

    @Test("the content hash covers content, not time: writing the same content again gives the same hash; SHA-256 matches the standard's vectors")
    func contentHashIsStable() async throws {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array(String(repeating: "a", count: 1000).utf8)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        // A clock that moves on every reading: the second write differs from the first only in
        // its time (two writes in one millisecond are one state, and the store records no change).
        let tick = Mutex<Int64>(1_700_000_000_000)
        try await withFeedStore(clock: { tick.withLock { $0 += 1; return $0 } }) { (store: GraphStore) async throws in
            try await store.put("coding", [.with { $0.name = "Cache"; $0.entityType = "Pattern"; $0.metadata = ["a": "1", "b": "2", "c": "3"] }])
            try await store.put("coding", [.with { $0.name = "Cache"; $0.metadata = ["c": "3", "b": "2"] }])
            let feed = try await store.listChanges()
            try #require(feed.changes.count == 2)
            #expect(feed.changes[0].contentHash == feed.changes[1].contentHash)
        }
    }

    @Test("operations that fail inside a commit group take their numbers back: concurrent writes, some refused, leave no gaps")
    func failedOperationsLeaveNoGaps() async throws {
        try await withFeedStore { (store: GraphStore) async throws in
            let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<64 {
                    group.addTask {
                        do {
                            if index % 3 == 0 {
                                try await store.relate("coding", [relation("missing \(index)", "uses", "nowhere")])
                            } else {
                                try await store.put("coding", [entity("E\(index)")])
                            }
                            return true
                        } catch {
                            return false
                        }
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            let feed = try await store.listChanges()
            #expect(feed.changes.count == results.filter { $0 }.count)
            #expect(feed.changes.map(\.seq) == Array(1...Int64(feed.changes.count)))
        }
    }

    @Test("the sequence survives a reopen: the next write continues from the head")
    func sequenceSurvivesReopen() async throws {
        let directory = temporaryDirectory("graph-feed-reopen")
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            // Closed and released before the reopen (LevelDB's lock goes with the last reference).
            let first = try GraphStore(directory: directory)
            try await first.put("coding", [entity("A"), entity("B")])
            first.close()
        }
        let second = try GraphStore(directory: directory)
        defer { second.close() }
        #expect(second.feedPosition.head == 2)
        try await second.put("coding", [entity("C")])
        #expect(try await second.listChanges().changes.map(\.seq) == [1, 2, 3])
    }

    @Test("a long poll waits for a commit and answers with it once it is on disk", .timeLimit(.minutes(1)))
    func longPollWakesOnCommit() async throws {
        try await withFeedStore { (store: GraphStore) async throws in
            try await store.put("coding", [entity("Before")])
            // An hour: only the commit can end this wait within the test's time limit.
            let poll = Task { try await store.changes(scope: .allTeams, after: 1, limit: 100, wait: .seconds(3600)) }
            try await store.waitForWaiters(1)
            try await store.put("coding", [entity("After")])
            let answer = try await poll.value
            #expect(described(answer.changes) == ["coding upsert After"])
            #expect(answer.nextAfterSeq == 2)
            #expect(store.feed.waiting == 0)
        }
    }

    @Test("a long poll of one team goes on waiting through other teams' writes, then answers with its own", .timeLimit(.minutes(1)))
    func longPollOfOneTeamSkipsOthers() async throws {
        try await withFeedStore { (store: GraphStore) async throws in
            let poll = Task { try await store.changes(scope: .teams([Array("coding".utf8)]), after: 0, limit: 100, wait: .seconds(3600)) }
            try await store.waitForWaiters(1)
            try await store.put("ops", [entity("Elsewhere")])
            try await store.waitForWaiters(1)
            try await store.put("coding", [entity("Mine")])
            let answer = try await poll.value
            #expect(described(answer.changes) == ["coding upsert Mine"])
            #expect(answer.nextAfterSeq == 2)
        }
    }

    @Test("cancelling the caller ends its wait; closing the store ends every wait", .timeLimit(.minutes(1)))
    func cancellationEndsTheWait() async throws {
        try await withFeedStore { (store: GraphStore) async throws in
            let poll = Task { try await store.changes(scope: .allTeams, after: 0, limit: 100, wait: .seconds(3600)) }
            try await store.waitForWaiters(1)
            poll.cancel()
            let answer = try await poll.value
            #expect(answer.changes.isEmpty)
            #expect(store.feed.waiting == 0)

            let polls = (0..<3).map { _ in Task { try await store.changes(scope: .allTeams, after: 0, limit: 100, wait: .seconds(3600)) } }
            try await store.waitForWaiters(3)
            store.close()
            for poll in polls { #expect(try await poll.value.changes.isEmpty) }
        }
    }

    @Test("a thousand waiting long polls hold no threads, and one commit answers them all", .timeLimit(.minutes(1)))
    func manyWaitersCostNoThreads() async throws {
        try await withFeedStore { (store: GraphStore) async throws in
            try await store.put("coding", [entity("Warm")])
            let before = Self.threads()
            let polls = (0..<1000).map { _ in Task { try await store.changes(scope: .allTeams, after: 1, limit: 10, wait: .seconds(3600)) } }
            try await store.waitForWaiters(1000)
            let during = Self.threads()
            #expect(during - before < 16, "threads: \(before) before, \(during) with 1000 waiting")
            try await store.put("coding", [entity("Wake")])
            for poll in polls { #expect(try await poll.value.changes.map(\.name) == ["Wake"]) }
        }
    }

    static func threads() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("Threads:") }.flatMap { Int($0.split(separator: "\t").last ?? "") } ?? 0
    }

    @Test("the window by count: older changes are removed with later writes; a cursor before the window is OUT_OF_RANGE saying how to resynchronise")
    func windowByCount() async throws {
        try await withFeedStore(window: FeedWindow(maxChanges: 5, maxAgeMs: 3_600_000)) { (store: GraphStore) async throws in
            for index in 1...12 { try await store.put("coding", [entity("E\(index)")]) }
            #expect(store.feedPosition.head == 12 && store.feedPosition.first == 8)
            let kept = try store.db.scan(prefix: GraphKey.feedPrefix)
            #expect(kept.count == 5, "the removed entries are gone from LevelDB")
            #expect(try await store.listChanges(after: 7).changes.map(\.seq) == [8, 9, 10, 11, 12])
            for stale in [Int64(0), 6] {
                let failure = await code { _ = try await store.listChanges(after: stale) }
                #expect(failure?.0 == .outOfRange)
                #expect(failure?.1.contains("after_seq") == true)
                #expect(failure?.1.contains("resynchronise from a snapshot") == true)
                #expect(failure?.1.contains("now 12") == true, "the message gives the head to follow from")
            }
            let ahead = await code { _ = try await store.listChanges(after: 13) }
            #expect(ahead?.0 == .outOfRange, "a cursor past the head (a restored store) is out of range too")
            let stats = try store.stats(.init())
            #expect(stats.feedHeadSeq == 12 && stats.feedFirstSeq == 8)
        }
    }

    @Test("the window by age: changes older than the age are removed with the next write")
    func windowByAge() async throws {
        let clock = TestClock(1_000_000)
        try await withFeedStore(window: FeedWindow(maxChanges: 1000, maxAgeMs: 60_000), clock: { clock.now }) { (store: GraphStore) async throws in
            try await store.put("coding", [entity("Old1"), entity("Old2")])
            clock.now = 1_030_000
            try await store.put("coding", [entity("Middle")])
            clock.now = 1_080_000
            try await store.put("coding", [entity("New")])
            #expect(store.feedPosition.head == 4 && store.feedPosition.first == 3, "the two changes of 80 s ago are gone, the one of 50 s ago is kept")
            #expect(try await store.listChanges(after: 2).changes.map(\.name) == ["Middle", "New"])
            #expect(await code { _ = try await store.listChanges(after: 1) }?.0 == .outOfRange)
        }
    }

    @Test("team scoping: a team's caller sees only its changes, and its cursor moves past the others; all teams sees everything")
    func teamScoping() async throws {
        try await withFeedStore { (store: GraphStore) async throws in
            try await store.put("coding", [entity("A")])
            try await store.put("ops", [entity("B")])
            try await store.put("coding", [entity("C")])
            try await store.put("ops", [entity("D")])
            let coding = try await store.listChanges(.teams([Array("coding".utf8)]))
            #expect(described(coding.changes) == ["coding upsert A", "coding upsert C"])
            #expect(coding.nextAfterSeq == 4 && coding.headSeq == 4)
            let all = try await store.listChanges()
            #expect(all.changes.map(\.name) == ["A", "B", "C", "D"])
        }
    }

    @Test("answers are bounded by limit and by bytes; next_after_seq continues where the answer stopped")
    func answersAreBounded() async throws {
        try await withFeedStore(limits: GraphLimits(maxAnswerBytes: 300)) { (store: GraphStore) async throws in
            for index in 1...6 { try await store.put("coding", [entity("Entity number \(index)")]) }
            let limited = try await store.listChanges(limit: 2)
            #expect(limited.changes.map(\.seq) == [1, 2] && limited.nextAfterSeq == 2 && limited.headSeq == 6)
            let bounded = try await store.listChanges(after: 2)
            #expect(bounded.changes.count >= 1 && bounded.changes.count < 4, "300 bytes hold fewer than four changes of about 100 bytes")
            #expect(bounded.nextAfterSeq == bounded.changes.last!.seq)
            var seen: [Int64] = []
            var cursor: Int64 = 0
            repeat {
                let page = try await store.listChanges(after: cursor)
                seen += page.changes.map(\.seq)
                cursor = page.nextAfterSeq
            } while cursor < 6
            #expect(seen == Array(1...6))
        }
    }

    @Test("verify checks the feed: a missing entry is a problem")
    func verifyFindsAGap() async throws {
        try await withFeedStore { (store: GraphStore) async throws in
            for index in 1...3 { try await store.put("coding", [entity("E\(index)")]) }
            #expect(try store.verify().ok)
            try store.db.delete(GraphKey.feed(2))
            let report = try store.verify()
            #expect(!report.ok)
            #expect(report.problems.contains { $0.contains("change feed") }, "\(report.problems)")
        }
    }

    @Test("a restore empties the feed and keeps the backup's head: followers past that point get OUT_OF_RANGE, one at it goes on")
    func restoreEmptiesTheFeed() async throws {
        let work = temporaryDirectory("graph-feed-restore")
        defer { try? FileManager.default.removeItem(at: work) }
        let data = work.appendingPathComponent("data")
        do {
            let store = try GraphStore(directory: data)
            for index in 1...3 { try await store.put("coding", [entity("E\(index)")]) }
            _ = try store.backup(to: work.appendingPathComponent("backup").path)
            for index in 4...5 { try await store.put("coding", [entity("E\(index)")]) }
            store.close()
        }
        _ = try GraphStore.restore(from: work.appendingPathComponent("backup"), into: data)
        let restored = try GraphStore(directory: data)
        defer { restored.close() }
        #expect(restored.feedPosition.head == 3 && restored.feedPosition.first == 4)
        for lost in [Int64(5), 2] { #expect(await code { _ = try await restored.listChanges(after: lost) }?.0 == .outOfRange) }
        #expect(try await restored.listChanges(after: 3).changes.isEmpty)
        try await restored.put("coding", [entity("E6")])
        #expect(try await restored.listChanges(after: 3).changes.map(\.seq) == [4])
        #expect(try restored.verify().ok)
    }

    @Test("bad arguments are INVALID_ARGUMENT naming the field")
    func badArguments() async throws {
        try await withFeedStore { (store: GraphStore) async throws in
            let context = RPCContext(method: "kb.graph.v1.GraphStore/Changes", deadline: .now + .seconds(10), logger: Logger(label: "test"))
            func field(_ request: Kb_Graph_V1_ChangesRequest) async -> String? {
                do {
                    _ = try await GraphStoreService.changes(request, in: store, context: context)
                    return nil
                } catch let error as RPCError {
                    return error.code == .invalidArgument ? error.field : "\(error.code)"
                } catch {
                    return "\(error)"
                }
            }
            #expect(await field(.with { _ in }) == "teams", "no team and not all teams")
            #expect(await field(.with { $0.allTeams = true; $0.teams = ["coding"] }) == "teams")
            #expect(await field(.with { $0.teams = ["bad team!"] }) == "teams[0]")
            #expect(await field(.with { $0.allTeams = true; $0.afterSeq = -1 }) == "after_seq")
            #expect(await field(.with { $0.allTeams = true; $0.limit = -1 }) == "limit")
            #expect(await field(.with { $0.allTeams = true; $0.limit = 10_001 }) == "limit")
            #expect(await field(.with { $0.allTeams = true; $0.waitMs = -1 }) == "wait_ms")
            #expect(await field(.with { $0.allTeams = true; $0.waitMs = 30_001 }) == "wait_ms")
            #expect(await field(.with { $0.teams = ["coding"]; $0.waitMs = 10 }) == nil)
        }
    }
}
