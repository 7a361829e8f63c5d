import Foundation
import KBProto
import KBRPC
import KBRuntime
import KBSQLite
import KBTime

#if canImport(Glibc)
import Glibc
#endif

extension SystemBackup {
    // MARK: checking a backup

    /// Checks every file the manifest lists: present, same size, same SHA-256. Returns the
    /// problems (empty: every byte is as it was written).
    public func checkFiles(_ folder: URL, _ manifest: BackupManifest) throws -> [String] {
        var problems: [String] = []
        let files = FileManager.default
        var present: [String] = []
        for store in manifest.stores {
            if !files.fileExists(atPath: folder.appendingPathComponent(store.path).path) {
                problems.append("\(store.store.rawValue): \(store.path) is missing")
            }
            for file in store.files {
                let url = folder.appendingPathComponent(file.path)
                guard let size = (try? files.attributesOfItem(atPath: url.path))?[.size] as? Int64 else {
                    problems.append("\(store.store.rawValue): \(file.path) is missing")
                    continue
                }
                if size != file.bytes {
                    problems.append("\(store.store.rawValue): \(file.path) has \(size) bytes; the manifest says \(file.bytes)")
                    continue
                }
                present.append(file.path)
            }
        }
        let digests = try FileDigests.sha256(present, in: folder)
        let expected = Dictionary(manifest.stores.flatMap(\.files).map { ($0.path, $0.sha256) }, uniquingKeysWith: { first, _ in first })
        for path in present where digests[path] != expected[path] {
            problems.append("\(path): SHA-256 \(digests[path] ?? "unreadable") differs from the manifest's \(expected[path] ?? "?"): the file was changed or damaged")
        }
        return problems
    }

