import CLevelDB
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A LevelDB database: the one wrapper of LevelDB's C API in the project.
///
/// Thread-safe (LevelDB's handle is), so one instance serves every task of a process. Keys and
/// values are bytes and iterate in byte order, so a key layout of prefixes turns each query into
/// a range scan.
///
/// A damaged database is never replaced or shrunk silently (`docs/ARCHITECTURE.md` §6):
/// - a marker file of our own (`KB_STORE`) is written beside LevelDB's files when the database is
///   created (or first opened by this version); a new database is created only in a folder with
///   neither the marker nor LevelDB's files, so a lost `CURRENT` is a refusal, not an empty store;
/// - LevelDB runs with paranoid checks and verified checksums, so a damaged write-ahead log
///   fails the open instead of dropping the records after the damage;
/// - every synced write carries a commit number, also written to `KB_COMMITS` once the write is
///   on disk; a database that comes back with fewer commits than were acknowledged (a truncated
///   log) is refused;
/// - corruption met while serving is kept (`damage`) so health can say so.
public final class LevelDB: @unchecked Sendable {
    /// A LevelDB failure, with LevelDB's own message.
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        /// What kind of failure, for callers that answer differently.
        public enum Code: Sendable, Hashable {
            /// The database cannot be read whole (corruption, missing or truncated files): restore it.
            case damaged
            /// Any other failure (the folder is locked by another process, a file system error).
            case failed
        }

        /// What kind of failure.
        public let code: Code
        /// What was being done.
        public let operation: String
        /// LevelDB's message, or ours.
        public let message: String
        public var description: String { "leveldb \(operation): \(message)" }

        /// A failure of `operation`.
        public init(_ code: Code = .failed, operation: String, message: String) {
            self.code = code
            self.operation = operation
            self.message = message
        }

