import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing
import Yams

/// Debian's `prometheus` scraping a running system: the five services started on free loopback
/// ports, the project's scrape configuration pointed at them (1 s scrapes), the project's rules
/// loaded. Every target is up, every metric the alerts and the dashboard read exists, every
/// alert and panel expression runs, and recording costs past 80% of the budget fires
/// BudgetNearLimit.
@Suite("Prometheus scraping the running system", .serialized)
struct PrometheusLiveTests {
    static let skipReason: Comment = "prometheus is not installed: apt-get install prometheus (scripts/setup-system.sh --test); KB_REQUIRE_DEPLOY_TOOLS=1 makes this a failure instead of a skip"

    /// Metrics only the session learner exports (`ukb learn --watch`, admin port 9106): not started
    /// here, so their series are not asserted live (their alert is unit-tested in alerts_test.yml, and
    /// their expressions still run here).
    static let learnerMetrics: Set = [
        "knowledge_extraction_items_total", "knowledge_extraction_exchanges_total", "knowledge_extraction_latency_seconds_bucket",
    ]

    @Test("every target up, every metric of the alerts and the dashboard present, every expression runs, BudgetNearLimit fires past 80%", .enabled(if: OpsTool.shouldRun(.prometheus), skipReason))
    func scrapesTheRunningSystem() async throws {
        guard OpsTool.prometheus.command != nil else {
            Issue.record("KB_REQUIRE_DEPLOY_TOOLS is set, but prometheus is not installed: \(OpsTool.prometheus.installHint)")
            return
        }
        let system = try await RunningSystem.start()
        defer { Task { await system.stop() } }
        try await system.driveTraffic()

        let prometheus = try PrometheusServer(system: system)
        defer { prometheus.stop() }
        try await prometheus.waitUntilReady()

        // Every target of the project's configuration (but the learner's job) is up.
        var targets: [[String: Any]] = []
        let deadline = ContinuousClock.now + .seconds(60)
        repeat {
            try await Task.sleep(for: .milliseconds(500))
            targets = try await prometheus.api("targets")["activeTargets"] as? [[String: Any]] ?? []
        } while ContinuousClock.now < deadline && (targets.count != 5 || targets.contains { $0["health"] as? String != "up" })
        #expect(targets.count == 5, "\(targets)")
        for target in targets {
            #expect(target["health"] as? String == "up", "\(target["scrapeUrl"] ?? "?"): \(target["lastError"] ?? "")")
        }

        // Every metric the alerts and the dashboard read has series.
        let alerts = try MonitoringFiles.alertRules()
        let panels = try MonitoringFiles.dashboardExpressions()
        let used = (alerts.map(\.expression) + panels.map(\.expression)).reduce(into: Set<String>()) { $0.formUnion(MonitoringFiles.metricNames(in: $1)) }
        #expect(used.isSuperset(of: ["knowledge_inference_latency_seconds_bucket", "knowledge_cache_hits_total", "knowledge_monthly_spend_usd", "knowledge_circuit_breaker_state", "kb_rpc_requests_total"]))
        var missing = used.subtracting(Self.learnerMetrics)
        let metricsDeadline = ContinuousClock.now + .seconds(60)
        while !missing.isEmpty && ContinuousClock.now < metricsDeadline {
            for name in missing {
                let series = try await prometheus.query(#"count({__name__="\#(name)"})"#)
                if !series.isEmpty { missing.remove(name) }
            }
            if !missing.isEmpty { try await Task.sleep(for: .seconds(1)) }
        }
        #expect(missing.isEmpty, "metrics the alerts or the dashboard read that the running system does not export: \(missing.sorted())")

        // Every alert and panel expression parses and runs.
        for (name, expression) in alerts {
            #expect(try await prometheus.queryStatus(expression) == "success", "alert \(name): \(expression)")
        }
        for (panel, expression) in panels {
            #expect(try await prometheus.queryStatus(expression) == "success", "panel \(panel): \(expression)")
        }
        // The check can fail: an expression that does not parse is refused.
        #expect(try await prometheus.queryStatus("histogram_quantile(0.95, knowledge_inference_latency_seconds") != "success")

        // Budget: nothing pending or firing at 10%, BudgetNearLimit firing at 85% (the test's copy
        // of the rules evaluates every second and has `for: 0s`; the project's waits 5 minutes).
        #expect(try await prometheus.alerts().filter { $0.name.hasPrefix("Budget") }.isEmpty)
        try await system.recordCost(usd: 7.5)  // 1 + 7.5 = 8.5 of 10
        var firing: [(name: String, state: String)] = []
        let alertDeadline = ContinuousClock.now + .seconds(30)
        while !firing.contains(where: { $0.name == "BudgetNearLimit" && $0.state == "firing" }) && ContinuousClock.now < alertDeadline {
            try await Task.sleep(for: .milliseconds(500))
            firing = try await prometheus.alerts()
        }
        #expect(firing.contains { $0.name == "BudgetNearLimit" && $0.state == "firing" }, "\(firing)")
        #expect(!firing.contains { $0.name == "BudgetExceeded" }, "\(firing)")
        #expect(!firing.contains { $0.name == "ServiceDown" }, "\(firing)")
    }
}

/// The five services on free loopback ports, as `kb up` wires them, and a scripted local LLM.
final class RunningSystem: @unchecked Sendable {
    let provider: ScriptedHTTPServer
    let graph: ServiceProcess, vectors: ServiceProcess, budget: ServiceProcess, gateway: ServiceProcess, vkb: ServiceProcess

