import Foundation
import KBTestSupport
import Testing

@Suite("vkb start, status, logs, restart, stop", .serialized)
struct VKBCommandTests {
    @Test("start in the background writes the pid file under .data/run, serves, reports status; stop ends it and removes the pid file")
    func lifecycle() async throws {
        let folder = temporaryDirectory("vkb-cli")
        let port = freePort()
        let environment = ["KB_DATA_DIR": folder.appendingPathComponent(".data").path, "KB_GRAPH_STORE_ADDR": "127.0.0.1:\(freePort())", "KB_LOG_FORMAT": "json"]
        let vkb = builtProductsDirectory.appendingPathComponent("vkb")
        let pidFile = folder.appendingPathComponent(".data/run/vkb.pid")

        let notRunning = try runProgram(vkb, ["status"], environment: environment)
        #expect(notRunning.status == 1 && notRunning.stdout.contains("not running"), "\(notRunning)")

        let start = try runProgram(vkb, ["start", "--port", "\(port)", "--no-browser"], environment: environment)
        #expect(start.status == 0, "\(start.stderr)")
        #expect(start.stdout.contains("http://127.0.0.1:\(port)/"), "\(start.stdout)")
        #expect(start.stdout.contains("graph-store is not answering"), "it warns when the store is down")
        let pid = try #require(Int32(try String(contentsOf: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(kill(pid, 0) == 0)
        #expect(await httpGet("http://127.0.0.1:\(port)/health")?.status == 200)
        #expect(await httpGet("http://127.0.0.1:\(port)/")?.body.contains("<canvas id=\"graph\"") == true)

        let twice = try runProgram(vkb, ["start", "--no-browser"], environment: environment)
        #expect(twice.status == 0 && twice.stdout.contains("already running"))
        let status = try runProgram(vkb, ["status"], environment: environment)
        #expect(status.status == 0, "\(status)")
        #expect(status.stdout.contains("\(port)") && status.stdout.contains("pid \(pid)"), "status finds the port it started on: \(status.stdout)")
        let logs = try runProgram(vkb, ["logs", "-n", "20"], environment: environment)
        #expect(logs.stdout.contains("vkb ready"), "\(logs.stdout)")

        let restart = try runProgram(vkb, ["restart"], environment: environment)
        #expect(restart.status == 0, "\(restart.stderr)")
        let newPid = try #require(Int32(try String(contentsOf: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(newPid != pid && kill(pid, 0) != 0)
        #expect(await httpGet("http://127.0.0.1:\(port)/health")?.status == 200, "restart keeps the port")

        let stop = try runProgram(vkb, ["stop"], environment: environment)
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pidFile.path))
        #expect(kill(newPid, 0) != 0)
        #expect(await httpGet("http://127.0.0.1:\(port)/health", timeout: 1) == nil)
        let stopAgain = try runProgram(vkb, ["stop"], environment: environment)
        #expect(stopAgain.status == 0 && stopAgain.stdout.contains("not running"))
    }

    @Test("a bad setting exits at once naming the key")
    func badConfiguration() throws {
        let result = try runProgram(builtProductsDirectory.appendingPathComponent("vkb"), [], environment: ["KB_VKB_WRITE_RATE_LIMIT": "lots", "KB_DATA_DIR": temporaryDirectory("vkb-bad").path])
        #expect(result.status == 78, "\(result)")
        #expect(result.stderr.contains("KB_VKB_WRITE_RATE_LIMIT"))
    }
}
