import Foundation
import KBTestSupport
import Testing

/// The operations guides' Qdrant commands, read from the guides themselves
/// (`../shared/seeds/000_…` and `003_…`), run with `bash` against the Qdrant port.
enum GuideCommands {
    static let seeds: URL = {
        let beside = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/seeds")
        if FileManager.default.fileExists(atPath: beside.path) { return beside }
        return URL(fileURLWithPath: "/work/shared/seeds")
    }()

    /// The text of the seed file whose name starts with `prefix`.
    static func guide(_ prefix: String) throws -> String {
        let names = try FileManager.default.contentsOfDirectory(atPath: seeds.path).filter { $0.hasPrefix(prefix) }.sorted()
        let name = try #require(names.first, "no \(prefix)* in \(seeds.path)")
        return try String(contentsOf: seeds.appendingPathComponent(name), encoding: .utf8)
    }

    /// Every `curl` command aimed at Qdrant (port 6333 or `$QDRANT_URL`), continuation lines and
    /// multi-line quoted bodies joined, cut out of what surrounds it (`STATUS=$(…)`, `if … ; then`,
    /// `|| { … }`).
    static func qdrantCommands(in text: String) -> [String] {
        var commands: [String] = []
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)[...]
        while let first = lines.popFirst() {
            var command = first
            // A `-d '{` body spans lines until its quote closes (only on curl lines: prose has apostrophes).
            while command.hasSuffix("\\") || (command.contains("curl ") && command.filter({ $0 == "'" }).count % 2 == 1), let next = lines.popFirst() {
                command = command.hasSuffix("\\") ? String(command.dropLast()) + " " + next.trimmingCharacters(in: .whitespaces) : command + "\n" + next
            }
            guard let start = command.range(of: "curl ") else { continue }
            guard command.contains(":6333") || command.contains("$QDRANT_URL") else { continue }
            let wrapped = command[..<start.lowerBound].contains("$(")
            var cut = String(command[start.lowerBound...])
            if let or = cut.range(of: " || ") { cut = String(cut[..<or.lowerBound]) }
            if let then = cut.range(of: "; then") { cut = String(cut[..<then.lowerBound]) }
            cut = cut.trimmingCharacters(in: .whitespaces)
            if wrapped, cut.hasSuffix(")") { cut.removeLast() }
            commands.append(cut)
        }
        return commands
    }

    /// A command with Qdrant's addresses pointed at `base`, and the guide's elided vector
    /// (`[0.1, 0.2, 0.3, ...]`) filled to `dimension` values.
    static func pointed(_ command: String, at base: String, dimension: Int = 384) -> String {
        var command = command
        for host in ["http://localhost:6333", "http://qdrant-service:6333", "http://qdrant:6333"] {
            command = command.replacingOccurrences(of: host, with: base)
        }
        if let elided = command.range(of: #"\[[-0-9., ]*\.\.\.\]"#, options: .regularExpression) {
            let given = command[elided].dropFirst().dropLast().split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            let values = (0..<dimension).map { $0 < given.count ? given[$0] : Double($0 % 10) / 10 }
            command.replaceSubrange(elided, with: "[" + values.map { String($0) }.joined(separator: ", ") + "]")
        }
        return command
    }
}

@Suite("the guides' Qdrant runbooks against the Qdrant port", .serialized)
struct QdrantRunbookTests {
    /// A `curl` that reports each answer's HTTP status on stderr (`HTTP 200`), so a command
    /// without `-f` still fails the test on an error status.
    static func curlWrapper() throws -> URL {
        let folder = temporaryDirectory("kb-curl")
        let wrapper = folder.appendingPathComponent("curl")
        try "#!/bin/sh\nexec /usr/bin/curl \"$@\" -w '%{stderr}HTTP %{http_code}\\n'\n".write(to: wrapper, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper.path)
        return folder
    }

