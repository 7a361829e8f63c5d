import Foundation
import KBProto
import KBRPC
import KBTestSupport
import LauncherKit
import Testing

/// `kb backup`, `kb verify-backup`, `kb restore` and `kb drill` run as an operator would, on the
/// real services (graph-store, vector-search, budget-service, inference-gateway) started by
/// `kb up --detach` on free loopback ports, holding real data: a team's entities and relations,
/// points in a collection, recorded costs, a cached completion.
@Suite("Whole-system backup, restore and disaster-recovery drill", .serialized)
struct SystemBackupTests {
    static let answer = ScriptedHTTPServer.CannedAnswer(body: #"{"id":"c","object":"chat.completion","model":"mock-1","choices":[{"index":0,"message":{"role":"assistant","content":"restore from the nightly backup"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#)
    static let question = "How do we recover the knowledge base after losing the disk?"

    /// A system under `kb up --detach` in a folder of its own.
    final class System {
        let folder = temporaryDirectory("kb-system-backup")
        let bin: URL
        let data: URL
        let backups: URL
        let provider: ScriptedHTTPServer
        var environment: [String: String]
        let ports: [String: Int]

        init() throws {
            bin = folder.appendingPathComponent("bin", isDirectory: true)
            data = folder.appendingPathComponent("data", isDirectory: true)
            backups = folder.appendingPathComponent("backups", isDirectory: true)
            try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
            for name in ["graph-store", "vector-search", "budget-service", "inference-gateway"] {
                try FileManager.default.createSymbolicLink(at: bin.appendingPathComponent(name), withDestinationURL: builtProductsDirectory.appendingPathComponent(name))
            }
            provider = try ScriptedHTTPServer()
            provider.answer("/v1/chat/completions", with: SystemBackupTests.answer)
            let providers = try writeProvidersFile("""
                providers:
                  \(provider.localProvider("only"))
                """, in: folder)
            var ports: [String: Int] = [:]
            var environment = [
                "KB_DATA_DIR": data.path, "KB_BACKUP_DIR": backups.path, "KB_LOG_FORMAT": "json",
                "KB_VECTOR_QDRANT_PORT": "0", "KB_INFERENCE_INDEXER": "off", "KB_INFERENCE_PROVIDERS_FILE": providers.path,
            ]
            for prefix in ["KB_GRAPH_STORE", "KB_VECTOR_SEARCH", "KB_BUDGET_SERVICE", "KB_INFERENCE_GATEWAY"] {
                let port = freePort(), admin = freePort()
                ports[prefix] = port
                environment["\(prefix)_PORT"] = "\(port)"
                environment["\(prefix)_ADMIN_PORT"] = "\(admin)"
                environment["\(prefix)_ADDR"] = "127.0.0.1:\(port)"
            }
            self.environment = environment
            self.ports = ports
        }

        func kb(_ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
            try runProgram(builtProductsDirectory.appendingPathComponent("kb"), arguments + ["--bin-dir", bin.path], environment: environment)
        }

        func ukb(_ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
            try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), arguments, environment: environment)
        }

        func client(_ prefix: String) -> RPCClient {
            RPCClient(configuration: .init(host: "127.0.0.1", port: ports[prefix]!))
        }