    private init(provider: ScriptedHTTPServer, graph: ServiceProcess, vectors: ServiceProcess, budget: ServiceProcess, gateway: ServiceProcess, vkb: ServiceProcess) {
        self.provider = provider
        self.graph = graph
        self.vectors = vectors
        self.budget = budget
        self.gateway = gateway
        self.vkb = vkb
    }

    static func start() async throws -> RunningSystem {
        let provider = try ScriptedHTTPServer()
        provider.answer("/v1/chat/completions", with: .init(body: #"{"id":"c","object":"chat.completion","model":"mock-1","choices":[{"index":0,"message":{"role":"assistant","content":"pong"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}}"#))
        let graph = try ServiceProcess(executable: "graph-store", envPrefix: "KB_GRAPH_STORE")
        let vectors = try ServiceProcess(executable: "vector-search", envPrefix: "KB_VECTOR_SEARCH")
        let budget = try ServiceProcess(executable: "budget-service", envPrefix: "KB_BUDGET_SERVICE", environment: ["KB_BUDGET_MONTHLY_LIMIT_USD": "10"])
        for service in [graph, vectors, budget] { try await service.waitUntilReady() }
        let peers = [
            "KB_GRAPH_STORE_ADDR": "127.0.0.1:\(graph.port)", "KB_VECTOR_SEARCH_ADDR": "127.0.0.1:\(vectors.port)",
            "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(budget.port)",
        ]
        let providers = try writeProvidersFile("""
            activeStrategy: test
            strategies:
              test: {priority: [local]}
            providers:
              \(provider.localProvider("local"))
            """, in: temporaryDirectory("kb-prometheus"))
        let gateway = try ServiceProcess(
            executable: "inference-gateway", envPrefix: "KB_INFERENCE_GATEWAY",
            environment: peers.merging(["KB_INFERENCE_PROVIDERS_FILE": providers.path]) { $1 }
        )
        try await gateway.waitUntilReady(timeout: .seconds(60))
        let vkb = try ServiceProcess(
            executable: "vkb", envPrefix: "KB_VKB",
            environment: peers.merging(["KB_INFERENCE_GATEWAY_ADDR": "127.0.0.1:\(gateway.port)"]) { $1 }, hasRPC: false
        )
        try await vkb.waitUntilReady()
        return RunningSystem(provider: provider, graph: graph, vectors: vectors, budget: budget, gateway: gateway, vkb: vkb)
    }

    /// The admin ports by the default port the project's prometheus.yml names them with.
    var adminPortsByDefault: [Int: Int] {
        [9101: graph.adminPort, 9102: vectors.adminPort, 9103: gateway.adminPort, 9104: budget.adminPort, 8080: vkb.adminPort]
    }

    /// Work that makes every service export the metrics the alerts and dashboard read: a graph
    /// write (and the indexer behind it), completions (a cache miss, then a hit), vector searches
    /// (one failing: an RPC error), a cost, a VKB request, and one malformed frame.
    func driveTraffic() async throws {
        let knowledge = temporaryDirectory("kb-prometheus").appendingPathComponent("shared-memory-ops.json")
        try #"{"entities": [{"name": "Prometheus scraping", "entityType": "Pattern", "observations": ["every admin port serves /metrics"]}], "relations": []}"#
            .write(to: knowledge, atomically: true, encoding: .utf8)
        let imported = try runProgram(builtProductsDirectory.appendingPathComponent("ukb"), ["import", knowledge.path], environment: ["KB_GRAPH_STORE_ADDR": "127.0.0.1:\(graph.port)"])
        #expect(imported.status == 0, "ukb import: \(imported.stderr)")

        let gatewayClient = RPCClient(configuration: .init(host: "127.0.0.1", port: gateway.port))
        defer { Task { await gatewayClient.close() } }
        for _ in 0..<2 {
            let answer = try await gatewayClient.call(InferenceGatewayMethods.complete, .with {
                $0.messages = [.with { $0.role = "user"; $0.content = "ping" }]
                $0.temperature = .with { $0.value = 0 }
            })
            #expect(answer.provider == "local")
        }

        let vectorClient = RPCClient(configuration: .init(host: "127.0.0.1", port: vectors.port))
        defer { Task { await vectorClient.close() } }
        _ = try await vectorClient.call(VectorSearchMethods.createCollection, .with { $0.config = .with { $0.name = "ops_4"; $0.dimension = 4 } })
        _ = try await vectorClient.call(VectorSearchMethods.search, .with { $0.collection = "ops_4"; $0.vector = [1, 0, 0, 0] })
        await #expect(throws: RPCError.self) { _ = try await vectorClient.call(VectorSearchMethods.search, .with { $0.collection = "no_such_collection"; $0.vector = [1, 0, 0, 0] }) }

        try await recordCost(usd: 1)
        let page = await httpGet("http://127.0.0.1:\(vkb.adminPort)/api/teams")
        #expect(page != nil, "VKB does not answer")
        try sendMalformedFrame(to: graph.port)
    }

    /// Records a cost in budget-service over its RPC (what the gateway's budget gate does after a paid call).
    func recordCost(usd: Double) async throws {
        let client = RPCClient(configuration: .init(host: "127.0.0.1", port: budget.port))
        defer { Task { await client.close() } }
        _ = try await client.call(BudgetMethods.recordCost, .with {
            $0.event = .with {
                $0.requestID = "ops-\(UUID().uuidString)"
                $0.provider = "openai"
                $0.model = "gpt-4o-mini"
                $0.operation = "extract"
                $0.costUsd = .with { $0.value = usd }
            }
        })
    }

    /// A frame of length 0 (invalid): the server answers with an error envelope and closes.
    func sendMalformedFrame(to port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { throw ProcessFailure("cannot connect to 127.0.0.1:\(port)") }
        let zero: [UInt8] = [0, 0, 0, 0]
        _ = zero.withUnsafeBytes { write(fd, $0.baseAddress, 4) }
        var buffer = [UInt8](repeating: 0, count: 256)
        _ = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 256) }  // the error envelope, then the close
    }

