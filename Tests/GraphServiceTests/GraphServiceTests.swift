import Foundation
import KBKnowledge
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// A graph-store process on free ports, and `ukb` pointed at it.
struct GraphStoreUnderTest {
    let service: ServiceProcess
    /// The store's backup folder (`KB_BACKUP_DIR`), a fresh one per start.
    let backupDirectory: URL

    static func start(dataDirectory: URL? = nil) async throws -> GraphStoreUnderTest {
        let backups = temporaryDirectory("graph-backups")
        let service = try ServiceProcess(executable: "graph-store", envPrefix: "KB_GRAPH_STORE", environment: ["KB_BACKUP_DIR": backups.path], dataDirectory: dataDirectory)
        try await service.waitUntilReady()
        return GraphStoreUnderTest(service: service, backupDirectory: backups)
    }

    var environment: [String: String] {
        ["KB_GRAPH_STORE_ADDR": "127.0.0.1:\(service.port)", "KB_DATA_DIR": service.dataDirectory.path, "KB_TEAM": "", "KB_BACKUP_DIR": backupDirectory.path]
    }

    /// Runs `ukb` with `arguments` against this store.
    func ukb(_ arguments: String..., in directory: URL? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), arguments, environment: environment, currentDirectory: directory)
    }

    func client() -> RPCClient {
        RPCClient(configuration: .init(host: "127.0.0.1", port: service.port))
    }
}

/// The number after `label:` in `ukb query --stats` output, as the operations scripts read it.
func statLine(_ output: String, _ label: String) -> Int? {
    output.split(separator: "\n").first { $0.hasPrefix(label) }.flatMap { $0.split(separator: " ").last.flatMap { Int($0) } }
}

@Suite("graph-store and ukb, as processes", .serialized)
struct GraphServiceTests {
    @Test("import of the installed Debian packages, export, import into a fresh store, export: identical files, nothing lost")
    func importExportRoundTrip() async throws {
        let work = temporaryDirectory("ukb-roundtrip")
        let (original, entityCount, relationCount) = try AptGraph.sharedMemoryJSON()
        #expect(entityCount > 50 && relationCount > 50, "a real graph")
        let source = work.appendingPathComponent("shared-memory-apt.json")
        try original.write(to: source)

        let first = try await GraphStoreUnderTest.start()
        let imported = try first.ukb("import", source.path)
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout.contains("imported \(entityCount) entities"))
        let stats = try first.ukb("query", "--stats")
        #expect(statLine(stats.stdout, "Total Entities:") == entityCount)
        #expect(statLine(stats.stdout, "Total Relations:") == relationCount)
        #expect(stats.stdout.contains("Entities by type:"))
        let teamStats = try first.ukb("query", "--stats", "--team", "apt")
        #expect(statLine(teamStats.stdout, "Total Entities:") == entityCount)
        #expect(try first.ukb("verify").status == 0)

        let exported1 = work.appendingPathComponent("export-1.json")
        #expect(try first.ukb("export", exported1.path, "--team", "apt").status == 0)
        let second = try await GraphStoreUnderTest.start()
        #expect(try second.ukb("import", exported1.path).status == 0)
        let exported2 = work.appendingPathComponent("export-2.json")
        #expect(try second.ukb("export", exported2.path, "--team", "apt").status == 0)
        let bytes1 = try Data(contentsOf: exported1), bytes2 = try Data(contentsOf: exported2)
        #expect(bytes1 == bytes2, "export → import → export is byte-identical")

