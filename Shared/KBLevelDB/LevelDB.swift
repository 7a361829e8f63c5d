import CLevelDB
import Foundation

/// A LevelDB database: the one wrapper of LevelDB's C API in the project.
///
/// Thread-safe (LevelDB's handle is), so one instance serves every task of a process. Keys and
/// values are bytes and iterate in byte order, so a key layout of prefixes turns each query into
/// a range scan.
public final class LevelDB: @unchecked Sendable {
    /// A LevelDB failure, with LevelDB's own message.
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        /// What was being done.
        public let operation: String
        /// LevelDB's message.
        public let message: String
        public var description: String { "leveldb \(operation): \(message)" }
    }

    /// How to open a database.
    public struct Options: Sendable {
        /// Create the database when the folder holds none.
        public var createIfMissing = true
        /// Refuse to open an existing database.
        public var errorIfExists = false
        /// Check everything read aggressively and stop at the first corruption.
        public var paranoidChecks = false
        /// Bytes buffered in memory before a table file is written (LevelDB's default is 4 MiB).
        public var writeBufferSize = 4 << 20
        /// Bytes of a table file before LevelDB starts another (its default is 2 MiB; larger files
        /// mean fewer compactions for stores of many small keys).
        public var maxFileSize = 2 << 20
        /// Bytes of the block cache (0: LevelDB's 8 MiB default).
        public var blockCacheSize = 32 << 20
        /// Bits per key of a bloom filter (0: none).
        public var bloomFilterBitsPerKey = 10
        /// Compress blocks with Snappy.
        public var compression = true

        /// The defaults.
        public init() {}
    }

    /// The folder of the database.
    public let path: String
    private let db: OpaquePointer
    private let options: OpaquePointer
    private let cache: OpaquePointer?
    private let filter: OpaquePointer?
    private let readOptions: OpaquePointer
    private let syncWrite: OpaquePointer
    private let asyncWrite: OpaquePointer

    /// Opens (or creates) the database in `path`. Fails if another process has it open.
    public init(path: String, options settings: Options = Options()) throws {
        let options = leveldb_options_create()!
        leveldb_options_set_create_if_missing(options, settings.createIfMissing ? 1 : 0)
        leveldb_options_set_error_if_exists(options, settings.errorIfExists ? 1 : 0)
        leveldb_options_set_paranoid_checks(options, settings.paranoidChecks ? 1 : 0)
        leveldb_options_set_write_buffer_size(options, settings.writeBufferSize)
        leveldb_options_set_max_file_size(options, settings.maxFileSize)
        leveldb_options_set_compression(options, settings.compression ? Int32(leveldb_snappy_compression) : Int32(leveldb_no_compression))
        let cache = settings.blockCacheSize > 0 ? leveldb_cache_create_lru(settings.blockCacheSize) : nil
        if let cache { leveldb_options_set_cache(options, cache) }
        let filter = settings.bloomFilterBitsPerKey > 0 ? leveldb_filterpolicy_create_bloom(Int32(settings.bloomFilterBitsPerKey)) : nil
        if let filter { leveldb_options_set_filter_policy(options, filter) }

        var error: UnsafeMutablePointer<CChar>?
        let db = leveldb_open(options, path, &error)
        if let failure = Self.take(error) {
            leveldb_options_destroy(options)
            if let cache { leveldb_cache_destroy(cache) }
            if let filter { leveldb_filterpolicy_destroy(filter) }
            throw Error(operation: "open \(path)", message: failure)
        }
        self.path = path
        self.db = db!
        self.options = options
        self.cache = cache
        self.filter = filter
        readOptions = leveldb_readoptions_create()
        syncWrite = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(syncWrite, 1)
        asyncWrite = leveldb_writeoptions_create()
    }

    deinit {
        leveldb_close(db)
        leveldb_readoptions_destroy(readOptions)
        leveldb_writeoptions_destroy(syncWrite)
        leveldb_writeoptions_destroy(asyncWrite)
        leveldb_options_destroy(options)
        if let cache { leveldb_cache_destroy(cache) }
        if let filter { leveldb_filterpolicy_destroy(filter) }
    }

    // MARK: Reads and writes

    /// The value of `key`, or nil; reads `snapshot` when given.
    public func get(_ key: [UInt8], snapshot: Snapshot? = nil) throws -> [UInt8]? {
        var length = 0
        var error: UnsafeMutablePointer<CChar>?
        let value = withReadOptions(snapshot) { options in
            key.withUnsafeBufferPointer { k in
                leveldb_get(db, options, k.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, k.count, &length, &error)
            }
        }
        if let failure = Self.take(error) { throw Error(operation: "get", message: failure) }
        guard let value else { return nil }
        defer { leveldb_free(value) }
        return Array(UnsafeRawBufferPointer(start: value, count: length))
    }

    /// Writes `key`; with `sync` the call returns only once the write is on disk.
    public func put(_ key: [UInt8], _ value: [UInt8], sync: Bool = true) throws {
        var batch = WriteBatch()
        batch.put(key, value)
        try write(batch, sync: sync)
    }

    /// Deletes `key` (absent keys are fine).
    public func delete(_ key: [UInt8], sync: Bool = true) throws {
        var batch = WriteBatch()
        batch.delete(key)
        try write(batch, sync: sync)
    }

    /// Applies every change of `batch` atomically; with `sync` it is on disk when this returns,
    /// so it survives `kill -9` and power loss.
    public func write(_ batch: WriteBatch, sync: Bool = true) throws {
        let handle = leveldb_writebatch_create()!
        defer { leveldb_writebatch_destroy(handle) }
        for operation in batch.operations {
            switch operation {
            case .put(let key, let value):
                key.withUnsafeBytes { k in
                    value.withUnsafeBytes { v in
                        leveldb_writebatch_put(handle, k.baseAddress?.assumingMemoryBound(to: CChar.self), k.count, v.baseAddress?.assumingMemoryBound(to: CChar.self), v.count)
                    }
                }
            case .delete(let key):
                key.withUnsafeBytes { k in
                    leveldb_writebatch_delete(handle, k.baseAddress?.assumingMemoryBound(to: CChar.self), k.count)
                }
            }
        }
        var error: UnsafeMutablePointer<CChar>?
        leveldb_write(db, sync ? syncWrite : asyncWrite, handle, &error)
        if let failure = Self.take(error) { throw Error(operation: "write", message: failure) }
    }

    // MARK: Scans

    /// The entries whose keys start with `prefix`, in key order, from `snapshot` when given.
    /// `after` skips keys up to and including it (for paging); `limit` caps the count.
    public func scan(prefix: [UInt8], after: [UInt8]? = nil, limit: Int = .max, snapshot: Snapshot? = nil) throws -> [(key: [UInt8], value: [UInt8])] {
        var results: [(key: [UInt8], value: [UInt8])] = []
        try forEach(prefix: prefix, after: after, snapshot: snapshot) { key, value in
            results.append((key, value))
            return results.count < limit
        }
        return results
    }

    /// Calls `body` with each entry whose key starts with `prefix`, in key order, until it
    /// returns false. The bytes are copies the body may keep.
    public func forEach(prefix: [UInt8], after: [UInt8]? = nil, snapshot: Snapshot? = nil, _ body: ([UInt8], [UInt8]) throws -> Bool) throws {
        let iterator = withReadOptions(snapshot) { leveldb_create_iterator(db, $0)! }
        defer { leveldb_iter_destroy(iterator) }
        let start = after.map { $0.lexicographicallyPrecedes(prefix) ? prefix : $0 } ?? prefix
        start.withUnsafeBytes { leveldb_iter_seek(iterator, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        while leveldb_iter_valid(iterator) != 0 {
            var keyLength = 0, valueLength = 0
            let keyPointer = leveldb_iter_key(iterator, &keyLength)!
            let key = Array(UnsafeRawBufferPointer(start: keyPointer, count: keyLength))
            guard key.starts(with: prefix) else { break }
            if let after, key == after {
                leveldb_iter_next(iterator)
                continue
            }
            let valuePointer = leveldb_iter_value(iterator, &valueLength)!
            let value = Array(UnsafeRawBufferPointer(start: valuePointer, count: valueLength))
            guard try body(key, value) else { break }
            leveldb_iter_next(iterator)
        }
        var error: UnsafeMutablePointer<CChar>?
        leveldb_iter_get_error(iterator, &error)
        if let failure = Self.take(error) { throw Error(operation: "scan", message: failure) }
    }

    // MARK: Snapshots and maintenance

    /// A consistent view of the database as of now; reads through it ignore later writes.
    public func snapshot() -> Snapshot {
        Snapshot(db: db, handle: leveldb_create_snapshot(db)!)
    }

    /// A LevelDB property such as `leveldb.stats` or `leveldb.approximate-memory-usage`.
    public func property(_ name: String) -> String? {
        guard let value = leveldb_property_value(db, name) else { return nil }
        defer { leveldb_free(value) }
        return String(cString: value)
    }

    /// Compacts the whole key range.
    public func compact() {
        leveldb_compact_range(db, nil, 0, nil, 0)
    }

    /// Deletes the database in `path` (it must not be open).
    public static func destroy(path: String) throws {
        let options = leveldb_options_create()
        defer { leveldb_options_destroy(options) }
        var error: UnsafeMutablePointer<CChar>?
        leveldb_destroy_db(options, path, &error)
        if let failure = take(error) { throw Error(operation: "destroy \(path)", message: failure) }
    }

    private func withReadOptions<R>(_ snapshot: Snapshot?, _ body: (OpaquePointer) -> R) -> R {
        guard let snapshot else { return body(readOptions) }
        let options = leveldb_readoptions_create()!
        defer { leveldb_readoptions_destroy(options) }
        leveldb_readoptions_set_snapshot(options, snapshot.handle)
        return body(options)
    }

    private static func take(_ error: UnsafeMutablePointer<CChar>?) -> String? {
        guard let error else { return nil }
        defer { leveldb_free(error) }
        return String(cString: error)
    }
}

/// A set of puts and deletes applied atomically by `LevelDB.write`.
public struct WriteBatch: Sendable {
    enum Operation: Sendable {
        case put([UInt8], [UInt8])
        case delete([UInt8])
    }

    private(set) var operations: [Operation] = []

    /// An empty batch.
    public init() {}

    /// Sets `key` to `value`.
    public mutating func put(_ key: [UInt8], _ value: [UInt8]) { operations.append(.put(key, value)) }
    /// Removes `key`.
    public mutating func delete(_ key: [UInt8]) { operations.append(.delete(key)) }
    /// Appends another batch's changes (for group commit: many callers' batches, one write).
    public mutating func append(_ other: WriteBatch) { operations += other.operations }
    /// How many changes the batch holds.
    public var count: Int { operations.count }
    /// Drops the changes after the first `count` (to take back a failed part of a batch).
    public mutating func truncate(to count: Int) { operations.removeLast(max(0, operations.count - count)) }
}

/// A consistent read view of a `LevelDB`; released when the last reference goes.
public final class Snapshot: @unchecked Sendable {
    private let db: OpaquePointer
    let handle: OpaquePointer

    init(db: OpaquePointer, handle: OpaquePointer) {
        self.db = db
        self.handle = handle
    }

    deinit { leveldb_release_snapshot(db, handle) }
}
