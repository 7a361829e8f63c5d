import Foundation
import GRDB
import KBSQLite
import Logging
import Metrics
import Synchronization

/// The completion cache: an answer for an exact repeat of a deterministic request (temperature
/// 0) is served without calling a provider. An LRU in memory over SQLite
/// (`<data>/inference/cache.db`), so it survives restarts; entries expire after `ttl`; at most
/// `capacity` entries are kept (in memory the least recently used go first; on disk the oldest).
///
/// A cache file that cannot be opened leaves the cache in memory only, and says so in `/health`
/// (`cache` component) — it never stops the gateway, and the file is left as it is.
public final class ResponseCache: Sendable {
    /// A cached answer.
    public struct Entry: Sendable, Equatable {
        public var provider: String
        public var result: ChatResult
        public var createdMs: Int64
    }

    public let capacity: Int
    public let ttlMs: Int64
    let database: DatabasePool?
    /// Why the file is not used (nil: it is).
    public let fileProblem: String?
    let logger: Logger
    private let memory = Mutex(Memory())
    private let counters = Counters()

    /// Hit and miss counters, made once (not per lookup).
    struct Counters: Sendable {
        let completionHits = Counter(label: "knowledge_cache_hits_total", dimensions: [("cache_type", "completion")])
        let completionMisses = Counter(label: "knowledge_cache_misses_total", dimensions: [("cache_type", "completion")])
        let embeddingHits = Counter(label: "knowledge_cache_hits_total", dimensions: [("cache_type", "embedding")])
        let embeddingMisses = Counter(label: "knowledge_cache_misses_total", dimensions: [("cache_type", "embedding")])
    }
    private let clock: @Sendable () -> Int64

    struct Memory {
        var entries: [String: (entry: Entry, used: UInt64)] = [:]
        var vectors: [String: (vector: [Float], used: UInt64)] = [:]
        var embeddingHits: Int64 = 0
        var embeddingMisses: Int64 = 0
        var embeddingEvictions: Int64 = 0
        var tick: UInt64 = 0
        var hits: Int64 = 0
        var misses: Int64 = 0
        var evictions: Int64 = 0
        /// Bumped by each clear: a file write started before it (detached) is dropped, so a
        /// cleared cache is not refilled by answers that were in flight.
        var completionGeneration: UInt64 = 0
        var embeddingGeneration: UInt64 = 0
    }