        /// Starts the system and fills every store.
        func upWithData() async throws {
            let up = try kb("up", "--detach", "--timeout", "120")
            try #require(up.status == 0, "kb up: \(up.stdout)\n\(up.stderr)")
            // The graph: 12 entities and 11 relations in team "drill", imported with ukb.
            let entities = (0..<12).map { ["name": "Service \($0)", "entityType": $0 % 2 == 0 ? "Component" : "Pattern", "observations": ["observation \($0) a", "observation \($0) b"], "significance": 3 + $0 % 5] as [String: Any] }
            let relations = (1..<12).map { ["from": "Service \($0)", "to": "Service \($0 - 1)", "relationType": "depends_on"] }
            let file = folder.appendingPathComponent("import.json")
            try JSONSerialization.data(withJSONObject: ["entities": entities, "relations": relations]).write(to: file)
            let imported = try ukb("import", file.path, "--team", "drill")
            try #require(imported.status == 0, "ukb import: \(imported.stderr)")
            // Vectors: 20 points with payloads in a collection of their own.
            let vectors = client("KB_VECTOR_SEARCH")
            defer { Task { await vectors.close() } }
            _ = try await vectors.call(VectorSearchMethods.createCollection, .with {
                $0.config = .with { $0.name = "drill_points"; $0.dimension = 4; $0.distance = .cosine; $0.textField = "text" }
            })
            _ = try await vectors.call(VectorSearchMethods.upsertPoints, .with {
                $0.collection = "drill_points"
                $0.points = (0..<20).map { index in
                    .with {
                        $0.id = "p\(index)"
                        $0.vector = [Float(index), 1, Float(index % 3), 0.5]
                        $0.payload = ["text": .with { $0.text = "point number \(index)" }, "rank": .with { $0.integer = Int64(index) }]
                    }
                }
            })
            // Costs: 5 events.
            let budget = client("KB_BUDGET_SERVICE")
            defer { Task { await budget.close() } }
            for index in 0..<5 {
                _ = try await budget.call(BudgetMethods.recordCost, .with {
                    $0.event = .with {
                        $0.requestID = "drill-\(index)"; $0.provider = "groq"; $0.model = "llama-3.3-70b-versatile"; $0.operation = "extraction"
                        $0.project = "drill"; $0.inputTokens = 1000; $0.outputTokens = 200; $0.costUsd = .with { $0.value = 0.001 * Double(index + 1) }
                    }
                })
            }
            // A cached completion.
            let first = try await ask()
            try #require(!first.cached && provider.received.count == 1, "\(first)")
            #expect(try await ask().cached, "the answer is in the completion cache")
        }

        func ask() async throws -> Kb_Inference_V1_CompletionResponse {
            let gateway = client("KB_INFERENCE_GATEWAY")
            defer { Task { await gateway.close() } }
            return try await gateway.call(InferenceGatewayMethods.complete, .with {
                $0.messages = [.with { $0.role = "user"; $0.content = SystemBackupTests.question }]
                $0.model = "only/mock-1"
                $0.temperature = .with { $0.value = 0 }
            })
        }

        /// A sample of records of every store, to compare before and after.
        struct Sample: Equatable {
            var export: String
            var stats: String
            var points: [Kb_Vector_V1_Point]
            var events: [Kb_Budget_V1_CostEvent]
        }

        func sample() async throws -> Sample {
            let exported = folder.appendingPathComponent("export-\(UUID().uuidString).json")
            let export = try ukb("export", exported.path, "--team", "drill")
            try #require(export.status == 0, "ukb export: \(export.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: exported)) as? [String: Any] ?? [:]
            let records = try JSONSerialization.data(withJSONObject: ["entities": json["entities"] ?? [], "relations": json["relations"] ?? []], options: [.sortedKeys])
            let stats = try ukb("query", "--stats")
            let vectors = client("KB_VECTOR_SEARCH"), budget = client("KB_BUDGET_SERVICE")
            defer { Task { await vectors.close(); await budget.close() } }
            let points = try await vectors.call(VectorSearchMethods.getPoints, .with { $0.collection = "drill_points"; $0.ids = ["p0", "p7", "p19"]; $0.withPayload = true; $0.withVector = true }).points
            let events = try await budget.call(BudgetMethods.listEvents, .with { $0.limit = 100 }).events
            return Sample(export: String(decoding: records, as: UTF8.self), stats: stats.stdout, points: points, events: events)
        }

        /// Every file under the data directory (but the launcher's logs and pid files) with its bytes.
        func dataFiles() throws -> [String: Data] {
            try SystemBackupTests.files(in: data).filter { !$0.key.hasPrefix("logs/") && !$0.key.hasPrefix("run/") }
        }