        // And the export holds exactly what the generated file held.
        let before = try SharedMemoryDocument(json: original), after = try SharedMemoryDocument(json: bytes1)
        #expect(Set(before.entities.map(\.name)) == Set(after.entities.map(\.name)))
        #expect(Set(before.relations.map { "\($0.from) \($0.relationType) \($0.to)" }) == Set(after.relations.map { "\($0.from) \($0.relationType) \($0.to)" }))
        let beforeByName = Dictionary(uniqueKeysWithValues: before.entities.map { ($0.name, $0) })
        for entity in after.entities {
            let expected = beforeByName[entity.name]!
            #expect(entity.observations == expected.observations && entity.significance == expected.significance && entity.confidence == expected.confidence && entity.metadata == expected.metadata && entity.source == .auto)
        }
        await first.service.stop()
        await second.service.stop()
    }

    @Test("a malformed import changes nothing and says which entry is wrong and why")
    func malformedImportChangesNothing() async throws {
        let work = temporaryDirectory("ukb-malformed")
        let store = try await GraphStoreUnderTest.start()
        defer { Task { await store.service.stop() } }
        let badName = work.appendingPathComponent("bad-name.json")
        try Data(#"{"entities": [{"name": "Fine", "entityType": "Pattern"}, {"name": "Also fine", "entityType": "Pattern"}, {"name": "x", "entityType": "T"}, {"name": "bad/name", "entityType": "Bug"}], "relations": []}"#.utf8).write(to: badName)
        let result = try store.ukb("import", badName.path, "--team", "fresh")
        #expect(result.status == 1)
        #expect(result.stderr.contains("entities[3].name"))
        #expect(result.stderr.contains("nothing was imported"))
        #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")

        let missingEnd = work.appendingPathComponent("missing-end.json")
        try Data(#"{"entities": [{"name": "A", "entityType": "Pattern"}], "relations": [{"from": "A", "to": "Nowhere", "relationType": "uses"}]}"#.utf8).write(to: missingEnd)
        let second = try store.ukb("import", missingEnd.path, "--team", "fresh")
        #expect(second.status == 1)
        #expect(second.stderr.contains("relations[0].to: entity 'Nowhere'"))

        let notJSON = work.appendingPathComponent("broken.json")
        try Data("{\"entities\": [".utf8).write(to: notJSON)
        #expect(try store.ukb("import", notJSON.path, "--team", "fresh").stderr.contains("not valid JSON"))

        let stats = try store.ukb("query", "--stats", "--team", "fresh")
        #expect(statLine(stats.stdout, "Total Entities:") == 0)
        #expect(statLine(stats.stdout, "Total Relations:") == 0)
    }

    @Test("every ukb failure is a non-zero exit and one line of reason")
    func failuresAreOneLine() async throws {
        let store = try await GraphStoreUnderTest.start()
        defer { Task { await store.service.stop() } }
        #expect(try store.ukb("add-entity", "--name", "Real", "--type", "Pattern", "--observation", "it exists", "--team", "t").status == 0)
        for (arguments, expected) in [
            (["show", "Missing", "--team", "t"], "NOT_FOUND"),
            (["add-entity", "--name", "bad:name", "--type", "X", "--team", "t"], "INVALID_ARGUMENT"),
            (["add-relation", "--from", "Real", "--to", "Ghost", "--type", "uses", "--team", "t"], "FAILED_PRECONDITION"),
            (["neighbors", "Real", "--depth", "9", "--team", "t"], "depth"),
            (["query", "--stats", "--team", "no:team"], "team"),
        ] {
            let result = try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), arguments, environment: store.environment)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.hasPrefix("ukb: ") && result.stderr.contains(expected), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }
        let json = try store.ukb("show", "Real", "--team", "t", "--json")
        #expect(json.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((object?["entity"] as? [String: Any])?["name"] as? String == "Real")
        let unreachable = try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), ["query", "--stats"], environment: ["KB_GRAPH_STORE_ADDR": "127.0.0.1:\(freePort())"])
        #expect(unreachable.status == 1 && unreachable.stderr.contains("not reachable"), "\(unreachable.stderr)")
    }

    @Test("kill -9 during a write load: after restart every acknowledged write is there and the indexes agree")
    func killNineKeepsAcknowledgedWrites() async throws {
        let first = try await GraphStoreUnderTest.start()
        let acknowledged = AcknowledgedWrites()
        let writers = (0..<8).map { writer in
            Task {
                let client = first.client()
                defer { Task { await client.close() } }
                var index = 0
                while true {
                    let name = "w\(writer) n\(index)"
                    do {
                        _ = try await client.call(GraphStoreMethods.putEntities, .with {
                            $0.team = "load"
                            $0.entities = [.with { $0.name = name; $0.entityType = "Load"; $0.observations = [.with { $0.content = "written by \(writer) as \(index)" }] }]
                        })
                        acknowledged.entity(name)
                        if index > 0 {
                            _ = try await client.call(GraphStoreMethods.putRelations, .with {
                                $0.team = "load"
                                $0.relations = [.with { $0.from = name; $0.relationType = "after"; $0.to = "w\(writer) n\(index - 1)" }]
                            })
                            acknowledged.relation(name)
                        }
                    } catch {
                        return
                    }
                    index += 1
                }
            }
        }
        try await Task.sleep(for: .milliseconds(1500))
        await first.service.stop(signal: SIGKILL)
        for writer in writers { await writer.value }
        let (entities, relations) = acknowledged.snapshot
        #expect(entities.count > 50, "the load ran")

        let second = try await GraphStoreUnderTest.start(dataDirectory: first.service.dataDirectory)
        let client = second.client()
        for name in entities {
            let response = try await client.call(GraphStoreMethods.getEntity, .with { $0.team = "load"; $0.name = name })
            #expect(response.entity.name == name)
        }
        for name in relations {
            let response = try await client.call(GraphStoreMethods.getEntity, .with { $0.team = "load"; $0.name = name })
            #expect(response.outbound.count == 1, "relation from \(name)")
        }
        let verify = try await client.call(GraphStoreMethods.verify, .init())
        #expect(verify.ok, "\(verify.problems)")
        #expect(verify.entities >= Int64(entities.count))
        await client.close()
        await second.service.stop()
    }

    @Test("ukb backup while writing; restore is refused while the store runs; restored store verifies with the backup's counts")
    func backupRestoreThroughUKB() async throws {
        let work = temporaryDirectory("ukb-backup")
        let (original, _, _) = try AptGraph.sharedMemoryJSON()
        let source = work.appendingPathComponent("apt.json")
        try original.write(to: source)
        let store = try await GraphStoreUnderTest.start()
        #expect(try store.ukb("import", source.path).status == 0)
        let writer = Task {
            let client = store.client()
            var index = 0
            while !Task.isCancelled {
                _ = try? await client.call(GraphStoreMethods.putEntities, .with { $0.team = "live"; $0.entities = [.with { $0.name = "live \(index)"; $0.entityType = "Live" }] })
                index += 1
            }
            await client.close()
        }
        try await Task.sleep(for: .milliseconds(100))
        let backup = try store.ukb("backup", "backup-1", "--json", in: work)
        writer.cancel()
        await writer.value
        #expect(backup.status == 0, "\(backup.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any]
        let backedUpEntities = Int(report?["entities"] as? String ?? "") ?? -1
        #expect(backedUpEntities > 0)
        let backupPath = store.backupDirectory.appendingPathComponent("backup-1").path
        #expect(report?["directory"] as? String == backupPath, "a relative backup path is taken inside KB_BACKUP_DIR, not the caller's folder")

        let refused = try store.ukb("restore", backupPath)
        #expect(refused.status == 1 && refused.stderr.contains("is running"), "\(refused.stderr)")
        let locked = try runProgram(builtProductsDirectory.appendingPathComponent("graph-store"), ["restore", backupPath], environment: ["KB_DATA_DIR": store.service.dataDirectory.path])
        #expect(locked.status == 75, "graph-store restore refuses a directory in use: \(locked.stderr)")

        // Change the store after the backup, stop it, restore, start again.
        #expect(try store.ukb("add-entity", "--name", "After Backup", "--type", "Note", "--team", "apt").status == 0)
        #expect(await store.service.stop() == 0)
        let restored = try store.ukb("restore", backupPath)
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(restored.stdout.contains("restored \(backedUpEntities) entities"))
        let again = try await GraphStoreUnderTest.start(dataDirectory: store.service.dataDirectory)
        let stats = try again.ukb("query", "--stats")
        #expect(statLine(stats.stdout, "Total Entities:") == backedUpEntities)
        #expect(try again.ukb("show", "After Backup", "--team", "apt").status == 1)
        #expect(try again.ukb("verify").status == 0)
        await again.service.stop()
    }
}

