import Foundation
import GRDB
import KBProto
import KBRPC
import KBRuntime
import KBSQLite
import KBTime

/// Whole-system backup, verification, restore and the disaster-recovery drill: the logic of
/// `kb backup`, `kb verify-backup`, `kb restore` and `kb drill` (README "Backup, restore and
/// disaster recovery").
///
/// A backup is one folder, `knowledge-system_<YYYYmmdd_HHMMSS>`, inside the services' backup
/// folder (`KB_BACKUP_DIR`: they write only there), holding one part per store, each made by
/// the store's own online backup while the system serves, and `manifest.json`.
public struct SystemBackup: Sendable {
    public let launcher: Launcher
    private let print: @Sendable (String) -> Void

    /// Backups of the system `launcher` manages (its environment, data directory and executables).
    public init(launcher: Launcher, print: @escaping @Sendable (String) -> Void = { Swift.print($0) }) {
        self.launcher = launcher
        self.print = print
    }

    /// The services' backup folder (`KB_BACKUP_DIR`, default `backups` beside the data directory).
    public func backupRoot() throws -> BackupRoot {
        try ServiceConfiguration(descriptor: .graphStore, source: launcher.source).backupRoot
    }

    /// The backup name's date, `YYYYmmdd_HHMMSS` in UTC, as the guide's scripts stamp theirs.
    public static func stamp(_ date: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd_HHmmss"
        return formatter.string(from: date)
    }

    /// The stores this system has: those whose service is installed beside `kb` (the gateway's
    /// caches also when only its files exist).
    func storesPresent() throws -> [SystemStore] {
        let installed = Set(try launcher.installedServices().map(\.descriptor.name))
        return SystemStore.allCases.filter { store in
            installed.contains(store.descriptor.name)
                || (store == .inferenceCache && FileManager.default.fileExists(atPath: cacheFile(in: launcher.dataDirectory).path))
        }
    }

    func cacheFile(in data: URL) -> URL {
        data.appendingPathComponent(SystemStore.inferenceCache.dataSubdirectory).appendingPathComponent(Self.cacheFileName)
    }

    /// The gateway's cache file and its indexer's cursor file (`InferenceGatewayConfiguration
    /// .cacheFileName`, `IndexCursor.fileName`).
    static let cacheFileName = "cache.db"
    static let cursorFileName = "indexer.cursor"

    // MARK: backup