    func stop() async {
        for service in [vkb, gateway, budget, vectors, graph] { await service.stop() }
        provider.stop()
    }
}

/// Debian's `prometheus` on a free loopback port, with a temporary storage folder, scraping the
/// running system every second with the project's configuration and a fast copy of its rules.
final class PrometheusServer: @unchecked Sendable {
    let process = Process()
    let folder: URL
    let port: Int
    let logFile: URL

    init(system: RunningSystem) throws {
        folder = temporaryDirectory("kb-prometheus")
        port = freePort()
        // The project's scrape configuration, its targets moved to the test's ports; the learner's
        // job (ukb learn --watch) is left out: it is not running here.
        let moved = system.adminPortsByDefault
        var configuration = "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\nrule_files: [alerts.yml]\nscrape_configs:\n"
        for (job, targets) in try PrometheusScrapeConfiguration.load().targets.sorted(by: { $0.key < $1.key }) where job != "knowledge-learner" {
            let local = targets.map { target in "127.0.0.1:\(target.split(separator: ":").last.flatMap { Int($0) }.flatMap { moved[$0] } ?? 0)" }
            configuration += "  - job_name: \(job)\n    metrics_path: /metrics\n    static_configs: [{targets: [\(local.joined(separator: ", "))]}]\n"
        }
        try configuration.write(to: folder.appendingPathComponent("prometheus.yml"), atomically: true, encoding: .utf8)
        // The rules, evaluated every second, BudgetNearLimit without its 5 minutes' wait.
        let rules = try String(contentsOf: MonitoringFiles.alerts, encoding: .utf8)
        let fast = rules.replacingOccurrences(of: "    interval: 30s\n", with: "    interval: 1s\n")
            .replacingOccurrences(of: "expr: knowledge_monthly_spend_usd / knowledge_monthly_budget_usd > 0.8\n        for: 5m\n", with: "expr: knowledge_monthly_spend_usd / knowledge_monthly_budget_usd > 0.8\n        for: 0s\n")
        #expect(fast.contains("interval: 1s") && fast.contains("for: 0s"), "the test's copy of alerts.yml did not take its changes")
        try fast.write(to: folder.appendingPathComponent("alerts.yml"), atomically: true, encoding: .utf8)

        logFile = folder.appendingPathComponent("prometheus.log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let (executable, leading) = try #require(OpsTool.prometheus.command)
        process.executableURL = executable
        process.arguments = leading + [
            "--config.file=\(folder.appendingPathComponent("prometheus.yml").path)",
            "--storage.tsdb.path=\(folder.appendingPathComponent("data").path)",
            "--web.listen-address=127.0.0.1:\(port)",
        ]
        let handle = try FileHandle(forWritingTo: logFile)
        process.standardOutput = handle
        process.standardError = handle
        try launch(process)
    }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    func waitUntilReady() async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if !process.isRunning { throw ProcessFailure("prometheus exited with \(process.terminationStatus): \(log)") }
            if await httpGet("http://127.0.0.1:\(port)/-/ready", timeout: 1)?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ProcessFailure("prometheus not ready within 30 s: \(log)")
    }