@Suite("graph-store backups stay inside KB_BACKUP_DIR", .serialized)
struct GraphBackupRootTests {
    @Test("Backup refuses a path outside the backup folder, '..', a dangling link and a linked folder, writing nothing; a relative backup lands inside and restores")
    func backupsStayInsideTheRoot() async throws {
        let fixture = try BackupRootFixture()
        let service = try ServiceProcess(executable: "graph-store", envPrefix: "KB_GRAPH_STORE", environment: ["KB_BACKUP_DIR": fixture.root.path])
        try await service.waitUntilReady()
        let store = GraphStoreUnderTest(service: service, backupDirectory: fixture.root)
        #expect(try store.ukb("add-entity", "--name", "Kept", "--type", "Note", "--team", "ops").status == 0)
        let client = store.client()
        for path in fixture.refusedPaths + [service.dataDirectory.appendingPathComponent("inside-the-data").path] {
            do {
                _ = try await client.call(GraphStoreMethods.backup, .with { $0.directory = path })
                Issue.record("backup to \(path) was written")
            } catch let error as RPCError {
                #expect(error.code == .invalidArgument && error.field == "directory", "\(path): \(error)")
            }
        }
        #expect(fixture.damage().isEmpty, "\(fixture.damage())")
        #expect(!FileManager.default.fileExists(atPath: service.dataDirectory.appendingPathComponent("inside-the-data").path))

        let made = try await client.call(GraphStoreMethods.backup, .with { $0.directory = "nightly/graph-1" })
        let inside = fixture.root.appendingPathComponent("nightly/graph-1")
        #expect(made.directory == inside.path && made.entities == 1)
        await client.close()
        #expect(try store.ukb("add-entity", "--name", "Lost", "--type", "Note", "--team", "ops").status == 0)
        #expect(await service.stop() == 0)
        let restored = try store.ukb("restore", inside.path)
        #expect(restored.status == 0, "\(restored.stderr)")
        let again = try await GraphStoreUnderTest.start(dataDirectory: service.dataDirectory)
        #expect(try again.ukb("show", "Kept", "--team", "ops").status == 0)
        #expect(try again.ukb("show", "Lost", "--team", "ops").status == 1)
        await again.service.stop()
    }
}

