import Foundation
import KBTestSupport
import Testing

@Suite("VKB's page in headless Chromium", .serialized)
struct VKBBrowserTests {
    @Test("draws the seeded graph, search, click for details and neighbours, filters, hostile text, live refresh, drop import, store down; screenshots saved")
    func page() async throws {
        let system = try await VKBUnderTest.start()
        try await system.seed()
        let store = try #require(system.store)
        let screenshots = packageRoot.appendingPathComponent(".build/vkb-screenshots")
        let script = packageRoot.appendingPathComponent("Tests/VKBTests/browser/page_test.py")
        let result = try runProgram(
            URL(fileURLWithPath: "/usr/bin/env"),
            ["python3", script.path, "--url", system.base, "--ukb", builtProductsDirectory.appendingPathComponent("ukb").path,
             "--screenshots", screenshots.path, "--store-pid", "\(store.process.processIdentifier)"],
            environment: ["KB_GRAPH_STORE_ADDR": "127.0.0.1:\(store.port)", "KB_TEAM": ""]
        )
        #expect(result.status == 0, "browser checks failed:\n\(result.stdout)\n\(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("PASS"))
        #expect(FileManager.default.fileExists(atPath: screenshots.appendingPathComponent("vkb-graph.png").path), "a screenshot for people to look at")
        await system.stop()
    }

    @Test("focus mode: a hub with 2,219 neighbours drawn alone, names never overlapping, zoom makes room for more, back to the overview")
    func focusOnAHub() async throws {
        let system = try await VKBUnderTest.start()
        let leaves = 2219
        var entities: [[String: Any]] = [["name": "zlib1g", "entityType": "Package", "significance": 9, "observations": ["compression library - runtime"]]]
        var relations: [[String: Any]] = []
        for index in 0..<leaves {
            let name = String(format: "lib-%04d", index)
            entities.append(["name": name, "entityType": index % 3 == 0 ? "Library" : "Package", "significance": 1 + index % 9])
            relations.append(["from": name, "to": "zlib1g", "relationType": "depends_on"])
        }
        for index in 0..<50 {
            entities.append(["name": "other-\(index)", "entityType": "Tool"])
            if index > 0 { relations.append(["from": "other-\(index)", "to": "other-\(index - 1)", "relationType": "next"]) }
        }
        try await system.seed(["metadata": ["team": "debian"], "entities": entities, "relations": relations])
        let screenshots = packageRoot.appendingPathComponent(".build/vkb-screenshots")
        let script = packageRoot.appendingPathComponent("Tests/VKBTests/browser/focus_test.py")
        let result = try runProgram(URL(fileURLWithPath: "/usr/bin/env"), [
            "python3", script.path, "--url", system.base, "--hub-id", "debian:zlib1g", "--neighbours", "\(leaves)",
            "--overview", "\(leaves + 51)", "--screenshots", screenshots.path,
        ])
        #expect(result.status == 0, "browser checks failed:\n\(result.stdout)\n\(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("PASS"))
        await system.stop()
    }

    @Test("a coding session (a Session entity as ukb learn writes it): its goal, intents over time in time order, steps, and links to the knowledge it produced and used")
    func sessionTrajectory() async throws {
        let system = try await VKBUnderTest.start()
        func step(_ date: String, _ intent: String, _ text: String, produced: String? = nil) -> [String: Any] {
            var metadata = ["intent": intent, "intent_confidence": "0.80", "intent_by": "model", "exchange": date]
            if let produced { metadata["produced"] = produced }
            return ["type": "exchange", "date": date, "content": "\(date) \(intent) (0.80): \(text)", "metadata": metadata]
        }
        // Stored out of time order: the view orders by time.
        let session: [String: Any] = [
            "name": "session live-1", "entityType": "Session", "source": "auto", "significance": 3,
            "metadata": ["session": "live-1", "kind": "trajectory", "goal": "Make payment retries safe"],
            "observations": [
                step("2026-12-01T10:05:00Z", "feature-dev", "add jitter to the retry loop", produced: "Exponential backoff"),
                step("2026-12-01T10:00:00Z", "debugging", "why do all retries <img src=x onerror=\"window.__pwned=3\"> fire at once"),
                step("2026-12-01T10:09:00Z", "testing", "a test for the jitter bounds"),
            ],
        ]
        try await system.seed([
            "metadata": ["team": "eng"],
            "entities": [session,
                         ["name": "Exponential backoff", "entityType": "coding_pattern", "observations": ["Retry with growing delays and jitter"]],
                         ["name": "Circuit breaker", "entityType": "coding_pattern", "observations": ["Stop calling a failing provider"]]],
            "relations": [["from": "session live-1", "to": "Exponential backoff", "relationType": "produced"],
                          ["from": "session live-1", "to": "Circuit breaker", "relationType": "used"]],
        ])
        let script = packageRoot.appendingPathComponent("Tests/VKBTests/browser/trajectory_test.py")
        let result = try runProgram(URL(fileURLWithPath: "/usr/bin/env"), [
            "python3", script.path, "--url", system.base, "--session-id", "eng:session live-1", "--intents", "debugging,feature-dev,testing",
            "--goal", "Make payment retries safe", "--produced", "Exponential backoff", "--used", "Circuit breaker",
            "--screenshots", packageRoot.appendingPathComponent(".build/vkb-screenshots").path,
        ])
        #expect(result.status == 0, "browser checks failed:\n\(result.stdout)\n\(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("PASS"))
        await system.stop()
    }

    @Test("with KB_AUTH_TOKEN set, the page asks for the token once per tab, sends it on reads and draws the graph; a reload asks no more")
    func pageAsksForTheTokenToRead() async throws {
        let system = try await VKBUnderTest.start(environment: ["KB_AUTH_TOKEN": "page-s3cret"])
        try await system.seed()
        let script = packageRoot.appendingPathComponent("Tests/VKBTests/browser/token_test.py")
        let result = try runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", script.path, "--url", system.base, "--token", "page-s3cret"])
        #expect(result.status == 0, "browser checks failed:\n\(result.stdout)\n\(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("PASS"))
        await system.stop()
    }
}
