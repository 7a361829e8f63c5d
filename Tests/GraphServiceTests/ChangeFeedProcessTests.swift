import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

extension RPCClient {
    /// Every change of every team after `after`, page by page, without waiting.
    func allChanges(after: Int64 = 0) async throws -> [Kb_Graph_V1_Change] {
        var changes: [Kb_Graph_V1_Change] = []
        var cursor = after
        while true {
            let page = try await call(GraphStoreMethods.changes, .with { $0.allTeams = true; $0.afterSeq = cursor; $0.limit = 1000 })
            changes += page.changes
            cursor = page.nextAfterSeq
            if cursor >= page.headSeq { return changes }
        }
    }
}

@Suite("graph-store change feed, as a process", .serialized)
struct ChangeFeedProcessTests {
    @Test("kill -9 during a write load: after restart the feed lists every acknowledged write, in each writer's order, numbered without gaps")
    func killNineKeepsTheFeed() async throws {
        let first = try await GraphStoreUnderTest.start()
        let acknowledged = AcknowledgedWrites()
        let writers = (0..<8).map { writer in
            Task {
                let client = first.client()
                defer { Task { await client.close() } }
                var index = 0
                while true {
                    let name = "w\(writer) n\(index)"
                    do {
                        _ = try await client.call(GraphStoreMethods.putEntities, .with {
                            $0.team = "load\(writer % 2)"
                            $0.entities = [.with { $0.name = name; $0.entityType = "Load" }]
                        })
                        acknowledged.entity(name)
                    } catch {
                        return
                    }
                    index += 1
                }
            }
        }
        try await Task.sleep(for: .milliseconds(1500))
        await first.service.stop(signal: SIGKILL)
        for writer in writers { await writer.value }
        let (entities, _) = acknowledged.snapshot
        #expect(entities.count > 50, "the load ran")

        let second = try await GraphStoreUnderTest.start(dataDirectory: first.service.dataDirectory)
        let client = second.client()
        let changes = try await client.allChanges()
        #expect(changes.map(\.seq) == Array(1...Int64(changes.count)), "numbered 1… without gaps")
        let listed = changes.map(\.name)
        let position = Dictionary(listed.enumerated().map { ($1, $0) }) { first, _ in first }
        for name in entities { #expect(position[name] != nil, "\(name) was acknowledged but is not in the feed") }
        for writer in 0..<8 {
            let mine = listed.filter { $0.hasPrefix("w\(writer) ") }
            #expect(mine == mine.indices.map { "w\(writer) n\($0)" }, "writer \(writer)'s writes in the order they were acknowledged")
        }
        let stats = try await client.call(GraphStoreMethods.getStats, .init())
        #expect(stats.feedHeadSeq == Int64(changes.count))
        #expect(stats.totalEntities == Int64(changes.count), "one change per entity written, none lost, none extra")
        // The sequence goes on from the head.
        _ = try await client.call(GraphStoreMethods.putEntities, .with { $0.team = "load0"; $0.entities = [.with { $0.name = "after restart"; $0.entityType = "Load" }] })
        #expect(try await client.allChanges(after: stats.feedHeadSeq).map(\.seq) == [stats.feedHeadSeq + 1])
        await client.close()
        await second.service.stop()
    }

    @Test("a long poll over the wire answers as soon as another client writes", .timeLimit(.minutes(1)))
    func longPollOverTheWire() async throws {
        let store = try await GraphStoreUnderTest.start()
        let follower = store.client(), writer = store.client()
        let head = try await follower.call(GraphStoreMethods.getStats, .init()).feedHeadSeq
        // 30 s, the longest wait; the test's time limit leaves no room for two.
        let poll = Task {
            try await follower.call(GraphStoreMethods.changes, .with { $0.teams = ["coding"]; $0.afterSeq = head; $0.waitMs = 30_000 }, options: CallOptions(timeout: .seconds(40)))
        }
        try await Self.waitForWaiters(1, store: store)
        _ = try await writer.call(GraphStoreMethods.putEntities, .with { $0.team = "coding"; $0.entities = [.with { $0.name = "Fresh"; $0.entityType = "Note" }] })
        let answer = try await poll.value
        #expect(answer.changes.map(\.name) == ["Fresh"])
        #expect(answer.changes.first?.kind == .entityUpserted)
        let stale = try? await follower.call(GraphStoreMethods.changes, .with { $0.allTeams = true; $0.afterSeq = 999 })
        #expect(stale == nil, "a cursor past the head is refused")
        await follower.close()
        await writer.close()
        await store.service.stop()
    }

    @Test("SIGTERM answers waiting long polls at once (no wait for the grace period) and the store exits 0", .timeLimit(.minutes(1)))
    func shutdownEndsLongPolls() async throws {
        let store = try await GraphStoreUnderTest.start()
        let follower = store.client()
        _ = try await follower.call(GraphStoreMethods.getStats, .init())
        let polls = (0..<4).map { _ in
            Task { try await follower.call(GraphStoreMethods.changes, .with { $0.allTeams = true; $0.waitMs = 30_000 }, options: CallOptions(timeout: .seconds(40))) }
        }
        try await Self.waitForWaiters(4, store: store)
        let status = await store.service.stop(signal: SIGTERM)
        #expect(status == 0)
        for poll in polls {
            let answer = try await poll.value
            #expect(answer.changes.isEmpty && answer.headSeq == 0, "answered OK with nothing, not cut off")
        }
        #expect(!store.service.log.contains("shutdown grace period over"), "no long poll held the shutdown up")
        await follower.close()
    }

    /// Returns once the store's health says `count` long polls wait (the state, not a delay).
    static func waitForWaiters(_ count: Int, store: GraphStoreUnderTest) async throws {
        while true {
            let health = await httpGet("http://127.0.0.1:\(store.service.adminPort)/health")
            let storeHealth = (health?.json["components"] as? [String: Any])?["store"] as? [String: Any]
            if (storeHealth?["feed_waiters"] as? Int ?? 0) >= count { return }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