        /// A failure reported by LevelDB: damage when LevelDB says corruption.
        static func reported(_ message: String, operation: String) -> Error {
            Error(message.hasPrefix("Corruption") ? .damaged : .failed, operation: operation, message: message)
        }
    }

    /// How to open a database.
    public struct Options: Sendable {
        /// Create the database when the folder is new or empty. A folder that held a database
        /// (our marker or LevelDB's files are there) is never given a new one.
        public var createIfMissing = true
        /// Refuse to open an existing database.
        public var errorIfExists = false
        /// Check everything read aggressively and stop at the first corruption (a damaged
        /// write-ahead log fails the open instead of losing the records after the damage).
        public var paranoidChecks = true
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
        /// How an operator restores this store, appended to every damage message (e.g. the
        /// service's restore command).
        public var restoreAdvice = "restore the database from a backup"

        /// The defaults.
        public init() {}
    }

    /// The marker file written beside LevelDB's files when the database is created.
    public static let markerFile = "KB_STORE"
    /// The file holding the number of the last synced commit, beside LevelDB's files.
    public static let commitsFile = "KB_COMMITS"
    /// The reserved key holding the commit number inside the database (hidden from scans).
    static let commitKey: [UInt8] = [0xFF] + Array("kb.commit-number".utf8)

    /// The folder of the database.
    public let path: String
    private let db: OpaquePointer
    private let options: OpaquePointer
    private let cache: OpaquePointer?
    private let filter: OpaquePointer?
    private let readOptions: OpaquePointer
    private let syncWrite: OpaquePointer
    private let asyncWrite: OpaquePointer
    private let restoreAdvice: String
    /// Serialises synced writes so commit numbers follow LevelDB's order.
    private let commitLock = NSLock()
    private var committed: UInt64
    private let commitsHandle: Int32
    private let damageLock = NSLock()
    private var firstDamage: String?

    /// Opens (or, in a new or empty folder, creates) the database in `path`. Fails if another
    /// process has it open, and fails with `Error.Code.damaged` naming the file and the restore
    /// advice when the database that was there cannot be read whole.
    public init(path: String, options settings: Options = Options()) throws {
        let advice = settings.restoreAdvice
        let folder = URL(fileURLWithPath: path)
        let hasMarker = FileManager.default.fileExists(atPath: folder.appendingPathComponent(Self.markerFile).path)
        let hasCommits = FileManager.default.fileExists(atPath: folder.appendingPathComponent(Self.commitsFile).path)
        let current = folder.appendingPathComponent("CURRENT").path
        var creating = false
        if !FileManager.default.fileExists(atPath: current) {
            let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter(Self.isDatabaseFile).sorted()
            if hasMarker || hasCommits || !leftovers.isEmpty {
                let evidence = hasMarker ? "its marker \(Self.markerFile)" : hasCommits ? "its \(Self.commitsFile)" : "its files \(leftovers.prefix(3).joined(separator: ", "))"
                throw Error(.damaged, operation: "open \(path)", message: "\(current) is missing, but a database was created here (\(evidence) remain); refusing to start an empty one in its place. To recover: \(advice)")
            }
            guard settings.createIfMissing else { throw Error(operation: "open \(path)", message: "no database in \(path)") }
            creating = true
        }

        let options = leveldb_options_create()!
        leveldb_options_set_create_if_missing(options, creating ? 1 : 0)
        leveldb_options_set_error_if_exists(options, settings.errorIfExists ? 1 : 0)
        leveldb_options_set_paranoid_checks(options, settings.paranoidChecks ? 1 : 0)
        leveldb_options_set_write_buffer_size(options, settings.writeBufferSize)
        leveldb_options_set_max_file_size(options, settings.maxFileSize)
        leveldb_options_set_compression(options, settings.compression ? Int32(leveldb_snappy_compression) : Int32(leveldb_no_compression))
        let cache = settings.blockCacheSize > 0 ? leveldb_cache_create_lru(settings.blockCacheSize) : nil
        if let cache { leveldb_options_set_cache(options, cache) }
        let filter = settings.bloomFilterBitsPerKey > 0 ? leveldb_filterpolicy_create_bloom(Int32(settings.bloomFilterBitsPerKey)) : nil
        if let filter { leveldb_options_set_filter_policy(options, filter) }
        func release() {
            leveldb_options_destroy(options)
            if let cache { leveldb_cache_destroy(cache) }
            if let filter { leveldb_filterpolicy_destroy(filter) }
        }

        var error: UnsafeMutablePointer<CChar>?
        let db = leveldb_open(options, path, &error)
        if let failure = Self.take(error) {
            release()
            throw Self.openFailure(failure, path: path, advice: advice)
        }
        let readOptions = leveldb_readoptions_create()!
        leveldb_readoptions_set_verify_checksums(readOptions, 1)

        // The commit number: what the database holds against what was acknowledged.
        let commitsPath = folder.appendingPathComponent(Self.commitsFile).path
        var stored: UInt64 = 0
        var length = 0
        let value = Self.commitKey.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { leveldb_get(db, readOptions, $0.baseAddress, $0.count, &length, &error) }
        }
        if let failure = Self.take(error) {
            leveldb_close(db)
            leveldb_readoptions_destroy(readOptions)
            release()
            throw Self.openFailure(failure, path: path, advice: advice)
        }
        if let value {
            stored = Self.number(Array(UnsafeRawBufferPointer(start: value, count: length)))
            leveldb_free(value)
        }
        let acknowledged = (try? Data(contentsOf: URL(fileURLWithPath: commitsPath))).flatMap { $0.count == 8 ? Self.number(Array($0)) : nil } ?? 0
        if acknowledged > stored {
            leveldb_close(db)
            leveldb_readoptions_destroy(readOptions)
            release()
            throw Error(.damaged, operation: "open \(path)", message: "the write-ahead log lost acknowledged writes: the database ends at commit \(stored) but commit \(acknowledged) had been acknowledged (\(commitsPath)); its log was truncated or damaged. To recover: \(advice) (or, to keep only what remains, delete \(commitsPath))")
        }
        let commitsHandle = Glibc.open(commitsPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        if commitsHandle >= 0 { Self.writeNumber(stored, to: commitsHandle) }
        self.commitsHandle = commitsHandle
        committed = stored
        self.readOptions = readOptions
        if creating || !hasMarker {
            // Created now, or a store from before markers adopted: from here on it exists.
            Self.writeMarker(in: folder, created: creating)
        }

        self.path = path
        self.db = db!
        self.options = options
        self.cache = cache
        self.filter = filter
        self.restoreAdvice = advice
        syncWrite = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(syncWrite, 1)
        asyncWrite = leveldb_writeoptions_create()
    }

    /// The first corruption LevelDB reported while serving (with what to do), or nil: a store
    /// with damage answers its health as unhealthy.
    public var damage: String? { damageLock.withLock { firstDamage } }

    /// Whether `name` is one of LevelDB's own files (a table, a log, a manifest).
    static func isDatabaseFile(_ name: String) -> Bool {
        name.hasPrefix("MANIFEST-") || name.hasSuffix(".ldb") || name.hasSuffix(".sst") || name.hasSuffix(".log")
    }

    private static func openFailure(_ message: String, path: String, advice: String) -> Error {
        let locked = message.contains("/LOCK") || message.contains("lock ")
        let damaged = !locked && (message.hasPrefix("Corruption") || message.contains("No such file") || message.contains("missing"))
        return damaged
            ? Error(.damaged, operation: "open \(path)", message: "the database is damaged: \(message). To recover: \(advice)")
            : Error(operation: "open \(path)", message: message)
    }

    private static func number(_ bytes: [UInt8]) -> UInt64 {
        bytes.count == 8 ? bytes.reduce(0) { $0 << 8 | UInt64($1) } : 0
    }

    private static func writeNumber(_ number: UInt64, to handle: Int32) {
        let bytes = withUnsafeBytes(of: number.bigEndian) { Array($0) }
        _ = bytes.withUnsafeBytes { pwrite(handle, $0.baseAddress, 8, 0) }
    }

    private static func writeMarker(in folder: URL, created: Bool) {
        let text = "kb LevelDB store\n\(created ? "created" : "adopted") \(ISO8601DateFormatter().string(from: Date()))\nA database lives here: if CURRENT is missing it is damaged, never new.\n"
        let url = folder.appendingPathComponent(markerFile)
        guard FileManager.default.createFile(atPath: url.path, contents: Data(text.utf8)), let handle = try? FileHandle(forUpdating: url) else { return }
        try? handle.synchronize()
        try? handle.close()
        let directory = Glibc.open(folder.path, O_RDONLY | O_DIRECTORY)
        if directory >= 0 {
            fsync(directory)
            Glibc.close(directory)
        }
    }

    /// Notes corruption reported while serving and returns the error to throw.
    private func failure(_ message: String, operation: String) -> Error {
        let error = Error.reported(message, operation: operation)
        guard error.code == .damaged else { return error }
        let text = "\(message) (in \(path)). To recover: \(restoreAdvice)"
        damageLock.withLock { if firstDamage == nil { firstDamage = text } }
        return Error(.damaged, operation: operation, message: text)
    }

    deinit {
        leveldb_close(db)
        if commitsHandle >= 0 { Glibc.close(commitsHandle) }
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
        if let failure = Self.take(error) { throw self.failure(failure, operation: "get") }
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
        guard sync else {
            leveldb_write(db, asyncWrite, handle, &error)
            if let failure = Self.take(error) { throw self.failure(failure, operation: "write") }
            return
        }
        // A synced write carries the next commit number; once it is on disk the number is
        // written to KB_COMMITS (no sync needed: it only ever trails what LevelDB synced).
        commitLock.lock()
        defer { commitLock.unlock() }
        let number = committed + 1
        let value = withUnsafeBytes(of: number.bigEndian) { Array($0) }
        Self.commitKey.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                leveldb_writebatch_put(handle, k.baseAddress?.assumingMemoryBound(to: CChar.self), k.count, v.baseAddress?.assumingMemoryBound(to: CChar.self), v.count)
            }
        }
        leveldb_write(db, syncWrite, handle, &error)
        if let failure = Self.take(error) { throw self.failure(failure, operation: "write") }
        committed = number
        if commitsHandle >= 0 { Self.writeNumber(number, to: commitsHandle) }
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
            if key == Self.commitKey {
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
        if let failure = Self.take(error) { throw self.failure(failure, operation: "scan") }
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
        for file in [markerFile, commitsFile] { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).appendingPathComponent(file).path) }
        try? FileManager.default.removeItem(atPath: path)
    }

    private func withReadOptions<R>(_ snapshot: Snapshot?, _ body: (OpaquePointer) -> R) -> R {
        guard let snapshot else { return body(readOptions) }
        let options = leveldb_readoptions_create()!
        defer { leveldb_readoptions_destroy(options) }
        leveldb_readoptions_set_verify_checksums(options, 1)
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
