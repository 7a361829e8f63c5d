import Foundation
import GRDB
import KBTime

/// The one way the system opens SQLite: through GRDB, in WAL mode, with `synchronous = FULL` so
/// that a committed transaction is on disk before the commit returns (an acknowledged write
/// survives `kill -9` and power loss), a busy timeout instead of immediate `SQLITE_BUSY`, and
/// foreign keys on. Also the store operations every SQLite-backed service needs: online backup,
/// integrity check, offline restore.
public enum SQLiteDatabase {
    /// Settings of an opened database.
    public struct Options: Sendable {
        /// How long a write waits for another connection's lock before failing with "database is locked".
        public var busyTimeout: Duration = .seconds(5)
        /// Readers that may run beside the writer.
        public var maximumReaderCount = 4
        /// A label for GRDB's dispatch queues.
        public var label = "kb.sqlite"

        /// The defaults.
        public init() {}
    }

    /// A failure that names the database file and what SQLite said.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// The database file.
        public var path: String
        /// SQLite's message, or ours.
        public var message: String
        /// SQLite's primary result code, when the failure came from SQLite.
        public var code: Int32?

        /// Describes a failure.
        public init(path: String, message: String, code: Int32? = nil) {
            self.path = path
            self.message = message
            self.code = code
        }

        /// True when another connection held the lock longer than the busy timeout.
        public var isLocked: Bool { code == 5 || code == 6 }

        public var description: String { "\(message) (\(path))" }
    }

    /// Opens (creating it if needed) the database at `path` in WAL mode. A file that is not a
    /// database, or that is locked beyond the busy timeout, fails here with a clear `Failure`.
    public static func open(path: String, options: Options = Options()) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(options.busyTimeout.inSeconds)
        configuration.maximumReaderCount = options.maximumReaderCount
        configuration.label = options.label
        configuration.foreignKeysEnabled = true
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            // Reading the schema fails on a file that is not a database.
            _ = try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") }
            return pool
        } catch {
            throw failure(error, path: path)
        }
    }

    /// Turns a GRDB error into a `Failure` naming `path`.
    public static func failure(_ error: any Error, path: String) -> Failure {
        if let failure = error as? Failure { return failure }
        if let error = error as? DatabaseError {
            return Failure(path: path, message: error.message ?? "\(error.resultCode)", code: error.resultCode.primaryResultCode.rawValue)
        }
        return Failure(path: path, message: "\(error)")
    }

    /// `PRAGMA integrity_check`: an empty array when the database is sound, else SQLite's findings.
    public static func integrityProblems(_ reader: any DatabaseReader) throws -> [String] {
        let rows = try reader.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
        return rows == ["ok"] ? [] : rows
    }

    /// Writes a consistent copy of `reader` into a new file at `destination` while the database
    /// keeps serving (SQLite's online backup API). The destination must not exist.
    @discardableResult
    public static func backup(_ reader: any DatabaseReader, to destination: URL) throws -> Int64 {
        if FileManager.default.fileExists(atPath: destination.path) {
            throw Failure(path: destination.path, message: "backup destination already exists")
        }
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        do {
            var configuration = Configuration()
            configuration.journalMode = .default
            let copy = try DatabaseQueue(path: destination.path, configuration: configuration)
            try reader.backup(to: copy)
            try copy.close()
        } catch {
            try? FileManager.default.removeItem(at: destination)
            throw failure(error, path: destination.path)
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: destination.path)[.size] as? Int64) ?? 0
        return size ?? 0
    }

    /// Checks the database file at `path` without changing it: it opens read-only and passes the
    /// integrity check. Returns the problems (empty when sound).
    public static func checkFile(path: String) throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw Failure(path: path, message: "no such file")
        }
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            return try integrityProblems(queue)
        } catch {
            throw failure(error, path: path)
        }
    }

    /// Replaces the database at `target` with the backup file `backup` (checked first). The
    /// replaced database and its WAL are kept beside it as `<name>.pre-restore.<time>`; returns
    /// that path, or nil when there was nothing to replace. Only call this while no process has
    /// the database open.
    public static func restore(from backup: URL, to target: URL) throws -> URL? {
        let problems = try checkFile(path: backup.path)
        guard problems.isEmpty else {
            throw Failure(path: backup.path, message: "the backup fails its integrity check: \(problems.prefix(3).joined(separator: "; "))")
        }
        let manager = FileManager.default
        try manager.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        var kept: URL?
        if manager.fileExists(atPath: target.path) {
            let stamp = Int64(Date().timeIntervalSince1970)
            let keep = target.deletingLastPathComponent().appendingPathComponent("\(target.lastPathComponent).pre-restore.\(stamp)")
            try manager.moveItem(at: target, to: keep)
            for suffix in ["-wal", "-shm"] {
                let side = URL(fileURLWithPath: target.path + suffix)
                if manager.fileExists(atPath: side.path) {
                    try manager.moveItem(at: side, to: URL(fileURLWithPath: keep.path + suffix))
                }
            }
            kept = keep
        }
        let staging = URL(fileURLWithPath: target.path + ".restoring")
        try? manager.removeItem(at: staging)
        try manager.copyItem(at: backup, to: staging)
        let handle = try FileHandle(forUpdating: staging)
        try handle.synchronize()
        try handle.close()
        try manager.moveItem(at: staging, to: target)
        return kept
    }
}