    /// `kb verify-backup`: the guide's weekly backup verification, without touching the live
    /// system. Checks the checksums, then restores each store's copy into a scratch data
    /// directory (`scratch`, default a new temporary folder, removed afterwards) with the store's
    /// own service on free loopback ports, runs its integrity check and compares its counts to
    /// the manifest. Throws listing every problem.
    public func verify(_ folder: URL, scratch: URL? = nil) async throws -> BackupManifest {
        let folder = folder.standardizedFileURL
        let manifest = try BackupManifest.read(from: folder)
        print("Verifying \(folder.path) (\(manifest.name), taken \(manifest.createdAt) by kb \(manifest.systemVersion))")
        let problems = try checkFiles(folder, manifest)
        guard problems.isEmpty else { throw LauncherError("FAIL: the backup is damaged:\n  " + problems.joined(separator: "\n  ")) }
        print("  checksums        \(manifest.stores.reduce(0) { $0 + $1.files.count }) files match the manifest")
        let staging = scratch ?? FileManager.default.temporaryDirectory.appendingPathComponent("kb-verify-backup-\(UUID().uuidString)")
        guard !FileManager.default.fileExists(atPath: staging.path) else { throw LauncherError("the scratch folder \(staging.path) already exists; name a new one") }
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: staging) }
        try await stage(folder, manifest, into: staging)
        print("PASS: \(manifest.name) restores and matches its manifest")
        return manifest
    }

    /// Restores every store of the backup into `staging` (as a data directory) with each
    /// service's own restore, opens each with its service and compares counts with the manifest.
    /// Throws at the first store that does not match.
    func stage(_ folder: URL, _ manifest: BackupManifest, into staging: URL) async throws {
        for entry in manifest.stores {
            let started = ContinuousClock.now
            let counts = try await stage(entry, from: folder, into: staging)
            var problems: [String] = []
            for (key, expected) in entry.counts.sorted(by: { $0.key < $1.key }) where counts[key] != expected {
                problems.append("\(key): the manifest says \(expected), the restored copy holds \(counts[key].map(String.init) ?? "none")")
            }
            guard problems.isEmpty else {
                throw LauncherError("FAIL: \(entry.store.rawValue) (\(entry.path)) does not match its manifest: \(problems.joined(separator: "; "))")
            }
            print("  \(entry.store.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0)) opens with \(entry.service), integrity ok, \(Self.describe(counts))  \(String(format: "%.2f s", (ContinuousClock.now - started).inSeconds))")
        }
    }

    /// One store's copy restored into `staging` and opened; returns its counts (the manifest's keys).
    private func stage(_ entry: BackupManifest.Store, from folder: URL, into staging: URL) async throws -> [String: Int64] {
        let part = folder.appendingPathComponent(entry.path)
        var environment = launcher.environment
        environment[ServiceConfiguration.Keys.dataDirectory.name] = staging.path
        switch entry.store {
        case .graph:
            try offlineRestore(.graphStore, from: part, environment: environment)
            return try await withScratch(.graphStore, data: staging) { client in
                let verify = try await client.call(GraphStoreMethods.verify, .init())
                guard verify.ok else { throw LauncherError("graph-store's verify of the restored copy failed: \(verify.problems.joined(separator: "; "))") }
                let stats = try await client.call(GraphStoreMethods.getStats, .init())
                return ["entities": stats.totalEntities, "relations": stats.totalRelations]
            }
        case .budget:
            try offlineRestore(.budgetService, from: try privateCopy(part, in: staging), environment: environment)
            return try await withScratch(.budgetService, data: staging) { client in
                let verify = try await client.call(BudgetMethods.verify, .init())
                guard verify.ok else { throw LauncherError("budget-service's verify of the restored copy failed: \(verify.problems.joined(separator: "; "))") }
                return ["events": verify.events, "archived_events": verify.archivedEvents]
            }
        case .vectors:
            // vector-search has no offline restore: a scratch vector-search restores each
            // collection over RPC from the backup folder (its KB_BACKUP_DIR for this run).
            let collections = entry.collections ?? []
            return try await withScratch(.vectorSearch, data: staging, backupDirectory: folder) { client in
                for collection in collections {
                    _ = try await client.call(VectorSearchMethods.restoreCollection, .with { $0.name = collection.name; $0.path = collection.path }, options: CallOptions(timeout: .seconds(3600)))
                }
                let wanted = Set(collections.map(\.name))
                for info in try await client.call(VectorSearchMethods.listCollections, .init()).collections where !wanted.contains(info.config.name) {
                    // Made at the first start of an empty store; the backup did not hold it.
                    _ = try await client.call(VectorSearchMethods.deleteCollection, .with { $0.name = info.config.name })
                }
                let list = try await client.call(VectorSearchMethods.listCollections, .init()).collections
                for collection in collections {
                    guard let info = list.first(where: { $0.config.name == collection.name }) else { throw LauncherError("collection \(collection.name) is missing after its restore") }
                    guard info.pointCount == collection.points, info.config.dimension == collection.dimension else {
                        throw LauncherError("collection \(collection.name): the manifest says \(collection.points) points of dimension \(collection.dimension), the restored copy holds \(info.pointCount) of dimension \(info.config.dimension)")
                    }
                }
                return ["collections": Int64(list.count), "points": list.reduce(0) { $0 + $1.pointCount }]
            }
        case .inferenceCache:
            let target = staging.appendingPathComponent(SystemStore.inferenceCache.dataSubdirectory)
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            var counts: [String: Int64] = [:]
            let cursor = part.appendingPathComponent(Self.cursorFileName)
            if let text = try? String(contentsOf: cursor, encoding: .utf8) {
                try text.write(to: target.appendingPathComponent(Self.cursorFileName), atomically: true, encoding: .utf8)
                counts["indexer_cursor"] = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            }
            let cache = part.appendingPathComponent(Self.cacheFileName)
            if FileManager.default.fileExists(atPath: cache.path) {
                let restored = target.appendingPathComponent(Self.cacheFileName)
                do { _ = try SQLiteDatabase.restore(from: try privateCopy(cache, in: staging), to: restored) } catch {
                    throw LauncherError("the gateway's caches \(cache.path) do not restore: \(error)")
                }
                for (table, rows) in try Self.tableRows(restored) { counts["rows.\(table)"] = rows }
            }
            return counts
        }
    }

    /// A copy of the backup's SQLite file `file` in `staging`, to be opened instead of it: SQLite
    /// may leave `-wal` / `-shm` files beside a file it opens, and the backup folder is never changed.
    private func privateCopy(_ file: URL, in staging: URL) throws -> URL {
        let incoming = staging.appendingPathComponent(".incoming", isDirectory: true)
        try FileManager.default.createDirectory(at: incoming, withIntermediateDirectories: true)
        let copy = incoming.appendingPathComponent(file.lastPathComponent)
        try? FileManager.default.removeItem(at: copy)
        try FileManager.default.copyItem(at: file, to: copy)
        return copy
    }

    /// `<service> restore PART` with `environment` (its `KB_DATA_DIR`): the service's own offline
    /// restore, which checks the copy before it replaces anything.
    private func offlineRestore(_ service: ServiceDescriptor, from part: URL, environment: [String: String]) throws {
        let executable = launcher.binDirectory.appendingPathComponent(service.name)
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw LauncherError("\(service.name) is not installed in \(launcher.binDirectory.path); it is needed to restore its store")
        }
        let result = try runTool(executable, ["restore", part.path], environment: environment)
        guard result.status == 0 else { throw LauncherError("\(service.name) restore of \(part.path) failed (exit \(result.status)): \(result.output)") }
    }

    /// Starts `service` on the scratch data directory, runs `body` with a client of it, stops it.
    private func withScratch<T>(_ service: ServiceDescriptor, data: URL, backupDirectory: URL? = nil, _ body: (RPCClient) async throws -> T) async throws -> T {
        let scratch = try ScratchService(service, binDirectory: launcher.binDirectory, environment: launcher.environment, dataDirectory: data, backupDirectory: backupDirectory)
        let client: RPCClient
        do {
            try await scratch.waitUntilReady()
            client = scratch.client()
        } catch {
            await scratch.stop()
            throw error
        }
        do {
            let value = try await body(client)
            await client.close()
            await scratch.stop()
            try? FileManager.default.removeItem(at: scratch.logFile)
            return value
        } catch let error as RPCError {
            await client.close()
            await scratch.stop()
            throw LauncherError("\(service.name) on the restored copy: \(error.code.name): \(error.message)")
        } catch {
            await client.close()
            await scratch.stop()
            throw error
        }
    }

    // MARK: restore

    /// The services owning a store that run on this system: a live pid file, or an admin port
    /// that answers. (VKB owns no store: it may keep running.)
    public func runningServices() async throws -> [String] {
        var running: [String] = []
        for descriptor in ServiceDescriptor.catalog where descriptor.dataSubdirectory != nil {
            if let pid = launcher.runningPid(descriptor.name) {
                running.append("\(descriptor.name) (pid \(pid))")
                continue
            }
            let configuration = try ServiceConfiguration(descriptor: descriptor, source: launcher.source)
            let host = ["0.0.0.0", "::", ""].contains(configuration.host) ? "127.0.0.1" : configuration.host
            // Our services answer 200 `{"status":"alive"}` there; anything else on the port (another
            // program's exporter, a 404) is not one of them.
            if let live = await HealthProbe.get(host: host, port: configuration.adminPort, path: "/health/live", timeout: 1),
               live.status == 200, live.body.contains(#""alive""#) {
                running.append("\(descriptor.name) (answers on \(host):\(configuration.adminPort))")
            }
        }
        return running
    }

    /// `kb restore`: replaces every store in `KB_DATA_DIR` with the backup's copy, on a stopped
    /// system. Refuses while any service runs. Checks the whole backup first (checksums, then
    /// each store restored and opened in a staging folder beside the data, counts compared):
    /// a damaged backup changes nothing. Then each store's folder is renamed aside
    /// (`<folder>.pre-restore.<date>`) and the staged one renamed into place; when a rename
    /// fails, the ones done are undone. Returns the folders kept aside (the operator deletes
    /// them once satisfied).
    @discardableResult
    public func restore(_ folder: URL) async throws -> [URL] {
        let folder = folder.standardizedFileURL
        let manifest = try BackupManifest.read(from: folder)
        let running = try await runningServices()
        guard running.isEmpty else {
            throw LauncherError("refused: the system is running (\(running.joined(separator: ", "))); stop it with `kb down` first — a restore replaces the stores under the services")
        }
        print("Restoring \(manifest.name) (taken \(manifest.createdAt)) into \(launcher.dataDirectory.path)")
        let problems = try checkFiles(folder, manifest)
        guard problems.isEmpty else {
            throw LauncherError("refused: the backup is damaged, nothing was changed:\n  " + problems.joined(separator: "\n  "))
        }
        let stamp = Self.stamp()
        let data = launcher.dataDirectory
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let staging = data.appendingPathComponent(".restore-\(stamp)", isDirectory: true)
        try? FileManager.default.removeItem(at: staging)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: staging) }
        do {
            try await stage(folder, manifest, into: staging)
        } catch {
            throw LauncherError("refused: \(error) — nothing in \(data.path) was changed")
        }
        // Swap: every store's live folder aside, the staged one in. Locks are held so that no
        // service can start on a folder while it moves.
        var locks: [DataDirectoryLock] = []
        var done: [(live: URL, aside: URL?)] = []
        let files = FileManager.default
        do {
            for entry in manifest.stores {
                let live = data.appendingPathComponent(entry.store.dataSubdirectory, isDirectory: true)
                if files.fileExists(atPath: live.path) {
                    locks.append(try DataDirectoryLock(directory: live, owner: entry.service))
                }
                let staged = staging.appendingPathComponent(entry.store.dataSubdirectory, isDirectory: true)
                try? files.removeItem(at: staged.appendingPathComponent(".lock"))
                var aside: URL?
                if files.fileExists(atPath: live.path) {
                    let keep = data.appendingPathComponent("\(entry.store.dataSubdirectory).pre-restore.\(stamp)", isDirectory: true)
                    try files.moveItem(at: live, to: keep)
                    aside = keep
                }
                done.append((live, aside))
                try files.moveItem(at: staged, to: live)
            }
        } catch {
            for (live, aside) in done.reversed() {
                if files.fileExists(atPath: live.path) {
                    try? files.moveItem(at: live, to: staging.appendingPathComponent(live.lastPathComponent + ".undone"))
                }
                if let aside { try? files.moveItem(at: aside, to: live) }
            }
            throw LauncherError("the restore failed while moving the stores into place (\(error)); what was there is back in place")
        }
        locks.removeAll()
        let kept = done.compactMap(\.aside)
        print("Restored \(manifest.stores.map(\.store.rawValue).joined(separator: ", ")) from \(manifest.name).")
        if !kept.isEmpty {
            print("What was there is kept aside (delete it once satisfied):")
            for url in kept { print("  \(url.path)") }
        }
        return kept
    }
}
