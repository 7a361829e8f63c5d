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
        /// How an operator restores this database, appended to every damage message (e.g. the
        /// service's restore command).
        public var restoreAdvice = "restore the database from a backup"
        /// Run `PRAGMA quick_check` when opening, so a truncated or damaged file is refused at
        /// once instead of failing later reads (it reads the whole file once).
        public var checkAtOpen = true

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
        /// The database exists but cannot be read whole (missing, emptied, truncated, a damaged
        /// write-ahead log): it must be restored, never replaced by a new one.
        public var isDamaged: Bool

        /// Describes a failure.
        public init(path: String, message: String, code: Int32? = nil, isDamaged: Bool = false) {
            self.path = path
            self.message = message
            self.code = code
            self.isDamaged = isDamaged || code == 11 || code == 26
        }

        /// True when another connection held the lock longer than the busy timeout.
        public var isLocked: Bool { code == 5 || code == 6 }

        public var description: String { "\(message) (\(path))" }
    }

    /// The marker file written beside a database when it is created (`<file>.kbstore`): with it,
    /// a missing or empty database file is damage, never a new database.
    public static func markerPath(_ path: String) -> String { path + ".kbstore" }

    /// Opens (creating it if needed) the database at `path` in WAL mode. A file that is not a
    /// database, or that is locked beyond the busy timeout, fails here with a clear `Failure`.
    ///
    /// A database that existed is never silently replaced by an empty one or opened short of its
    /// committed transactions (`docs/ARCHITECTURE.md` §6): before SQLite touches the files, a
    /// missing or zero-length file is refused when its marker or a write-ahead log remains, and
    /// the write-ahead log's frame checksums are checked (SQLite would drop every commit after a
    /// damaged frame); after opening, `PRAGMA quick_check` refuses a truncated or damaged file.
    /// Those failures are `Failure.isDamaged` and end with `options.restoreAdvice`.
    public static func open(path: String, options: Options = Options()) throws -> DatabasePool {
        let advice = options.restoreAdvice
        if let damage = damageBeforeOpening(path: path) {
            throw Failure(path: path, message: "\(damage). To recover: \(advice)", isDamaged: true)
        }
        var configuration = Configuration()
        configuration.journalMode = .wal
        configuration.busyMode = .timeout(options.busyTimeout.inSeconds)
        configuration.maximumReaderCount = options.maximumReaderCount
        configuration.label = options.label
        configuration.foreignKeysEnabled = true
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw damaged(failure(error, path: path), advice: advice)
        }
        do {
            // Reading the schema fails on a file that is not a database.
            _ = try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") }
            if options.checkAtOpen {
                let rows = try pool.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
                if rows != ["ok"] {
                    throw Failure(path: path, message: "the database is damaged (quick_check: \(rows.prefix(3).joined(separator: "; ")))", isDamaged: true)
                }
            }
        } catch {
            try? pool.close()
            throw damaged(failure(error, path: path), advice: advice)
        }
        if !FileManager.default.fileExists(atPath: markerPath(path)) {
            // Created now, or a database from before markers adopted: from here on it exists.
            writeMarker(markerPath(path))
        }
        return pool
    }

    /// `failure` with the restore advice when it is damage.
    static func damaged(_ failure: Failure, advice: String) -> Failure {
        guard failure.isDamaged, !failure.message.contains("To recover:") else { return failure }
        var result = failure
        result.message += ". To recover: \(advice)"
        return result
    }

    /// Why the files at `path` must not be opened (they held a database that SQLite would now
    /// open empty or short), or nil.
    static func damageBeforeOpening(path: String) -> String? {
        let files = FileManager.default
        let marker = markerPath(path), walPath = path + "-wal"
        let hasMarker = files.fileExists(atPath: marker)
        let walSize = (try? files.attributesOfItem(atPath: walPath)[.size] as? Int64) ?? 0
        let size: Int64? = files.fileExists(atPath: path) ? ((try? files.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0) : nil
        switch size {
        case nil:
            if walSize > 0 { return "\(path) is missing but its write-ahead log \(walPath) (\(walSize) bytes) remains: the database was deleted" }
            if hasMarker { return "\(path) is missing but a database was created here (its marker \(marker) remains)" }
        case 0?:
            if walSize > 0 { return "\(path) is empty (0 bytes) but its write-ahead log \(walPath) (\(walSize) bytes) remains" }
            if hasMarker { return "\(path) is empty (0 bytes) but a database was created here (its marker \(marker) remains)" }
        default:
            break
        }
        if walSize > 0, let problem = WriteAheadLog.damage(at: walPath) { return problem }
        return nil
    }

    static func writeMarker(_ path: String) {
        let text = "kb SQLite database \(URL(fileURLWithPath: path).lastPathComponent.replacingOccurrences(of: ".kbstore", with: ""))\ncreated \(ISO8601DateFormatter().string(from: Date()))\nWhile this file exists, a missing or empty database is damage: restore it, never start a new one.\n"
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)), let handle = try? FileHandle(forUpdating: URL(fileURLWithPath: path)) else { return }
        try? handle.synchronize()
        try? handle.close()
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
        // A database deleted while its write-ahead log stayed: that log must go aside too, or
        // SQLite would lay it over the restored file.
        let leftovers = ["-wal", "-shm"].contains { manager.fileExists(atPath: target.path + $0) }
        if manager.fileExists(atPath: target.path) || leftovers {
            let stamp = Int64(Date().timeIntervalSince1970)
            let keep = target.deletingLastPathComponent().appendingPathComponent("\(target.lastPathComponent).pre-restore.\(stamp)")
            if manager.fileExists(atPath: target.path) { try manager.moveItem(at: target, to: keep) }
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
