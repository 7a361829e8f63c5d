import Foundation
import KBTestSupport
import Testing

@Suite("VKB's change feed route", .serialized)
struct VKBChangesTests {
    @Test("/api/changes: the head without a cursor; a long poll answered by a write through the API; a team's feed; 410 for a cursor past the head; 400 for a bad one", .timeLimit(.minutes(2)))
    func followsTheFeed() async throws {
        let system = try await VKBUnderTest.start()
        try await system.seed()
        let start = try await system.get("/api/changes")
        #expect(start.status == 200, "\(start.body)")
        let head = try #require(start.json["head"] as? Int)
        #expect(head > 0, "the seed's writes are numbered")
        #expect((start.json["changes"] as? [Any])?.isEmpty == true)
        #expect(try await system.get("/api/stats").json["feedHeadSeq"] as? Int == head)

        // 25 s is the longest wait: only the write below answers it within the test's limit.
        let poll = Task { try await system.get("/api/changes?team=coding&after=\(head)&wait=25000") }
        try await waitForStoreWaiters(1, system: system)
        let created = try await system.request("POST", "/api/entities", json: ["team": "coding", "name": "Bulkhead", "entityType": "Pattern"])
        #expect(created.status == 201)
        let answer = try await poll.value
        #expect(answer.status == 200, "\(answer.body)")
        let changes = answer.json["changes"] as? [[String: Any]] ?? []
        #expect(changes.count == 1)
        #expect(changes.first?["kind"] as? String == "entity_upserted" && changes.first?["name"] as? String == "Bulkhead" && changes.first?["team"] as? String == "coding")
        #expect((changes.first?["contentHash"] as? String)?.count == 64)
        #expect(answer.json["next"] as? Int == head + 1)

        let otherTeam = try await system.get("/api/changes?team=elsewhere&after=\(head)")
        #expect((otherTeam.json["changes"] as? [Any])?.isEmpty == true && otherTeam.json["next"] as? Int == head + 1, "another team's feed skips the write")

        let ahead = try await system.get("/api/changes?after=\(head + 100)")
        #expect(ahead.status == 410, "\(ahead.body)")
        #expect((ahead.json["error"] as? [String: Any])?["field"] as? String == "after")
        #expect(try await system.get("/api/changes?after=-1").status == 400)
        #expect(try await system.get("/api/changes?after=0&wait=40000").status == 400)
        await system.stop()
    }

    /// Returns once the graph store's health says `count` long polls wait.
    func waitForStoreWaiters(_ count: Int, system: VKBUnderTest) async throws {
        let store = try #require(system.store)
        while true {
            let health = await httpGet("http://127.0.0.1:\(store.adminPort)/health")
            let component = (health?.json["components"] as? [String: Any])?["store"] as? [String: Any]
            if (component?["feed_waiters"] as? Int ?? 0) >= count { return }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
