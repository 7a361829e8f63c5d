import Foundation
import GRDB
import Logging
import Metrics
import Synchronization

/// The semantic cache (off by default: `KB_INFERENCE_SEMANTIC_CACHE`): a request whose last
/// user message means nearly the same as a cached one (cosine of their local 384-dimensional
/// embeddings at or above `threshold`), with everything else equal — the model, `max_tokens`,
/// the temperature and every earlier message (system prompt included) — is answered with the
/// cached answer.
///
/// Entries are grouped by that "everything else" (the partition): a lookup compares the prompt
/// with the entries of its partition only, by brute force over normalised vectors (a few
/// microseconds per thousand entries). At most `capacity` entries (least recently used go
/// first), each served for `ttl`; kept in the completion cache's SQLite file (table
/// `semantic_cache`), so the cache survives restarts.
public final class SemanticCache: Sendable {
    /// A cached answer and the prompt it answered.
    public struct Hit: Sendable {
        public var provider: String
        public var result: ChatResult
        /// The cached prompt (the last user message).
        public var prompt: String
        public var similarity: Float
    }

    struct Item {
        var rowID: Int64
        var prompt: String
        var vector: [Float]
        var provider: String
        var result: ChatResult
        var createdMs: Int64
        var used: UInt64
    }

    struct Memory {
        var partitions: [String: [Item]] = [:]
        var count = 0
        var nextRowID: Int64 = 1
        var tick: UInt64 = 0
        var hits: Int64 = 0
        var misses: Int64 = 0
        var evictions: Int64 = 0
        /// Bumped by each clear (see ResponseCache's).
        var generation: UInt64 = 0
    }

    public let threshold: Float
    public let capacity: Int
    public let ttlMs: Int64
    let database: DatabasePool?
    let logger: Logger
    private let memory = Mutex(Memory())
    private let clock: @Sendable () -> Int64

    /// `database`: the completion cache's file (nil: memory only). Entries still valid are loaded.
    public init(database: DatabasePool?, threshold: Float, capacity: Int, ttl: Duration, logger: Logger, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.threshold = threshold
        self.capacity = max(1, capacity)
        ttlMs = Int64(ttl.components.seconds) * 1000
        self.logger = logger
        self.clock = clock
        var database = database
        var loaded = Memory()
        if let pool = database {
            do {
                let now = clock()
                let ttlMs = self.ttlMs, capacity = self.capacity
                loaded = try pool.write { db in
                    try db.execute(sql: """
                        CREATE TABLE IF NOT EXISTS semantic_cache (
                            id INTEGER PRIMARY KEY, partition TEXT NOT NULL, prompt TEXT NOT NULL, vector BLOB NOT NULL,
                            provider TEXT NOT NULL, model TEXT NOT NULL, content TEXT NOT NULL, finish_reason TEXT NOT NULL,
                            input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, created_ms INTEGER NOT NULL,
                            usage_estimated INTEGER NOT NULL DEFAULT 0)
                        """)
                    // Tables from before the column (never read as counted: they predate the mark).
                    if try !Row.fetchAll(db, sql: "PRAGMA table_info(semantic_cache)").contains(where: { ($0["name"] as String?) == "usage_estimated" }) {
                        try db.execute(sql: "ALTER TABLE semantic_cache ADD COLUMN usage_estimated INTEGER NOT NULL DEFAULT 0")
                    }
                    try db.execute(sql: "DELETE FROM semantic_cache WHERE created_ms <= ?", arguments: [now - ttlMs])
                    var memory = Memory()
                    let rows = try Row.fetchAll(db, sql: "SELECT * FROM semantic_cache ORDER BY created_ms DESC LIMIT ?", arguments: [capacity])
                    for row in rows {
                        let data: Data = row["vector"]
                        let vector = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                        let item = Item(
                            rowID: row["id"], prompt: row["prompt"], vector: vector, provider: row["provider"],
                            result: ChatResult(content: row["content"], finishReason: row["finish_reason"], usage: TokenUsage(inputTokens: row["input_tokens"], outputTokens: row["output_tokens"], estimated: row["usage_estimated"]), model: row["model"]),
                            createdMs: row["created_ms"], used: 0
                        )
                        memory.partitions[row["partition"] as String, default: []].append(item)
                        memory.count += 1
                    }
                    memory.nextRowID = (try Int64.fetchOne(db, sql: "SELECT max(id) FROM semantic_cache") ?? 0) + 1
                    return memory
                }
            } catch {
                logger.error("the semantic cache's table cannot be used; caching in memory only", metadata: ["error": "\(error)"])
                database = nil
            }
        }
        self.database = database
        memory.withLock { $0 = loaded }
    }

    /// The partition of a request: everything but its last message's meaning must match exactly.
    /// `route`: the pinned provider, the strategy and the project (answers never cross projects).
    /// `schema`: a structured request's schema (answers of two schemas never mix).
    public static func partition(earlierMessages: [ChatMessage], model: String, maxTokens: Int?, temperature: Double?, route: String, schema: OutputSchema? = nil) -> String {
        "semantic|" + ResponseCache.key(messages: earlierMessages, model: model, maxTokens: maxTokens, temperature: temperature, route: route, schema: schema)
    }