    /// Backs up every store of the running system into a new folder `knowledge-system_<date>`
    /// inside `parent` (a path inside the backup folder; relative paths are taken inside it; nil:
    /// the backup folder itself). Returns the folder and its manifest.
    ///
    /// Order: the gateway's cursor and caches, the vector collections, the budget ledger, the
    /// graph — so the restored indexer cursor is never past the restored graph's feed and the
    /// restored collections hold nothing the restored graph has not seen; the indexer replays the
    /// rest (idempotent) after a restore.
    public func backup(into parent: String? = nil, at date: Date = Date()) async throws -> (folder: URL, manifest: BackupManifest) {
        let started = ContinuousClock.now
        let root = try backupRoot()
        let stamp = Self.stamp(date)
        let name = "knowledge-system_\(stamp)"
        let requested = parent.map { $0.hasSuffix("/") ? $0 + name : $0 + "/" + name } ?? name
        let folder: URL
        do { folder = try root.newBackup(requested, field: "DIR") } catch let error as RPCError {
            throw LauncherError("cannot back up into \(requested): \(error.message)")
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        let stores = try storesPresent()
        guard stores.contains(.graph) else {
            throw LauncherError("graph-store is not installed in \(launcher.binDirectory.path): there is no system to back up")
        }
        print("Backing up to \(folder.path)")
        var entries: [BackupManifest.Store] = []
        do {
            for store in stores {
                let storeStarted = ContinuousClock.now
                var entry = try await backup(store, into: folder, part: store.partName(stamp: stamp))
                entry.files = try FileDigests.files(of: folder.appendingPathComponent(entry.path), relativeTo: folder)
                entry.seconds = (ContinuousClock.now - storeStarted).inSeconds
                print("  \(store.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0)) \(Self.describe(entry.counts))  \(entry.files.count) files, \(Self.bytes(entry.files.reduce(0) { $0 + $1.bytes }))  \(String(format: "%.2f s", entry.seconds))")
                entries.append(entry)
            }
        } catch {
            print("The backup failed; the partial folder \(folder.path) is left for inspection (it has no manifest, so it is never taken for a backup).")
            throw error
        }
        let manifest = BackupManifest(
            format: BackupManifest.currentFormat, name: name, systemVersion: KnowledgeBaseVersion.current,
            createdAt: ISO8601DateFormatter().string(from: date), dataDirectory: launcher.dataDirectory.path,
            stores: entries, seconds: (ContinuousClock.now - started).inSeconds
        )
        try manifest.write(to: folder)
        print("Backup complete: \(folder.path) (\(String(format: "%.2f s", manifest.seconds)))")
        return (folder, manifest)
    }

    private func backup(_ store: SystemStore, into folder: URL, part: String) async throws -> BackupManifest.Store {
        let target = folder.appendingPathComponent(part)
        let version = await serviceVersion(store.descriptor)
        var entry = BackupManifest.Store(store: store, service: store.descriptor.name, serviceVersion: version, path: part, method: "", counts: [:], collections: nil, files: [], seconds: 0)
        switch store {
        case .inferenceCache:
            // No RPC copies the gateway's caches: SQLite's online backup API reads a consistent
            // snapshot of the live file (a read transaction; the gateway keeps writing).
            entry.method = "SQLite online backup API of \(SystemStore.inferenceCache.dataSubdirectory)/\(Self.cacheFileName) (read-only, consistent while the gateway serves); \(Self.cursorFileName) copied (the gateway replaces it whole)"
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
            let live = launcher.dataDirectory.appendingPathComponent(store.dataSubdirectory)
            let cursor = live.appendingPathComponent(Self.cursorFileName)
            if let text = try? String(contentsOf: cursor, encoding: .utf8) {
                try text.write(to: target.appendingPathComponent(Self.cursorFileName), atomically: true, encoding: .utf8)
                entry.counts["indexer_cursor"] = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            }
            let source = cacheFile(in: launcher.dataDirectory)
            if FileManager.default.fileExists(atPath: source.path) {
                var configuration = Configuration()
                configuration.readonly = true
                configuration.busyMode = .timeout(30)
                let copy = target.appendingPathComponent(Self.cacheFileName)
                do {
                    let reader = try DatabaseQueue(path: source.path, configuration: configuration)
                    defer { try? reader.close() }
                    try SQLiteDatabase.backup(reader, to: copy)
                    // One self-contained file (no -wal / -shm beside it), so its checksum holds
                    // however often it is read.
                    for (table, rows) in try Self.selfContained(copy) { entry.counts["rows.\(table)"] = rows }
                } catch {
                    throw LauncherError("cannot copy the gateway's caches \(source.path): \(error)")
                }
            }
        case .vectors:
            entry.method = "vector-search SnapshotCollection RPC, one snapshot per collection"
            try await withLiveClient(.vectorSearch) { client in
                let list = try await client.call(VectorSearchMethods.listCollections, .init())
                var collections: [BackupManifest.Collection] = []
                for info in list.collections.sorted(by: { $0.config.name < $1.config.name }) {
                    let path = "\(part)/\(info.config.name)"
                    let snapshot = try await client.call(VectorSearchMethods.snapshotCollection, .with {
                        $0.name = info.config.name
                        $0.path = folder.appendingPathComponent(path).path
                    }, options: CallOptions(timeout: .seconds(3600)))
                    collections.append(.init(name: info.config.name, dimension: info.config.dimension, distance: Self.distance(info.config.distance), points: snapshot.pointCount, path: path))
                }
                if collections.isEmpty { try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true) }
                entry.collections = collections
                entry.counts = ["collections": Int64(collections.count), "points": collections.reduce(0) { $0 + $1.points }]
            }
        case .budget:
            entry.method = "budget-service Backup RPC (SQLite online backup API)"
            try await withLiveClient(.budgetService) { client in
                let response = try await client.call(BudgetMethods.backup, .with { $0.path = target.path }, options: CallOptions(timeout: .seconds(3600)))
                entry.counts = ["events": response.events, "archived_events": response.archivedEvents]
            }
            // The service's check of its copy leaves -wal / -shm files beside it: fold them in.
            _ = try Self.selfContained(target)
        case .graph:
            entry.method = "graph-store Backup RPC (consistent LevelDB snapshot)"
            try await withLiveClient(.graphStore) { client in
                let response = try await client.call(GraphStoreMethods.backup, .with { $0.directory = target.path }, options: CallOptions(timeout: .seconds(3600)))
                entry.counts = ["entities": response.entities, "relations": response.relations]
            }
        }
        return entry
    }

