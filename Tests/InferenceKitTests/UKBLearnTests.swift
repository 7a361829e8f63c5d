import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// `ukb learn` over real processes: graph-store, vector-search, the gateway (its indexer, and a
/// mock OpenAI-compatible provider answering the extraction calls deterministically).
@Suite("ukb learn: knowledge from coding sessions, over real processes", .serialized)
struct UKBLearnTests {
    static func completion(_ content: String) -> ScriptedHTTPServer.CannedAnswer {
        let object: [String: Any] = [
            "id": "x", "object": "chat.completion", "model": "mock-1",
            "choices": [["index": 0, "message": ["role": "assistant", "content": content], "finish_reason": "stop"]],
            "usage": ["prompt_tokens": 200, "completion_tokens": 80, "total_tokens": 280],
        ]
        return .init(body: String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self))
    }

    static func items(intent: String? = nil, goal: String? = nil, _ items: [[String: Any]]) -> String {
        // The extraction schema requires all four; a goal left empty keeps the previous one.
        let object: [String: Any] = ["items": items, "intent": intent ?? "exploration", "intentConfidence": intent == nil ? 0.5 : 0.8, "goal": goal ?? ""]
        return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// The three services, the gateway's only provider the mock (as `local`: no budget).
    static func system(extractingWith provider: ScriptedHTTPServer) async throws -> IndexedSystem {
        let providers = try providersFile(provider, in: temporaryDirectory("kb-learn"))
        return try await IndexedSystem(gatewayEnvironment: ["KB_INFERENCE_PROVIDERS_FILE": providers.path])
    }

    /// A providers file whose only provider is the mock, as `local` (no budget).
    static func providersFile(_ provider: ScriptedHTTPServer, in folder: URL) throws -> URL {
        try writeProvidersFile("""
            activeStrategy: test
            strategies:
              test: {priority: [local]}
            providers:
              \(provider.localProvider("local"))
            """, in: folder)
    }

    nonisolated(unsafe) static let backoff: [String: Any] = [
        "name": "Exponential backoff with jitter", "type": "coding_pattern", "confidence": 0.9, "significance": 8,
        "observations": ["Retry failed calls with exponentially growing delays plus random jitter instead of a fixed delay", "A fixed retry delay can add up to exactly a caller's timeout"],
        "relations": [],
    ]

    @Test("batch: formats read, items extracted, low confidence skipped, invalid output retried then failed, duplicates merged by meaning, relations, provenance; a second run learns only what was appended; no provider: queued, learned by a later run", .timeLimit(.minutes(6)))
    func learnFromSessions() async throws {
        let provider = try ScriptedHTTPServer()
        defer { provider.stop() }
        // In file order: the Claude Code log's two exchanges, then the markdown's two.
        provider.answer("/v1/chat/completions",
            with: Self.completion(Self.items(intent: "debugging", goal: "Fix the flaky payment webhook test", [
                Self.backoff,
                ["name": "Inject the clock into retry tests", "type": "testing_strategy", "confidence": 0.8, "significance": 6,
                 "observations": ["Tests of retry logic should drive a fake clock so they never sleep"],
                 "relations": [["to": "Exponential backoff with jitter", "relationType": "tests"]]],
                ["name": "Webhook test is flaky", "type": "bug_solution", "confidence": 0.3, "significance": 2, "observations": ["The test failed once"], "relations": []],
            ])),
            Self.completion("```json\n" + Self.items([
                ["name": "Retry policy belongs in the HTTP client", "type": "architectural_decision", "confidence": 0.85, "significance": 7,
                 "observations": ["Put one retry policy in the shared HTTP client, configured per host, so no caller forgets it"],
                 "relations": [["to": "Exponential backoff with jitter", "relationType": "uses"]]],
            ]) + "\n```"),
            Self.completion(Self.items([
                // The same knowledge again, worded almost the same: merged, not a new entity.
                ["name": "Exponential backoff and jitter", "type": "coding_pattern", "confidence": 0.9, "significance": 8,
                 "observations": ["Retry failed calls with exponentially growing delays plus random jitter instead of a fixed delay", "A fixed retry delay can add up to exactly a caller's timeout", "Cap the number of attempts"],
                 "relations": []],
            ])),
            // Off the schema: the gateway asks again (here on the next provider of its plan, none of
            // which answers) and then refuses; the exchange is recorded as failed.
            Self.completion("I think the answer is a circuit breaker."),
            Self.completion(Self.items([
                ["name": "Multi-stage Docker builds cache dependencies", "type": "deployment_approach", "confidence": 0.75, "significance": 6,
                 "observations": ["Copy the dependency manifests and install them in their own layer before copying the sources"], "relations": []],
            ]))
        )
        let system = try await Self.system(extractingWith: provider)
        let sessions = temporaryDirectory("kb-learn-sessions")
        let fixtures = packageRoot.appendingPathComponent("Tests/KBSessionsTests/Fixtures")
        for name in ["claude-code-session.jsonl", "specstory-session.md"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name), to: sessions.appendingPathComponent(name))
        }
        let state = temporaryDirectory("kb-learn-state").appendingPathComponent("eng.json")
        var environment = [
            "KB_GRAPH_STORE_ADDR": "127.0.0.1:\(system.graphPort)",
            "KB_VECTOR_SEARCH_ADDR": "127.0.0.1:\(system.vectorPort)",
            "KB_INFERENCE_GATEWAY_ADDR": "127.0.0.1:\(system.gateway.port)",
        ]
        func learn(_ extra: String...) throws -> (status: Int32, summary: [String: Any], stderr: String) {
            let result = try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), ["learn", sessions.path, "--team", "eng", "--state", state.path, "--json"] + extra, environment: environment)
            let summary = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any] ?? [:]
            return (result.status, summary, result.stderr + result.stdout)
        }
        do {
            // A person's entity already has the name of an item the model will return: its
            // fields stay; the item's observations merge into it.
            try await system.put("eng", [graphEntity("Retry policy belongs in the HTTP client", type: "Decision", observations: ["Agreed in the March design review"], significance: 9)])
            let first = try learn()
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.summary["exchanges"] as? Int == 4 && first.summary["files"] as? Int == 2, "\(first.summary)")
            #expect(first.summary["created"] as? Int == 2, "\(first.summary)")
            #expect(first.summary["merged"] as? Int == 2, "the second wording of backoff merges, and the item named like the manual entity: \(first.summary)")
            let decision = try await system.graphClient.call(GraphStoreMethods.getEntity, .with { $0.team = "eng"; $0.name = "Retry policy belongs in the HTTP client" }).entity
            #expect(decision.entityType == "Decision" && decision.source == .manual && decision.significance == 9 && decision.observations.count == 2, "\(decision)")
            #expect(first.summary["skippedLowConfidence"] as? Int == 1)
            let failed = first.summary["failed"] as? [String] ?? []
            #expect(failed.count == 1 && failed[0].contains("specstory-session.md:21") && failed[0].contains("invalid answer twice"), "\(failed)")
            #expect(provider.received.filter { $0.path.hasPrefix("/v1/chat/completions") }.count == 4, "one call per exchange")
            let firstCall = String(decoding: provider.received[0].body, as: UTF8.self)
            #expect(firstCall.contains("reusable software-engineering knowledge") && firstCall.contains("Bash: swift test --filter WebhookTests (failed:"), "the exchange with its tools summarised")

            let backoff = try await system.graphClient.call(GraphStoreMethods.getEntity, .with { $0.team = "eng"; $0.name = "Exponential backoff with jitter" })
            #expect(backoff.entity.source == .auto && backoff.entity.entityType == "coding_pattern" && abs(backoff.entity.confidence - 0.9) < 1e-9)
            #expect(backoff.entity.observations.map(\.content).contains("Cap the number of attempts"), "the merged observation")
            #expect(backoff.entity.observations.count == 3, "no duplicate observations: \(backoff.entity.observations.map(\.content))")
            let provenance = backoff.entity.observations[0].metadata
            #expect(provenance["session"] == "5f0c2a1e-8d4b-4c1e-9a77-3b2f6d1e0a42" && provenance["lines"] == "2-7" && provenance["file"]?.hasSuffix("claude-code-session.jsonl") == true, "\(provenance)")
            #expect(Set(backoff.inbound.filter { !$0.from.hasPrefix("session ") }.map { "\($0.from) \($0.relationType)" }) == ["Inject the clock into retry tests tests", "Retry policy belongs in the HTTP client uses"])
            #expect((try? await system.graphClient.call(GraphStoreMethods.getEntity, .with { $0.team = "eng"; $0.name = "Webhook test is flaky" })) == nil, "below the confidence floor")

            // The trajectory: one Session entity per session, a step per exchange, what it produced.
            let session = try await system.graphClient.call(GraphStoreMethods.getEntity, .with { $0.team = "eng"; $0.name = "session 5f0c2a1e-8d4b-4c1e-9a77-3b2f6d1e0a42" })
            #expect(session.entity.entityType == "Session" && session.entity.source == .auto && session.entity.observations.count == 2)
            #expect(session.entity.metadata["goal"] == "Fix the flaky payment webhook test", "the model's goal, kept: \(session.entity.metadata)")
            #expect(session.entity.observations.first?.metadata["intent"] == "debugging" && session.entity.observations.first?.metadata["intent_by"] == "model")
            #expect(Set(session.outbound.filter { $0.relationType == "produced" }.map(\.to)) == ["Exponential backoff with jitter", "Inject the clock into retry tests", "Retry policy belongs in the HTTP client"], "\(session.outbound)")
            let secondCall = String(decoding: provider.received[1].body, as: UTF8.self)
            #expect(secondCall.contains("Session goal so far: Fix the flaky payment webhook test"), "the goal goes with the next exchange")
            let trajectory = try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), ["trajectory", "5f0c2a1e", "--team", "eng"], environment: environment)
            #expect(trajectory.status == 0 && trajectory.stdout.contains("Goal: Fix the flaky payment webhook test") && trajectory.stdout.contains("debugging (0.80): The payment webhook test fails"), "\(trajectory.stdout)\(trajectory.stderr)")
            let sessionList = try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), ["trajectory", "--team", "eng"], environment: environment)
            #expect(sessionList.stdout.contains("specstory-2025-06-04-circuit") && sessionList.stdout.contains("5f0c2a1e-8d4b-4c1e-9a77-3b2f6d1e0a42"), "\(sessionList.stdout)")

            // Nothing new: nothing called.
            let again = try learn()
            #expect(again.status == 0 && again.summary["exchanges"] as? Int == 0, "\(again.summary)")
            #expect(provider.received.count == 4)
            // An appended exchange, and a new plain-text file: only they are read.
            let appended = #"{"type":"user","sessionId":"5f0c2a1e-8d4b-4c1e-9a77-3b2f6d1e0a42","timestamp":"2025-06-03T10:00:00Z","message":{"role":"user","content":"How do I make the docker build faster?"}}"# + "\n"
                + #"{"type":"assistant","sessionId":"5f0c2a1e-8d4b-4c1e-9a77-3b2f6d1e0a42","message":{"role":"assistant","content":[{"type":"text","text":"Install the dependencies in their own layer first."}]}}"# + "\n"
            let handle = try FileHandle(forWritingTo: sessions.appendingPathComponent("claude-code-session.jsonl"))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(appended.utf8))
            try handle.close()
            let third = try learn()
            #expect(third.summary["exchanges"] as? Int == 1 && third.summary["created"] as? Int == 1, "\(third.summary)")
            #expect(String(decoding: provider.received.last!.body, as: UTF8.self).contains("docker build faster"))

            // Learned knowledge is found by meaning once indexed.
            try await system.waitUntilIndexed("the learned entities and the sessions") { try await system.exactlyIndexed() }
            let search = try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), ["search", "growing random delays between retries", "--semantic", "--team", "eng"], environment: environment)
            #expect(search.stdout.split(separator: "\n").first?.contains("Exponential backoff with jitter") == true, "\(search.stdout)")

            // No provider answers: queued, then learned by a later run.
            provider.answer("/v1/chat/completions", with: .init(status: 503, body: #"{"error":{"message":"down"}}"#))
            try "User: why pin the base image digest?\nAssistant: So a rebuild gets the same system libraries.\n".write(to: sessions.appendingPathComponent("late.txt"), atomically: true, encoding: .utf8)
            let down = try learn()
            #expect(down.status == 0 && down.summary["queued"] as? Int == 1 && down.summary["queuedTotal"] as? Int == 1, "\(down.summary)")
            #expect((down.summary["intents"] as? [String: Int])?["learning"] == 1, "the keyword fallback's intent: \(down.summary)")
            provider.answer("/v1/chat/completions", with: Self.completion(Self.items([
                ["name": "Pin base image digests", "type": "deployment_approach", "confidence": 0.8, "significance": 5,
                 "observations": ["Pin the base image by digest so rebuilds get the same system libraries"], "relations": []],
            ])))
            let up = try learn()
            #expect(up.summary["dequeued"] as? Int == 1 && up.summary["queuedTotal"] as? Int == 0 && up.summary["created"] as? Int == 1, "\(up.summary)")
            environment["KB_GRAPH_STORE_ADDR"] = "127.0.0.1:\(freePort())"
            let noStore = try learn()
            #expect(noStore.status == 1 && noStore.stderr.contains("graph-store is not reachable"), "\(noStore.stderr)")
        } catch {
            await system.stop()
            throw error
        }
        await system.stop()
    }

    @Test("--watch: follows a growing log (an exchange is learned when the next prompt arrives, the last one when the file is quiet), picks up new files; kill -9 and restart neither repeats nor misses an exchange; SIGTERM ends it with the summary", .timeLimit(.minutes(4)))
    func watchAndRestart() async throws {
        let provider = try ScriptedHTTPServer()
        defer { provider.stop() }
        // Four unrelated pieces of knowledge (similar ones would merge by meaning).
        let topics = [
            "Run git bisect with a script to find the commit that broke the build",
            "Use jq to pull one field out of every line of a JSON log",
            "Profile a slow Swift build with -Xfrontend -debug-time-function-bodies",
            "Rotate database credentials through the secret manager every thirty days",
        ]
        let answers = (1...4).map { index in
            Self.completion(Self.items([["name": "Watched item \(index)", "type": "tool_usage", "confidence": 0.9, "significance": 5,
                                          "observations": [topics[index - 1]], "relations": []]]))
        }
        provider.answer("/v1/chat/completions", with: answers[0], answers[1], answers[2], answers[3])
        let system = try await Self.system(extractingWith: provider)
        let sessions = temporaryDirectory("kb-learn-watch")
        let state = temporaryDirectory("kb-learn-state").appendingPathComponent("eng.json")
        let log = sessions.appendingPathComponent("live.jsonl")
        func user(_ text: String) -> String { #"{"type":"user","sessionId":"live","message":{"role":"user","content":"\#(text)"}}"# + "\n" }
        func assistant(_ text: String) -> String { #"{"type":"assistant","sessionId":"live","message":{"role":"assistant","content":[{"type":"text","text":"\#(text)"}]}}"# + "\n" }
        func append(_ text: String, to file: URL) throws {
            if !FileManager.default.fileExists(atPath: file.path) { FileManager.default.createFile(atPath: file.path, contents: nil) }
            let handle = try FileHandle(forWritingTo: file)
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(text.utf8))
            try handle.close()
        }
        let output = temporaryDirectory("kb-learn-out")
        func startWatcher(_ name: String) throws -> Process {
            let process = Process()
            process.executableURL = builtProductsDirectory.appendingPathComponent("ukb")
            process.arguments = ["learn", "--watch", sessions.path, "--team", "eng", "--state", state.path, "--idle", "1", "--interval", "0.2"]
            process.environment = ProcessInfo.processInfo.environment.merging([
                "KB_GRAPH_STORE_ADDR": "127.0.0.1:\(system.graphPort)",
                "KB_VECTOR_SEARCH_ADDR": "127.0.0.1:\(system.vectorPort)",
                "KB_INFERENCE_GATEWAY_ADDR": "127.0.0.1:\(system.gateway.port)",
            ]) { $1 }
            let out = output.appendingPathComponent(name)
            FileManager.default.createFile(atPath: out.path, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = process.standardOutput
            try process.run()
            return process
        }
        func learned(_ name: String, within seconds: Int = 30) async throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(seconds)
            while ContinuousClock.now < deadline {
                if (try? await system.graphClient.call(GraphStoreMethods.getEntity, .with { $0.team = "eng"; $0.name = name })) != nil { return true }
                try await Task.sleep(for: .milliseconds(100))
            }
            return false
        }
        var watcher = try startWatcher("first.log")
        do {
            try append(user("first question") + assistant("first answer"), to: log)
            #expect(try await learned("Watched item 1"), "the last exchange of a quiet file")
            try append(user("second question"), to: log)
            try await Task.sleep(for: .milliseconds(300))
            try append(assistant("second answer") + user("third question"), to: log)
            #expect(try await learned("Watched item 2"), "closed by the next prompt")
            // The entity is written before the state is saved (a kill in between repeats one
            // exchange, harmlessly: observations merge without duplicates). Kill once the state
            // says exchange 2 is done, to check the restart reads on from exactly there.
            let afterSecond = (user("first question") + assistant("first answer") + user("second question") + assistant("second answer")).utf8.count
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                let saved = (try? JSONSerialization.jsonObject(with: Data(contentsOf: state))) as? [String: Any]
                if let offset = ((saved?["files"] as? [String: Any])?[log.standardizedFileURL.path] as? [String: Any])?["offset"] as? Int, offset >= afterSecond { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            kill(watcher.processIdentifier, SIGKILL)
            watcher.waitUntilExit()
            try append(assistant("third answer"), to: log)
            watcher = try startWatcher("second.log")
            #expect(try await learned("Watched item 3"), "after a kill -9 and a restart")
            let second = try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), ["learn", sessions.path, "--team", "eng", "--state", state.path], environment: [
                "KB_GRAPH_STORE_ADDR": "127.0.0.1:\(system.graphPort)", "KB_VECTOR_SEARCH_ADDR": "127.0.0.1:\(system.vectorPort)",
                "KB_INFERENCE_GATEWAY_ADDR": "127.0.0.1:\(system.gateway.port)",
            ])
            #expect(second.status == 1 && second.stderr.contains("another `ukb learn` is using"), "one learner per state file: \(second.stderr)")
            try append(user("a new file") + assistant("its answer"), to: sessions.appendingPathComponent("other.jsonl"))
            #expect(try await learned("Watched item 4"), "a new file in the folder")
            try await Task.sleep(for: .seconds(2))
            let calls = provider.received.filter { $0.path.hasPrefix("/v1/chat/completions") }.count
            #expect(calls == 4, "each exchange extracted exactly once across the restart (\(calls) calls)")
            kill(watcher.processIdentifier, SIGTERM)
            watcher.waitUntilExit()
            let printed = (try? String(contentsOf: output.appendingPathComponent("second.log"), encoding: .utf8)) ?? ""
            #expect(watcher.terminationStatus == 0 && printed.contains("Learned from 2 exchanges"), "\(printed)")
        } catch {
            watcher.terminate()
            await system.stop()
            throw error
        }
        await system.stop()
    }

    @Test("kb up with KB_LEARN_WATCH: the session learner starts after the services (its folder not there yet: waited for, degraded on /health), learns a transcript dropped into the folder, is listed by kb status, counts its work on /metrics (knowledge_extraction_*) and stops with kb down", .timeLimit(.minutes(4)))
    func learnerUnderKbUp() async throws {
        let provider = try ScriptedHTTPServer()
        defer { provider.stop() }
        provider.answer("/v1/chat/completions", with: Self.completion(Self.items(intent: "debugging", [Self.backoff])))
        let folder = temporaryDirectory("kb-up-learner")
        let bin = folder.appendingPathComponent("bin", isDirectory: true)
        let sessions = folder.appendingPathComponent("sessions", isDirectory: true)
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        for name in ["graph-store", "vector-search", "inference-gateway", "ukb"] {
            try FileManager.default.createSymbolicLink(at: bin.appendingPathComponent(name), withDestinationURL: builtProductsDirectory.appendingPathComponent(name))
        }
        let providers = try Self.providersFile(provider, in: folder)
        let learnerPort = freePort(), graphPort = freePort()
        let environment = [
            "KB_DATA_DIR": folder.appendingPathComponent("data").path, "KB_TEAM": "eng", "KB_LEARN_WATCH": sessions.path,
            "KB_GRAPH_STORE_PORT": "\(graphPort)", "KB_GRAPH_STORE_ADMIN_PORT": "\(freePort())",
            "KB_VECTOR_SEARCH_PORT": "\(freePort())", "KB_VECTOR_SEARCH_ADMIN_PORT": "\(freePort())", "KB_VECTOR_QDRANT_PORT": "0",
            "KB_INFERENCE_GATEWAY_PORT": "\(freePort())", "KB_INFERENCE_GATEWAY_ADMIN_PORT": "\(freePort())",
            "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(freePort())", "KB_INFERENCE_PROVIDERS_FILE": providers.path,
            "KB_LEARNER_PORT": "\(learnerPort)", "KB_LOG_FORMAT": "json",
        ]
        func kb(_ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
            try runProgram(builtProductsDirectory.appendingPathComponent("kb"), arguments + ["--bin-dir", bin.path], environment: environment)
        }
        let up = try kb("up", "--detach")
        defer { _ = try? kb("down") }
        #expect(up.status == 0, "\(up.stdout)\n\(up.stderr)")
        let started = up.stdout.split(separator: "\n").map(String.init)
        let learnerLine = try #require(started.firstIndex { $0.hasPrefix("session-learner") && $0.contains("ready") }, "\(up.stdout)")
        let gatewayLine = try #require(started.firstIndex { $0.hasPrefix("inference-gateway") })
        #expect(learnerLine > gatewayLine, "the learner starts after the services it needs")
        // The folder does not exist yet (no session recorded there so far): waited for, said on /health.
        var waiting = ""
        for _ in 0..<50 where !waiting.contains("waiting for folders") {
            waiting = await httpGet("http://127.0.0.1:\(learnerPort)/health")?.body ?? ""
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(waiting.contains("degraded") && waiting.contains(sessions.lastPathComponent), "\(waiting)")
        try FileManager.default.createDirectory(at: sessions, withIntermediateDirectories: true)

        try (#"{"type":"user","sessionId":"s1","message":{"role":"user","content":"Our retries all fire at once after an outage"}}"# + "\n"
            + #"{"type":"assistant","sessionId":"s1","message":{"role":"assistant","content":[{"type":"text","text":"Use exponential backoff with jitter."}]}}"# + "\n")
            .write(to: sessions.appendingPathComponent("s1.jsonl"), atomically: true, encoding: .utf8)
        let graph = RPCClient(configuration: .init(host: "127.0.0.1", port: graphPort))
        defer { Task { await graph.close() } }
        var found = false
        let deadline = ContinuousClock.now + .seconds(90)
        while !found, ContinuousClock.now < deadline {
            found = (try? await graph.call(GraphStoreMethods.getEntity, .with { $0.team = "eng"; $0.name = "Exponential backoff with jitter" })) != nil
            if !found { try await Task.sleep(for: .milliseconds(200)) }
        }
        let learnerLog = (try? kb("logs", "session-learner", "-n", "20").stdout) ?? ""
        #expect(found, "the learner under kb up learned the transcript (log: \(learnerLog))")

        // The entity is written inside the exchange; the exchange's outcome and latency are
        // counted once it returns, so they may trail the graph by a moment.
        var text = ""
        let countedBy = ContinuousClock.now + .seconds(10)
        repeat {
            text = await httpGet("http://127.0.0.1:\(learnerPort)/metrics")?.body ?? ""
            if text.contains("knowledge_extraction_latency_seconds_count 1") { break }
            try await Task.sleep(for: .milliseconds(100))
        } while ContinuousClock.now < countedBy
        #expect(text.contains(#"knowledge_extraction_items_total{type="coding_pattern"} 1"#), "\(text)")
        #expect(text.contains(#"knowledge_extraction_exchanges_total{outcome="extracted"} 1"#))
        #expect(text.contains("knowledge_extraction_latency_seconds_count 1"))
        let health = await httpGet("http://127.0.0.1:\(learnerPort)/health")
        let report = try #require(health.flatMap { try? JSONSerialization.jsonObject(with: Data($0.body.utf8)) as? [String: Any] })
        let learner = (report["components"] as? [String: Any])?["learner"] as? [String: Any]
        #expect(health?.status == 200 && learner?["status"] as? String == "healthy", "\(report)")

        let status = try kb("status")
        #expect(status.status == 0 && status.stdout.split(separator: "\n").contains { $0.hasPrefix("session-learner") && $0.contains("healthy") }, "\(status.stdout)")
        let down = try kb("down")
        #expect(down.status == 0 && down.stdout.contains("session-learner"), "\(down.stdout)")
        #expect(await httpGet("http://127.0.0.1:\(learnerPort)/health") == nil, "kb down stopped the learner")
    }
}