/// Names whose writes were acknowledged, shared by the writer tasks.
final class AcknowledgedWrites: @unchecked Sendable {
    private let lock = NSLock()
    private var entities: [String] = []
    private var relations: [String] = []

    func entity(_ name: String) { lock.withLock { entities.append(name) } }
    func relation(_ name: String) { lock.withLock { relations.append(name) } }
    var snapshot: ([String], [String]) { lock.withLock { (entities, relations) } }
}

@Suite("deploy/scripts graph backup and restore", .serialized)
struct GraphDeployScriptTests {
    @Test("graph-backup.sh packs an online backup; graph-restore.sh puts it back into a stopped store")
    func backupAndRestoreScripts() async throws {
        let store = try await GraphStoreUnderTest.start()
        let work = store.backupDirectory
        #expect(try store.ukb("add-entity", "--name", "Kept", "--type", "Note", "--team", "ops").status == 0)
        let environment = store.environment.merging(["KB_BIN_DIR": builtProductsDirectory.path]) { $1 }
        let backup = try runProgram(URL(fileURLWithPath: "/bin/bash"), [packageRoot.appendingPathComponent("deploy/scripts/graph-backup.sh").path, work.path], environment: environment)
        #expect(backup.status == 0, "\(backup.stderr)")
        let archives = try FileManager.default.contentsOfDirectory(atPath: work.path).filter { $0.hasPrefix("graph-db_") && $0.hasSuffix(".tar.gz") }
        #expect(archives.count == 1)
        #expect(try store.ukb("add-entity", "--name", "Lost", "--type", "Note", "--team", "ops").status == 0)
        await store.service.stop()
        let restore = try runProgram(URL(fileURLWithPath: "/bin/bash"), [packageRoot.appendingPathComponent("deploy/scripts/graph-restore.sh").path, work.appendingPathComponent(archives[0]).path], environment: environment)
        #expect(restore.status == 0, "\(restore.stderr)")
        let again = try await GraphStoreUnderTest.start(dataDirectory: store.service.dataDirectory)
        #expect(try again.ukb("show", "Kept", "--team", "ops").status == 0)
        #expect(try again.ukb("show", "Lost", "--team", "ops").status == 1)
        await again.service.stop()
    }
}