    /// GET /api/v1/<path>: its `data`, or a failure with Prometheus's error.
    func api(_ path: String) async throws -> [String: Any] {
        let answer = try #require(await httpGet("http://127.0.0.1:\(port)/api/v1/\(path)", timeout: 10), "prometheus does not answer /api/v1/\(path)")
        let body = answer.json
        guard body["status"] as? String == "success" else { throw ProcessFailure("/api/v1/\(path): \(answer.body)") }
        return body["data"] as? [String: Any] ?? [:]
    }

    /// The status of an instant query (`success`, or `error` for an expression Prometheus refuses).
    func queryStatus(_ expression: String) async throws -> String {
        let answer = try #require(await httpGet("http://127.0.0.1:\(port)/api/v1/query?query=\(Self.encoded(expression))", timeout: 10))
        return answer.json["status"] as? String ?? "no answer: \(answer.body)"
    }

    /// An instant query's result vector.
    func query(_ expression: String) async throws -> [[String: Any]] {
        try await api("query?query=\(Self.encoded(expression))")["result"] as? [[String: Any]] ?? []
    }

    /// The alerts pending or firing: name and state.
    func alerts() async throws -> [(name: String, state: String)] {
        (try await api("alerts")["alerts"] as? [[String: Any]] ?? []).map {
            (($0["labels"] as? [String: Any])?["alertname"] as? String ?? "?", $0["state"] as? String ?? "?")
        }
    }

    /// Percent-encodes everything but letters and digits (`+` would read as a space).
    static func encoded(_ expression: String) -> String {
        expression.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? expression
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: folder)
    }
}
