import Foundation
import KBProto
import KBRPC
import KBRuntime
import KBTime

extension SystemBackup {
    /// One timed step of a drill.
    public struct DrillStep: Sendable {
        public let name: String
        public let seconds: Double
    }

    /// What a drill did and how long each step took.
    public struct DrillReport: Sendable {
        /// The backup the drill made and restored.
        public let backup: URL
        public let manifest: BackupManifest
        public let steps: [DrillStep]

        /// The recovery time: restore, start and verify (what an outage costs once the data is lost).
        public var recoverySeconds: Double { steps.filter { ["restore", "start", "verify"].contains($0.name) }.reduce(0) { $0 + $1.seconds } }
    }

    /// `kb drill`: the guide's disaster-recovery procedure run end to end on the system that
    /// `kb up --detach` manages here (a staging system: it is down from "stop" to "start"):
    /// backup → stop → wipe → restore → start → verify, each step timed.
    ///
    /// "wipe" moves the stores' folders into `<data>/.drill-wiped-<date>/` rather than deleting
    /// them: when the restore fails they are put back and the system restarted; when a later step
    /// fails they stay there (the error says so); after a verified drill they are deleted.
    /// "verify" asks the restarted services for their counts (and graph-store's and
    /// budget-service's integrity checks) and compares them with the backup's manifest.
    public func drill(into parent: String? = nil, readyTimeout: Duration = .seconds(120)) async throws -> DrillReport {
        // The session learner too: it is stopped with the rest and started again after.
        let running = Launcher.managedDescriptors.filter { launcher.runningPid($0.name) != nil }.map(\.name)
        guard running.contains(ServiceDescriptor.graphStore.name) else {
            throw LauncherError("the drill runs on the system `kb up --detach` manages, and graph-store is not running under it (no live pid file in \(launcher.runDirectory.path)); start the system with `kb up --detach` first")
        }
        var steps: [DrillStep] = []
        func step<T>(_ name: String, _ body: () async throws -> T) async throws -> T {
            print("== \(name)")
            let started = ContinuousClock.now
            let value = try await body()
            let seconds = (ContinuousClock.now - started).inSeconds
            steps.append(DrillStep(name: name, seconds: seconds))
            print(String(format: "   %@ took %.2f s", name, seconds))
            return value
        }

        // The learner writes on its own: stopped first, so nothing is written between the backup
        // and the stop (the wiped stores, deleted after a verified drill, would hold it alone).
        if running.contains(ServiceDescriptor.sessionLearner.name) {
            try await launcher.stopAll(only: [ServiceDescriptor.sessionLearner.name])
        }
        let (folder, manifest) = try await step("backup") { try await backup(into: parent) }
        _ = try await step("stop") { try await launcher.stopAll() }
        let data = launcher.dataDirectory
        let wiped = data.appendingPathComponent(".drill-wiped-\(Self.stamp())", isDirectory: true)
        let files = FileManager.default
        try await step("wipe") {
            try files.createDirectory(at: wiped, withIntermediateDirectories: true)
            for store in manifest.stores {
                let live = data.appendingPathComponent(store.store.dataSubdirectory)
                if files.fileExists(atPath: live.path) { try files.moveItem(at: live, to: wiped.appendingPathComponent(store.store.dataSubdirectory)) }
            }
            print("   the stores' folders were moved into \(wiped.path)")
        }
        do {
            try await step("restore") { try await restore(folder) }
        } catch {
            print("The restore failed; putting the wiped stores back and starting the system again.")
            for store in manifest.stores {
                let moved = wiped.appendingPathComponent(store.store.dataSubdirectory)
                let live = data.appendingPathComponent(store.store.dataSubdirectory)
                if files.fileExists(atPath: moved.path) && !files.fileExists(atPath: live.path) { try? files.moveItem(at: moved, to: live) }
            }
            _ = try? await launcher.start(only: running, readyTimeout: readyTimeout)
            throw LauncherError("the drill failed at restore: \(error)")
        }
        let keptNote = "the wiped stores are kept in \(wiped.path)"
        do {
            _ = try await step("start") { try await launcher.start(only: running, readyTimeout: readyTimeout) }
        } catch {
            throw LauncherError("the drill failed at start: \(error); \(keptNote)")
        }
        let problems = try await step("verify") { try await liveProblems(against: manifest) }
        guard problems.isEmpty else {
            throw LauncherError("the drill failed at verify: the restarted system differs from the backup:\n  \(problems.joined(separator: "\n  "))\n\(keptNote)")
        }
        try? files.removeItem(at: wiped)
        let report = DrillReport(backup: folder, manifest: manifest, steps: steps)
        print("")
        print("Disaster-recovery drill passed: counts identical after restore (\(manifest.stores.map { "\($0.store.rawValue): \(Self.describe($0.counts.filter { $0.key != "indexer_cursor" }))" }.joined(separator: "; "))).")
        print("step      seconds")
        for step in steps { print(step.name.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "%7.2f", step.seconds)) }
        print(String(format: "RTO (restore + start + verify): %.2f s; backup kept in %@", report.recoverySeconds, folder.path))
        return report
    }

    /// What the running system holds that differs from `manifest` (empty: the same counts).
    public func liveProblems(against manifest: BackupManifest) async throws -> [String] {
        var problems: [String] = []
        func compare(_ store: SystemStore, _ key: String, _ live: Int64) {
            guard let expected = manifest.entry(store)?.counts[key] else { return }
            if expected != live { problems.append("\(store.rawValue) \(key): \(live) now, \(expected) in the backup") }
        }
        for entry in manifest.stores {
            switch entry.store {
            case .graph:
                try await withLiveClient(.graphStore) { client in
                    let verify = try await client.call(GraphStoreMethods.verify, .init(), options: CallOptions(timeout: .seconds(3600)))
                    if !verify.ok { problems.append("graph verify: \(verify.problems.joined(separator: "; "))") }
                    let stats = try await client.call(GraphStoreMethods.getStats, .init())
                    compare(.graph, "entities", stats.totalEntities)
                    compare(.graph, "relations", stats.totalRelations)
                }
            case .budget:
                try await withLiveClient(.budgetService) { client in
                    let verify = try await client.call(BudgetMethods.verify, .init(), options: CallOptions(timeout: .seconds(3600)))
                    if !verify.ok { problems.append("budget verify: \(verify.problems.joined(separator: "; "))") }
                    compare(.budget, "events", verify.events)
                    compare(.budget, "archived_events", verify.archivedEvents)
                }
            case .vectors:
                try await withLiveClient(.vectorSearch) { client in
                    let list = try await client.call(VectorSearchMethods.listCollections, .init()).collections
                    for collection in entry.collections ?? [] {
                        let points = list.first { $0.config.name == collection.name }?.pointCount
                        if points != collection.points { problems.append("vectors \(collection.name): \(points.map(String.init) ?? "missing") points now, \(collection.points) in the backup") }
                    }
                    compare(.vectors, "collections", Int64(list.count))
                }
            case .inferenceCache:
                let file = cacheFile(in: launcher.dataDirectory)
                guard FileManager.default.fileExists(atPath: file.path) else {
                    if entry.counts.keys.contains(where: { $0.hasPrefix("rows.") }) { problems.append("inference-cache: \(file.path) is missing") }
                    continue
                }
                // Read-only, in one read transaction (a consistent view while the gateway serves).
                for (table, rows) in try Self.tableRows(file) { compare(.inferenceCache, "rows.\(table)", rows) }
            }
        }
        return problems
    }
}