    /// Calls the running `service` (its address and token from the launcher's environment).
    func withLiveClient(_ service: ServiceDescriptor, _ body: (RPCClient) async throws -> Void) async throws {
        var configuration = try launcher.source.clientConfiguration(for: service)
        configuration.connections = 1
        configuration.connectTimeout = .seconds(2)
        let client = RPCClient(configuration: configuration)
        do {
            do {
                _ = try await client.call(HealthMethods.check, .init(), options: CallOptions(timeout: .seconds(2)))
            } catch let error as RPCError where error.code == .unavailable || error.code == .deadlineExceeded {
                throw LauncherError("\(service.name) is not reachable at \(configuration.host):\(configuration.port) (\(error.message)); an online backup needs every store serving: start them with `kb up --detach`")
            }
            try await body(client)
        } catch let error as RPCError {
            await client.close()
            throw LauncherError("\(service.name): \(error.code.name): \(error.message)")
        } catch {
            await client.close()
            throw error
        }
        await client.close()
    }

    /// The version `service` reports on its `/health`, or "" when it does not answer.
    func serviceVersion(_ service: ServiceDescriptor) async -> String {
        guard let configuration = try? ServiceConfiguration(descriptor: service, source: launcher.source) else { return "" }
        let host = ["0.0.0.0", "::", ""].contains(configuration.host) ? "127.0.0.1" : configuration.host
        guard let (_, body) = await HealthProbe.get(host: host, port: configuration.adminPort, path: "/health"),
              let json = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] else { return "" }
        return json["version"] as? String ?? ""
    }

    /// Rows per table of the SQLite file at `file` (opened read-only).
    static func tableRows(_ file: URL) throws -> [String: Int64] {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: file.path, configuration: configuration)
        defer { try? queue.close() }
        return try tableRows(queue)
    }

    /// Turns the SQLite copy at `file` into one file (rollback journal instead of a write-ahead
    /// log) and returns its rows per table.
    static func selfContained(_ file: URL) throws -> [String: Int64] {
        let queue = try DatabaseQueue(path: file.path)
        defer { try? queue.close() }
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = DELETE") }
        return try tableRows(queue)
    }

    /// Rows per table, read in one transaction.
    static func tableRows(_ reader: any DatabaseReader) throws -> [String: Int64] {
        try reader.read { db in
            var rows: [String: Int64] = [:]
            for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name") {
                rows[table] = try Int64.fetchOne(db, sql: "SELECT count(*) FROM \"\(table.replacingOccurrences(of: "\"", with: "\"\""))\"") ?? 0
            }
            return rows
        }
    }

    static func distance(_ distance: Kb_Vector_V1_Distance) -> String {
        switch distance {
        case .cosine: "cosine"
        case .dot: "dot"
        case .euclidean: "euclidean"
        default: "unknown"
        }
    }

    static func describe(_ counts: [String: Int64]) -> String {
        counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    static func bytes(_ count: Int64) -> String {
        count < 1 << 20 ? String(format: "%.1f KiB", Double(count) / 1024) : String(format: "%.1f MiB", Double(count) / 1_048_576)
    }
}

