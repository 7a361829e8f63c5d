import Foundation
import GRDB
import InferenceKit
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
}