    /// Creates the guides' collections that are missing (a command before may have deleted one,
    /// as rebuild-qdrant-from-graph.sh does before re-creating them).
    static func ensureCollections(_ server: QdrantUnderTest) async throws {
        for (name, size) in [("knowledge_384", 384), ("knowledge_1536", 1536), ("aegis_docs_v2", 384)] where try await server.call("GET", "/collections/\(name)").status == 404 {
            _ = try await server.result("PUT", "/collections/\(name)", #"{"vectors": {"size": \#(size), "distance": "Cosine"}}"#)
        }
    }

    @Test("every Qdrant curl command of the operations guide and of the Aegis guide succeeds against the Qdrant port")
    func guideCommandsSucceed() async throws {
        let server = try await QdrantUnderTest.start()
        defer { Task { await server.vectors.service.stop() } }
        let wrapper = try Self.curlWrapper()
        for (prefix, collection, least) in [("000_", "knowledge_384", 15), ("003_", "aegis_docs_v2", 9)] {
            let commands = GuideCommands.qdrantCommands(in: try GuideCommands.guide(prefix))
            #expect(commands.count >= least, "\(prefix): \(commands)")
            for command in commands {
                try await Self.ensureCollections(server)
                let pointed = GuideCommands.pointed(command, at: server.base)
                var run: (status: Int32, stdout: String, stderr: String) = (0, "", "")
                // The guide's monitoring loop waits for `.result.optimizer_status.ok` to be true.
                for _ in 0..<100 {
                    run = try runProgram(URL(fileURLWithPath: "/bin/bash"), ["-c", pointed], environment: [
                        "PATH": wrapper.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"),
                        "COLLECTION": collection, "QDRANT_URL": server.base, "TIMEOUT": "10",
                    ])
                    if !command.contains("optimizer_status.ok") || run.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "true" { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                let statuses = run.stderr.split(separator: "\n").filter { $0.hasPrefix("HTTP ") }.map { String($0.dropFirst(5)) }
                #expect(run.status == 0, "\(command)\n→ \(run.stdout) \(run.stderr)")
                #expect(!statuses.isEmpty && statuses.allSatisfy { $0.hasPrefix("2") }, "\(command)\n→ \(run.stdout) \(run.stderr)")
                if command.contains("optimizer_status.ok") { #expect(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "true") }
            }
        }
    }

    @Test("deploy/scripts/optimize-qdrant.sh and rebuild-qdrant-index.sh run end to end, with the token")
    func runbookScriptsRun() async throws {
        let server = try await QdrantUnderTest.start(environment: ["KB_AUTH_TOKEN": "runbook"])
        defer { Task { await server.vectors.service.stop() } }
        let environment = ["QDRANT_URL": server.base, "KB_AUTH_TOKEN": "runbook"]
        let optimize = try runProgram(URL(fileURLWithPath: "/bin/bash"), [packageRoot.appendingPathComponent("deploy/scripts/optimize-qdrant.sh").path], environment: environment)
        #expect(optimize.status == 0, "\(optimize.stdout) \(optimize.stderr)")
        #expect(optimize.stdout.contains("knowledge_1536 optimized"))
        let rebuild = try runProgram(URL(fileURLWithPath: "/bin/bash"), [packageRoot.appendingPathComponent("deploy/scripts/rebuild-qdrant-index.sh").path, "knowledge_384"], environment: environment)
        #expect(rebuild.status == 0, "\(rebuild.stdout) \(rebuild.stderr)")
        #expect(rebuild.stdout.contains("Optimization completed"))
        #expect(rebuild.stdout.contains("Search latency"))
        let snapshots = try FileManager.default.contentsOfDirectory(atPath: server.vectors.backupDirectory.path)
        #expect(snapshots.contains { $0.hasPrefix("knowledge_384-") })
        let refused = try runProgram(URL(fileURLWithPath: "/bin/bash"), [packageRoot.appendingPathComponent("deploy/scripts/optimize-qdrant.sh").path], environment: ["QDRANT_URL": server.base])
        #expect(refused.status != 0, "without the token the port refuses")
    }
}
