import Foundation
import GRDB
@testable import InferenceKit
import KBSQLite
import KBTestSupport
import Logging
import Testing

/// The completion cache keeps whether an answer's usage was counted or estimated.
@Suite("Completion cache: counted or estimated usage")
struct ResponseCacheUsageTests {
    static let messages = [ChatMessage(role: "user", content: "ping")]

    /// A fresh cache on `path`'s file, answering `key` once the detached write has landed (at most 5 s).
    func lookupFromFile(_ path: String, _ key: String) async throws -> ResponseCache.Entry? {
        for _ in 0..<100 {
            if let entry = ResponseCache(path: path, capacity: 10, ttl: .seconds(3600), logger: Logger(label: "test")).lookup(key) { return entry }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    @Test("an estimated usage read back from the file (after a restart) is still marked estimated; a file from before the mark opens and reads as counted")
    func estimatedSurvivesTheFile() async throws {
        let path = temporaryDirectory("kb-cache").appendingPathComponent("cache.db").path
        // A file written before the column existed.
        let old = try SQLiteDatabase.open(path: path)
        try await old.write { db in
            try db.execute(sql: """
                CREATE TABLE completion_cache (
                    key TEXT PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL, content TEXT NOT NULL,
                    finish_reason TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
                    created_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL)
                """)
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            try db.execute(sql: "INSERT INTO completion_cache VALUES ('old', 'local', 'm', 'pong', 'stop', 4, 1, ?, ?)", arguments: [now, now])
        }
        try old.close()

        let reopened = try #require(try await lookupFromFile(path, "old"))
        #expect(reopened.result.usage == TokenUsage(inputTokens: 4, outputTokens: 1, estimated: false))

        let key = ResponseCache.key(messages: Self.messages, model: "local/m", maxTokens: 8, temperature: 0)
        let estimated = TokenUsage(inputTokens: 5, outputTokens: 2, estimated: true)
        let cache = ResponseCache(path: path, capacity: 10, ttl: .seconds(3600), logger: Logger(label: "test"))
        #expect(cache.fileProblem == nil)
        cache.store(key, provider: "local", result: ChatResult(content: "a streamed answer", finishReason: "stop", usage: estimated, model: "m"))
        let fromFile = try #require(try await lookupFromFile(path, key))
        #expect(fromFile.result.usage == estimated, "still marked estimated")
    }

    @Test("a clear is not undone by writes still in flight: answers stored just before it do not come back from the file")
    func clearWinsOverWritesInFlight() async throws {
        let path = temporaryDirectory("kb-cache").appendingPathComponent("cache.db").path
        let cache = ResponseCache(path: path, capacity: 1000, ttl: .seconds(3600), logger: Logger(label: "test"))
        let semantic = SemanticCache(database: cache.database, threshold: 0.9, capacity: 1000, ttl: .seconds(3600), logger: Logger(label: "test"))
        let answer = ChatResult(content: "pong", finishReason: "stop", usage: TokenUsage(inputTokens: 1, outputTokens: 1), model: "m")
        var keys: [String] = []
        for round in 0..<50 {
            // Stored, then cleared before the detached writes have (usually) run.
            let key = ResponseCache.key(messages: [ChatMessage(role: "user", content: "ping \(round)")], model: "local/m", maxTokens: 8, temperature: 0)
            keys.append(key)
            cache.store(key, provider: "local", result: answer)
            cache.storeEmbeddings(model: "m", [("text \(round)", [1, 0])])
            semantic.store(partition: "p", prompt: "ping \(round)", vector: [1, 0], provider: "local", result: answer)
            try cache.clearCompletions()
            try cache.clearEmbeddings()
            try semantic.clear()
        }
        try await Task.sleep(for: .milliseconds(500))  // every detached write has had its turn
        let rows = try #require(try await cache.database?.read { db in
            [try Int.fetchOne(db, sql: "SELECT count(*) FROM completion_cache") ?? -1,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM embedding_cache") ?? -1,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM semantic_cache") ?? -1]
        })
        #expect(rows == [0, 0, 0], "completion, embedding and semantic rows written after their clear")
        let reopened = ResponseCache(path: path, capacity: 1000, ttl: .seconds(3600), logger: Logger(label: "test"))
        #expect(keys.allSatisfy { reopened.lookup($0) == nil })
        #expect(semantic.stats.entries == 0)
    }

    @Test("the semantic cache's entry count leaves out expired entries")
    func semanticCountsLiveEntries() throws {
        final class Clock: @unchecked Sendable { var now: Int64 = 1_000_000 }
        let clock = Clock()
        let semantic = SemanticCache(database: nil, threshold: 0.9, capacity: 100, ttl: .seconds(60), logger: Logger(label: "test"), clock: { clock.now })
        let answer = ChatResult(content: "pong", finishReason: "stop", usage: nil, model: "m")
        semantic.store(partition: "p", prompt: "a", vector: [1, 0], provider: "local", result: answer)
        clock.now += 30_000
        semantic.store(partition: "q", prompt: "b", vector: [0, 1], provider: "local", result: answer)
        #expect(semantic.stats.entries == 2)
        clock.now += 31_000
        #expect(semantic.stats.entries == 1, "the first is past its minute")
        clock.now += 30_000
        #expect(semantic.stats.entries == 0)
    }
}