    /// Opens the cache at `path` (nil: memory only).
    public init(path: String?, capacity: Int, ttl: Duration, logger: Logger, clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.capacity = max(1, capacity)
        ttlMs = Int64(ttl.components.seconds) * 1000
        self.logger = logger
        self.clock = clock
        var database: DatabasePool?
        var problem: String?
        if let path {
            do {
                let pool = try SQLiteDatabase.open(path: path)
                try pool.write { db in
                    try db.execute(sql: """
                        CREATE TABLE IF NOT EXISTS completion_cache (
                            key TEXT PRIMARY KEY, provider TEXT NOT NULL, model TEXT NOT NULL, content TEXT NOT NULL,
                            finish_reason TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
                            created_ms INTEGER NOT NULL, used_ms INTEGER NOT NULL,
                            usage_estimated INTEGER NOT NULL DEFAULT 0)
                        """)
                    // Files from before the column: usage the provider did not report must stay marked as estimated.
                    if try !Row.fetchAll(db, sql: "PRAGMA table_info(completion_cache)").contains(where: { ($0["name"] as String?) == "usage_estimated" }) {
                        try db.execute(sql: "ALTER TABLE completion_cache ADD COLUMN usage_estimated INTEGER NOT NULL DEFAULT 0")
                    }
                    try db.execute(sql: "CREATE INDEX IF NOT EXISTS completion_cache_used ON completion_cache(used_ms)")
                    try db.execute(sql: """
                        CREATE TABLE IF NOT EXISTS embedding_cache (
                            model TEXT NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL, created_ms INTEGER NOT NULL,
                            PRIMARY KEY (model, text))
                        """)
                }
                database = pool
            } catch {
                problem = "\(error)"
                logger.error("the completion cache file cannot be used; caching in memory only", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
        self.database = database
        fileProblem = problem
    }

    /// The cache key of a request to a model: everything that decides the answer. Each part is
    /// length-prefixed, so no two different requests share a key whatever their text holds, and
    /// the key has no NUL (SQLite's text functions stop at one).
    /// `route`: what else picks the answering provider (a pinned provider, a strategy).
    /// `schema`: a structured request's schema (its name and compact text): two schemas share
    /// answers only when they differ in whitespace between tokens.
    public static func key(messages: [ChatMessage], model: String, maxTokens: Int?, temperature: Double?, route: String = "", schema: OutputSchema? = nil) -> String {
        var key = "v2"
        func add(_ part: String) { key += "|\(part.utf8.count):" + part }
        add(model)
        add(route)
        add(String(maxTokens ?? 0))
        add(temperature.map { String($0) } ?? "default")
        if let schema {
            // Keys of free-text requests stay as they were (entries on disk keep serving).
            add("schema")
            add(schema.name)
            add(schema.compactText.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}"))
        }
        for message in messages {
            add(message.role)
            // A NUL would cut the key short where SQLite binds it; U+FFFD stands in for it.
            add(message.content.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}"))
        }
        return key
    }

    /// Whether a request may be answered from (and stored in) the cache: deterministic only.
    public static func cacheable(temperature: Double?) -> Bool { temperature == 0 }

    /// The cached answer for `key`, if any and not expired.
    public func lookup(_ key: String) -> Entry? {
        let now = clock()
        let fromMemory: Entry?? = memory.withLock { memory in
            guard var found = memory.entries[key] else { return nil }
            if now - found.entry.createdMs >= ttlMs {
                memory.entries.removeValue(forKey: key)
                return .some(nil)
            }
            memory.tick += 1
            found.used = memory.tick
            memory.entries[key] = found
            return .some(found.entry)
        }
        var entry: Entry? = fromMemory ?? nil
        if fromMemory == nil, let database {
            entry = try? database.read { db -> Entry? in
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM completion_cache WHERE key = ?", arguments: [key]) else { return nil }
                let created: Int64 = row["created_ms"]
                guard now - created < ttlMs else { return nil }
                return Entry(provider: row["provider"], result: ChatResult(content: row["content"], finishReason: row["finish_reason"], usage: TokenUsage(inputTokens: row["input_tokens"], outputTokens: row["output_tokens"], estimated: row["usage_estimated"]), model: row["model"]), createdMs: created)
            }
            if let entry { remember(key, entry) }
        }
        memory.withLock { memory in
            if entry == nil { memory.misses += 1 } else { memory.hits += 1 }
        }
        (entry == nil ? counters.completionMisses : counters.completionHits).increment()
        return entry
    }

    /// Stores an answer.
    public func store(_ key: String, provider: String, result: ChatResult) {
        let entry = Entry(provider: provider, result: result, createdMs: clock())
        // The generation is read with the insert: a clear between them would otherwise pass the check.
        let generation = remember(key, entry)
        guard let database else { return }
        let capacity = self.capacity, logger = self.logger, expiredBefore = entry.createdMs - ttlMs
        Task.detached { [self] in
            do {
                try await database.write { db in
                    // Checked inside the write: a clear bumps the generation before its DELETE.
                    guard self.memory.withLock({ $0.completionGeneration }) == generation else { return }
                    try db.execute(sql: """
                        INSERT OR REPLACE INTO completion_cache (key, provider, model, content, finish_reason, input_tokens, output_tokens, created_ms, used_ms, usage_estimated)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [key, provider, result.model, result.content, result.finishReason, result.usage?.inputTokens ?? 0, result.usage?.outputTokens ?? 0, entry.createdMs, entry.createdMs, result.usage?.estimated ?? false])
                    try db.execute(sql: "DELETE FROM completion_cache WHERE created_ms <= ?", arguments: [expiredBefore])
                    let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM completion_cache") ?? 0
                    if count > capacity {
                        try db.execute(sql: "DELETE FROM completion_cache WHERE key IN (SELECT key FROM completion_cache ORDER BY used_ms LIMIT ?)", arguments: [count - capacity])
                    }
                }
            } catch {
                logger.warning("could not write the completion cache", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Puts an entry in memory; returns the completion generation it was put in under.
    @discardableResult
    private func remember(_ key: String, _ entry: Entry) -> UInt64 {
        let (evicted, generation): (Int, UInt64) = memory.withLock { memory in
            memory.tick += 1
            memory.entries[key] = (entry, memory.tick)
            guard memory.entries.count > capacity else { return (0, memory.completionGeneration) }
            // Evict the least recently used tenth at once (amortised).
            let drop = max(1, capacity / 10)
            let oldest = memory.entries.sorted { $0.value.used < $1.value.used }.prefix(drop).map(\.key)
            for key in oldest { memory.entries.removeValue(forKey: key) }
            memory.evictions += Int64(oldest.count)
            return (oldest.count, memory.completionGeneration)
        }
        if evicted > 0 { Counter(label: "knowledge_cache_evictions_total", dimensions: [("cache_type", "completion")]).increment(by: evicted) }
        return generation
    }

    /// Entries (on disk when the file is used, else in memory), hits and misses since start.
    public var stats: (entries: Int64, hits: Int64, misses: Int64, evictions: Int64) {
        let (count, hits, misses, evictions) = memory.withLock { (Int64($0.entries.count), $0.hits, $0.misses, $0.evictions) }
        let stored = (try? database?.read { db in try Int64.fetchOne(db, sql: "SELECT count(*) FROM completion_cache") ?? 0 }) ?? nil
        return (stored ?? count, hits, misses, evictions)
    }

    // MARK: Embeddings (text + model → vector; no expiry: a model's vector for a text never changes)

    /// The cached vector of `text` under `model`.
    public func embedding(model: String, text: String) -> [Float]? {
        // SQLite binds text up to its first NUL: such texts are never cached (or looked up).
        guard !text.utf8.contains(0) else { return nil }
        let key = model + "\u{0}" + text
        var vector: [Float]? = memory.withLock { memory in
            guard var found = memory.vectors[key] else { return nil }
            memory.tick += 1
            found.used = memory.tick
            memory.vectors[key] = found
            return found.vector
        }
        if vector == nil, let database {
            vector = try? database.read { db -> [Float]? in
                guard let data = try Data.fetchOne(db, sql: "SELECT vector FROM embedding_cache WHERE model = ? AND text = ?", arguments: [model, text]) else { return nil }
                return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            }
            if let vector { rememberEmbedding(key, vector) }
        }
        memory.withLock { memory in
            if vector == nil { memory.embeddingMisses += 1 } else { memory.embeddingHits += 1 }
        }
        (vector == nil ? counters.embeddingMisses : counters.embeddingHits).increment()
        return vector
    }

    /// Stores vectors of texts under `model`.
    public func storeEmbeddings(model: String, _ items: [(text: String, vector: [Float])]) {
        let items = items.filter { !$0.text.utf8.contains(0) }
        // The generation of the first insert: a clear after it drops the file write.
        var first = memory.withLock { $0.embeddingGeneration }
        for (index, item) in items.enumerated() {
            let current = rememberEmbedding(model + "\u{0}" + item.text, item.vector)
            if index == 0 { first = current }
        }
        let generation = first
        guard let database, !items.isEmpty else { return }
        let capacity = self.capacity, logger = self.logger, now = clock()
        Task.detached { [self] in
            do {
                try await database.write { db in
                    guard self.memory.withLock({ $0.embeddingGeneration }) == generation else { return }
                    for item in items {
                        let data = item.vector.withUnsafeBufferPointer { Data(buffer: $0) }
                        try db.execute(sql: "INSERT OR REPLACE INTO embedding_cache (model, text, vector, created_ms) VALUES (?, ?, ?, ?)", arguments: [model, item.text, data, now])
                    }
                    let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM embedding_cache") ?? 0
                    if count > capacity {
                        try db.execute(sql: "DELETE FROM embedding_cache WHERE rowid IN (SELECT rowid FROM embedding_cache ORDER BY created_ms LIMIT ?)", arguments: [count - capacity])
                    }
                }
            } catch {
                logger.warning("could not write the embedding cache", metadata: ["error": "\(error)"])
            }
        }
    }

    @discardableResult
    private func rememberEmbedding(_ key: String, _ vector: [Float]) -> UInt64 {
        let (evicted, generation): (Int, UInt64) = memory.withLock { memory in
            memory.tick += 1
            memory.vectors[key] = (vector, memory.tick)
            guard memory.vectors.count > capacity else { return (0, memory.embeddingGeneration) }
            let oldest = memory.vectors.sorted { $0.value.used < $1.value.used }.prefix(max(1, capacity / 10)).map(\.key)
            for key in oldest { memory.vectors.removeValue(forKey: key) }
            memory.embeddingEvictions += Int64(oldest.count)
            return (oldest.count, memory.embeddingGeneration)
        }
        if evicted > 0 { Counter(label: "knowledge_cache_evictions_total", dimensions: [("cache_type", "embedding")]).increment(by: evicted) }
        return generation
    }

    /// The embedding cache's entries, hits, misses and evictions since start.
    public var embeddingStats: (entries: Int64, hits: Int64, misses: Int64, evictions: Int64) {
        let (count, hits, misses, evictions) = memory.withLock { (Int64($0.vectors.count), $0.embeddingHits, $0.embeddingMisses, $0.embeddingEvictions) }
        let stored = (try? database?.read { db in try Int64.fetchOne(db, sql: "SELECT count(*) FROM embedding_cache") ?? 0 }) ?? nil
        return (stored ?? count, hits, misses, evictions)
    }

    /// Empties the completion cache (memory and file); returns how many entries went.
    @discardableResult
    public func clearCompletions() throws -> Int64 {
        let inMemory = memory.withLock { memory in
            defer {
                memory.entries = [:]
                memory.completionGeneration += 1
            }
            return Int64(memory.entries.count)
        }
        guard let database else { return inMemory }
        return try database.write { db in
            try db.execute(sql: "DELETE FROM completion_cache")
            return Int64(db.changesCount)
        }
    }

    /// Empties the embedding cache (memory and file); returns how many entries went.
    @discardableResult
    public func clearEmbeddings() throws -> Int64 {
        let inMemory = memory.withLock { memory in
            defer {
                memory.vectors = [:]
                memory.embeddingGeneration += 1
            }
            return Int64(memory.vectors.count)
        }
        guard let database else { return inMemory }
        return try database.write { db in
            try db.execute(sql: "DELETE FROM embedding_cache")
            return Int64(db.changesCount)
        }
    }
}