    /// The closest cached answer in `partition` at or above the threshold (counts a hit or a
    /// miss). The partition's entries are scored outside the lock (a copy of the array is cheap).
    public func lookup(partition: String, vector: [Float]) -> Hit? {
        let now = clock()
        let items: [Item] = memory.withLock { memory in
            guard let items = memory.partitions[partition] else { return [] }
            guard items.contains(where: { now - $0.createdMs >= ttlMs }) else { return items }
            let live = items.filter { now - $0.createdMs < ttlMs }
            memory.count -= items.count - live.count
            memory.partitions[partition] = live.isEmpty ? nil : live
            return live
        }
        var best: (rowID: Int64, similarity: Float)?
        for item in items where item.vector.count == vector.count {
            let similarity = dot(item.vector, vector)
            if similarity >= threshold, similarity > (best?.similarity ?? -2) { best = (item.rowID, similarity) }
        }
        let hit: Hit? = memory.withLock { memory in
            guard let best, let index = memory.partitions[partition]?.firstIndex(where: { $0.rowID == best.rowID }) else {
                memory.misses += 1
                return nil
            }
            memory.tick += 1
            memory.partitions[partition]![index].used = memory.tick
            memory.hits += 1
            let item = memory.partitions[partition]![index]
            return Hit(provider: item.provider, result: item.result, prompt: item.prompt, similarity: best.similarity)
        }
        Counter(label: hit == nil ? "knowledge_cache_misses_total" : "knowledge_cache_hits_total", dimensions: [("cache_type", "semantic")]).increment()
        return hit
    }

    /// Stores an answer to `prompt` (whose embedding is `vector`) in `partition`.
    public func store(partition: String, prompt: String, vector: [Float], provider: String, result: ChatResult) {
        let now = clock()
        let (rowID, evicted, generation): (Int64, [Int64], UInt64) = memory.withLock { memory in
            memory.tick += 1
            let rowID = memory.nextRowID
            memory.nextRowID += 1
            memory.partitions[partition, default: []].append(Item(rowID: rowID, prompt: prompt, vector: vector, provider: provider, result: result, createdMs: now, used: memory.tick))
            memory.count += 1
            guard memory.count > capacity else { return (rowID, [], memory.generation) }
            // Evict the least recently used tenth at once (amortised).
            let drop = max(1, capacity / 10)
            let oldest = memory.partitions.flatMap { key, items in items.map { (key, $0.rowID, $0.used) } }.sorted { $0.2 < $1.2 }.prefix(drop)
            let gone = Set(oldest.map(\.1))
            for key in Set(oldest.map(\.0)) {
                memory.partitions[key]!.removeAll { gone.contains($0.rowID) }
                if memory.partitions[key]!.isEmpty { memory.partitions[key] = nil }
            }
            memory.count -= gone.count
            memory.evictions += Int64(gone.count)
            return (rowID, Array(gone), memory.generation)
        }
        if !evicted.isEmpty { Counter(label: "knowledge_cache_evictions_total", dimensions: [("cache_type", "semantic")]).increment(by: evicted.count) }
        guard let database else { return }
        let logger = self.logger, expiredBefore = now - ttlMs
        Task.detached { [self] in
            do {
                try await database.write { db in
                    guard self.memory.withLock({ $0.generation }) == generation else { return }
                    let data = vector.withUnsafeBufferPointer { Data(buffer: $0) }
                    try db.execute(sql: """
                        INSERT OR REPLACE INTO semantic_cache (id, partition, prompt, vector, provider, model, content, finish_reason, input_tokens, output_tokens, created_ms, usage_estimated)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [rowID, partition, prompt, data, provider, result.model, result.content, result.finishReason, result.usage?.inputTokens ?? 0, result.usage?.outputTokens ?? 0, now, result.usage?.estimated ?? false])
                    for id in evicted { try db.execute(sql: "DELETE FROM semantic_cache WHERE id = ?", arguments: [id]) }
                    try db.execute(sql: "DELETE FROM semantic_cache WHERE created_ms <= ?", arguments: [expiredBefore])
                }
            } catch {
                logger.warning("could not write the semantic cache", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Entries, hits, misses and evictions since start; expired entries are not counted.
    public var stats: (entries: Int64, hits: Int64, misses: Int64, evictions: Int64) {
        let liveSince = clock() - ttlMs
        return memory.withLock { memory in
            let live = memory.partitions.values.reduce(0) { sum, items in sum + items.count { $0.createdMs > liveSince } }
            return (Int64(live), memory.hits, memory.misses, memory.evictions)
        }
    }

    /// Empties the cache (memory and file); returns how many entries went.
    @discardableResult
    public func clear() throws -> Int64 {
        let count = memory.withLock { memory in
            defer {
                memory.partitions = [:]
                memory.count = 0
                memory.generation += 1
            }
            return Int64(memory.count)
        }
        try database?.write { db in try db.execute(sql: "DELETE FROM semantic_cache") }
        return count
    }
}

/// The dot product of two vectors of equal length (their cosine when both are normalised).
func dot(_ a: [Float], _ b: [Float]) -> Float {
    a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            var sum: Float = 0
            for index in 0..<min(a.count, b.count) { sum += a[index] * b[index] }
            return sum
        }
    }
}