        func down() {
            _ = try? kb("down")
            provider.stop()
        }
    }

    /// Every file below `folder` (relative paths) with its bytes.
    static func files(in folder: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let walk = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey])!
        for case let url as URL in walk where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
            files[String(url.standardizedFileURL.path.dropFirst(folder.standardizedFileURL.path.count + 1))] = try Data(contentsOf: url)
        }
        return files
    }

    @Test("kb drill on a system holding a graph, vectors, costs and a cached answer: backup, stop, wipe, restore, start, verify — counts and sampled records identical, each step timed")
    func drill() async throws {
        let system = try System()
        defer { system.down() }
        try await system.upWithData()
        let before = try await system.sample()
        #expect(before.points.count == 3 && before.events.count == 5 && before.stats.contains("Total Entities: 12"), "\(before.stats)")

        let refused = try system.kb("drill")
        #expect(refused.status == 1 && refused.stderr.contains("--yes"), "the drill stops the system only when confirmed")

        let drill = try system.kb("drill", "--yes")
        try #require(drill.status == 0, "kb drill: \(drill.stdout)\n\(drill.stderr)")
        for step in ["backup", "stop", "wipe", "restore", "start", "verify"] {
            #expect(drill.stdout.contains("== \(step)") && drill.stdout.contains("\(step) took"), "step \(step) timed: \(drill.stdout)")
        }
        #expect(drill.stdout.contains("RTO (restore + start + verify):"))
        #expect(drill.stdout.contains("Disaster-recovery drill passed"))

        // The backup: one folder named as the guide names backups, with its manifest.
        let folders = try FileManager.default.contentsOfDirectory(atPath: system.backups.path).filter { $0.hasPrefix("knowledge-system_") }
        try #require(folders.count == 1)
        #expect(folders[0].range(of: #"^knowledge-system_\d{8}_\d{6}$"#, options: .regularExpression) != nil, "\(folders[0])")
        let manifest = try BackupManifest.read(from: system.backups.appendingPathComponent(folders[0]))
        #expect(manifest.entry(.graph)?.counts == ["entities": 12, "relations": 11])
        #expect(manifest.entry(.budget)?.counts["events"] == 5)
        #expect(manifest.entry(.vectors)?.collections?.first { $0.name == "drill_points" }?.points == 20)
        #expect((manifest.entry(.inferenceCache)?.counts.filter { $0.key.hasPrefix("rows.") }.values.reduce(0, +) ?? 0) >= 1, "the cached answer is in the backup")
        #expect(manifest.stores.allSatisfy { !$0.files.isEmpty && $0.files.allSatisfy { $0.sha256.count == 64 } })
        #expect(manifest.stores.allSatisfy { $0.serviceVersion == manifest.systemVersion }, "every service answered with its version")

        // The restarted system holds the same records, and the wiped copy is gone.
        let after = try await system.sample()
        #expect(after == before)
        #expect(try system.kb("status").status == 0)
        let cached = try await system.ask()
        #expect(cached.cached && system.provider.received.count == 1, "the cached answer survived the drill; the provider was not called again")
        #expect(try FileManager.default.contentsOfDirectory(atPath: system.data.path).allSatisfy { !$0.hasPrefix(".drill-wiped") && !$0.hasPrefix(".restore-") })
    }

    @Test("verify-backup passes a sound backup and catches a flipped byte or a count that differs; restore refuses while the system runs and changes nothing from a damaged backup; a sound restore keeps what was there aside")
    func verifyAndRestore() async throws {
        let system = try System()
        defer { system.down() }
        try await system.upWithData()

        let outside = try system.kb("backup", system.folder.appendingPathComponent("elsewhere").path)
        #expect(outside.status == 1 && outside.stderr.contains("outside the backup folder"), "\(outside.stderr)")

        let backup = try system.kb("backup")
        try #require(backup.status == 0, "kb backup: \(backup.stdout)\n\(backup.stderr)")
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: system.backups.path).first { $0.hasPrefix("knowledge-system_") })
        let sound = system.backups.appendingPathComponent(name)
        let manifest = try BackupManifest.read(from: sound)
        let written = try Self.files(in: sound)
        #expect(Set(written.keys) == Set(manifest.stores.flatMap(\.files).map(\.path) + [BackupManifest.fileName]), "the manifest lists every file of the backup: \(written.keys.sorted())")

        let verified = try system.kb("verify-backup", sound.path)
        #expect(verified.status == 0 && verified.stdout.contains("PASS"), "\(verified.stdout)\n\(verified.stderr)")
        #expect(try Self.files(in: sound) == written, "verifying never changes the backup")
        #expect(try system.kb("verify-backup", sound.path).status == 0, "a backup verifies again")

        // One flipped byte in the middle of the largest file.
        let flipped = system.folder.appendingPathComponent("flipped", isDirectory: true)
        try FileManager.default.copyItem(at: sound, to: flipped)
        let victim = try #require(manifest.stores.flatMap(\.files).max { $0.bytes < $1.bytes })
        let victimURL = flipped.appendingPathComponent(victim.path)
        var bytes = try Data(contentsOf: victimURL)
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: victimURL)
        let caught = try system.kb("verify-backup", flipped.path)
        #expect(caught.status == 1 && caught.stderr.contains("FAIL") && caught.stderr.contains(victim.path), "\(caught.stdout)\n\(caught.stderr)")

        // Sound files, but a manifest that says one entity more: caught by opening the copy.
        let miscounted = system.folder.appendingPathComponent("miscounted", isDirectory: true)
        try FileManager.default.copyItem(at: sound, to: miscounted)
        var wrong = manifest
        wrong.stores = wrong.stores.map { store in
            var store = store
            if store.store == .graph { store.counts["entities"] = 13 }
            return store
        }
        try wrong.write(to: miscounted)
        let mismatch = try system.kb("verify-backup", miscounted.path)
        #expect(mismatch.status == 1 && mismatch.stderr.contains("entities: the manifest says 13, the restored copy holds 12"), "\(mismatch.stderr)")

        // Restore refuses while the system runs.
        let running = try system.kb("restore", sound.path)
        #expect(running.status == 1 && running.stderr.contains("refused: the system is running"), "\(running.stderr)")

        let down = try system.kb("down")
        try #require(down.status == 0)
        let untouched = try system.dataFiles()
        for damaged in [flipped, miscounted] {
            let refused = try system.kb("restore", damaged.path)
            #expect(refused.status == 1 && refused.stderr.contains("refused") && refused.stderr.contains("nothing"), "\(refused.stderr)")
            #expect(try system.dataFiles() == untouched, "a damaged backup changes nothing in the data directory")
        }

        let restored = try system.kb("restore", sound.path)
        #expect(restored.status == 0, "\(restored.stdout)\n\(restored.stderr)")
        #expect(try Self.files(in: sound) == written, "restoring never changes the backup")
        let names = try FileManager.default.contentsOfDirectory(atPath: system.data.path)
        for store in SystemStore.allCases {
            #expect(names.contains { $0.hasPrefix("\(store.dataSubdirectory).pre-restore.") }, "the previous \(store.dataSubdirectory) is kept aside: \(names)")
        }
        let up = try system.kb("up", "--detach", "--timeout", "120")
        try #require(up.status == 0, "\(up.stderr)")
        #expect(try system.ukb("query", "--stats").stdout.contains("Total Entities: 12"))
    }

    @Test("the guide's scripts on kb: backup-knowledge-system.sh backs up, verify-backups.sh passes the newest backup, disaster-recovery.sh BACKUP_DATE brings the system back to it")
    func guideScripts() async throws {
        let system = try System()
        defer { system.down() }
        try await system.upWithData()
        // The scripts find kb and ukb in KB_BIN_DIR, and kb finds the services beside itself:
        // hard links (not symbolic ones, which kb resolves) put them in the test's folder.
        for tool in ["kb", "ukb"] {
            try FileManager.default.linkItem(at: builtProductsDirectory.appendingPathComponent(tool), to: system.bin.appendingPathComponent(tool))
        }
        let environment = system.environment.merging(["KB_BIN_DIR": system.bin.path]) { $1 }
        func script(_ name: String, _ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
            try runProgram(URL(fileURLWithPath: "/bin/bash"), [packageRoot.appendingPathComponent("deploy/scripts/\(name)").path] + arguments, environment: environment)
        }

        let backup = try script("backup-knowledge-system.sh")
        try #require(backup.status == 0, "\(backup.stdout)\n\(backup.stderr)")
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: system.backups.path).first { $0.hasPrefix("knowledge-system_") })
        #expect(try system.ukb("add-entity", "--name", "Written after the backup", "--type", "Note", "--team", "drill").status == 0)

        let verify = try script("verify-backups.sh")
        #expect(verify.status == 0 && verify.stdout.contains("PASS: Backup verification successful for \(name)"), "\(verify.stdout)\n\(verify.stderr)")

        let recovery = try script("disaster-recovery.sh", String(name.dropFirst("knowledge-system_".count)))
        #expect(recovery.status == 0 && recovery.stdout.contains("Disaster recovery completed successfully"), "\(recovery.stdout)\n\(recovery.stderr)")
        #expect(recovery.stdout.contains("Total Entities: 12"), "\(recovery.stdout)")
        #expect(try system.ukb("show", "Written after the backup", "--team", "drill").status == 1, "the system is back at the backup's state")
    }
}
