import Foundation
import KBTestSupport
import LauncherKit
import Testing

/// `kb` run as an operator would, on real service processes: the fixture service, linked into a
/// test folder under the graph store's and budget service's names.
@Suite("The kb launcher", .serialized)
struct LauncherTests {
    struct Setup {
        let folder: URL
        let bin: URL
        let environment: [String: String]
        let graphAdmin: Int
        let budgetAdmin: Int

        init(extra: [String: String] = [:]) throws {
            folder = temporaryDirectory("kb-launcher")
            bin = folder.appendingPathComponent("bin", isDirectory: true)
            try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
            let fixture = builtProductsDirectory.appendingPathComponent("kb-fixture-service")
            for name in ["graph-store", "budget-service"] {
                try FileManager.default.createSymbolicLink(at: bin.appendingPathComponent(name), withDestinationURL: fixture)
            }
            graphAdmin = freePort()
            budgetAdmin = freePort()
            environment = [
                "KB_DATA_DIR": folder.appendingPathComponent("data").path,
                "KB_GRAPH_STORE_PORT": "\(freePort())", "KB_GRAPH_STORE_ADMIN_PORT": "\(graphAdmin)",
                "KB_BUDGET_SERVICE_PORT": "\(freePort())", "KB_BUDGET_SERVICE_ADMIN_PORT": "\(budgetAdmin)",
            ].merging(extra) { $1 }
        }

        func kb(_ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
            try runProgram(builtProductsDirectory.appendingPathComponent("kb"), arguments + ["--bin-dir", bin.path], environment: environment)
        }
    }

    @Test("up gives the services it starts each other's addresses (KB_<SERVICE>_ADDR), so the gateway's indexer turns on; an operator's own address wins")
    func wiresPeerAddresses() throws {
        let setup = try Setup(extra: ["KB_BUDGET_SERVICE_ADDR": "10.0.0.9:7104"])
        let launcher = try Launcher(environment: setup.environment, binDirectory: setup.bin, print: { _ in })
        let wired = launcher.wiredEnvironment(try launcher.installedServices())
        #expect(wired["KB_GRAPH_STORE_ADDR"] == "127.0.0.1:\(setup.environment["KB_GRAPH_STORE_PORT"]!)")
        #expect(wired["KB_BUDGET_SERVICE_ADDR"] == "10.0.0.9:7104")
        #expect(wired["KB_VECTOR_SEARCH_ADDR"] == nil, "vector-search is not installed in this folder")
    }

    @Test("up --detach starts the installed services ready; status, logs and down work on them")
    func detachedLifecycle() async throws {
        let setup = try Setup()
        let up = try setup.kb("up", "--detach")
        #expect(up.status == 0, "\(up.stderr)")
        #expect(up.stdout.contains("graph-store") && up.stdout.contains("budget-service"))
        #expect(await httpGet("http://127.0.0.1:\(setup.graphAdmin)/health/ready")?.status == 200)
        #expect(await httpGet("http://127.0.0.1:\(setup.budgetAdmin)/health/ready")?.status == 200)

        let status = try setup.kb("status")
        #expect(status.status == 0)
        let lines = status.stdout.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("graph-store") && $0.contains("healthy") })
        #expect(lines.contains { $0.hasPrefix("vector-search") && $0.contains("not installed") })
        // The containers' health check: one service, and its /health/ready.
        let ready = try setup.kb("status", "--only", "graph-store", "--ready")
        #expect(ready.status == 0, "\(ready.stdout)\(ready.stderr)")
        #expect(ready.stdout.split(separator: "\n").count == 1 && ready.stdout.hasPrefix("graph-store"))
        #expect(try setup.kb("status", "--only", "graph-stor").stderr.contains("unknown service 'graph-stor'"))

        let logs = try setup.kb("logs", "graph-store", "-n", "100")
        #expect(logs.stdout.contains("graph-store ready"))

        let again = try setup.kb("up", "--detach")
        #expect(again.stdout.contains("already running"))

        let down = try setup.kb("down")
        #expect(down.status == 0)
        #expect(down.stdout.contains("stopped"))
        #expect(await httpGet("http://127.0.0.1:\(setup.graphAdmin)/health") == nil)

        let after = try setup.kb("status")
        #expect(after.status != 0, "status must fail when installed services are down")
        #expect(after.stdout.contains("down"))
        #expect(try setup.kb("status", "--only", "graph-store", "--ready").status != 0, "the health check fails once the service is down")
    }

    @Test("status exits non-zero when a running service is unhealthy")
    func statusReportsUnhealthy() async throws {
        let setup = try Setup(extra: ["KB_FIXTURE_HEALTH": "unhealthy"])
        let up = try setup.kb("up", "--detach", "--timeout", "2")
        #expect(up.status != 0)
        #expect(up.stderr.contains("did not become ready"))
        #expect(await httpGet("http://127.0.0.1:\(setup.graphAdmin)/health") == nil, "up must stop what it started when it fails")
    }

    @Test("in the foreground, SIGINT stops every service and up exits 0")
    func foregroundStopsOnInterrupt() async throws {
        let setup = try Setup()
        let process = Process()
        process.executableURL = builtProductsDirectory.appendingPathComponent("kb")
        process.arguments = ["up", "--bin-dir", setup.bin.path]
        process.environment = ProcessInfo.processInfo.environment.merging(setup.environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        try launch(process)
        var ready = false
        for _ in 0..<200 where !ready {
            ready = await httpGet("http://127.0.0.1:\(setup.budgetAdmin)/health/ready")?.status == 200
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(ready)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(await httpGet("http://127.0.0.1:\(setup.graphAdmin)/health") == nil)
        #expect(await httpGet("http://127.0.0.1:\(setup.budgetAdmin)/health") == nil)
    }

    @Test("an unknown service name is refused with a one-line reason")
    func unknownService() throws {
        let setup = try Setup()
        let result = try setup.kb("up", "--only", "graph-stor")
        #expect(result.status == 1)
        #expect(result.stderr.contains("unknown service 'graph-stor'"))
    }
}
