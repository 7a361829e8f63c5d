import Foundation
import KBTestSupport
import Testing

/// deploy/docker-compose.yml under podman-compose, as one project of its own, on free host ports.
struct ComposeProject {
    let name = "kbc\(UUID().uuidString.prefix(8).lowercased())"
    let file = packageRoot.appendingPathComponent("deploy/docker-compose.yml")
    let environment: [String: String]

    /// Runs podman-compose on the project; its podman calls read the project's containers.conf (runc).
    @discardableResult
    func compose(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        guard let tool = ContainerEngine.executable("podman-compose") else { throw ProcessFailure("podman-compose is not installed") }
        return try ContainerEngine.runAndReap(tool, ["-p", name, "-f", file.path] + arguments, environment: environment)
    }

    /// The containers of `service`, by name.
    func containers(_ service: String) throws -> [String] {
        try ContainerEngine.podman(["ps", "-a", "--format", "{{.Names}}", "--filter", "label=io.podman.compose.project=\(name)", "--filter", "label=com.docker.compose.service=\(service)"])
            .stdout.split(separator: "\n").map(String.init).sorted()
    }

    /// The host port a container publishes for `port`.
    func hostPort(_ container: String, _ port: Int) throws -> Int? {
        let result = try ContainerEngine.podman(["port", container, "\(port)/tcp"])
        return result.stdout.split(separator: "\n").first.flatMap { $0.split(separator: ":").last }.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// Removes by force whatever of the project is still there (after a failed `down`).
    func removeLeftovers() {
        let label = "label=io.podman.compose.project=\(name)"
        let containers = ((try? ContainerEngine.podman(["ps", "-a", "-q", "--filter", label]))?.stdout ?? "").split(separator: "\n").map(String.init)
        if !containers.isEmpty { _ = try? ContainerEngine.podman(["rm", "-f", "-v", "-t", "0"] + containers) }
        let volumes = ((try? ContainerEngine.podman(["volume", "ls", "-q", "--filter", label]))?.stdout ?? "").split(separator: "\n").map(String.init)
        if !volumes.isEmpty { _ = try? ContainerEngine.podman(["volume", "rm", "-f"] + volumes) }
        let networks = ((try? ContainerEngine.podman(["network", "ls", "-q", "--filter", label]))?.stdout ?? "").split(separator: "\n").map(String.init)
        if !networks.isEmpty { _ = try? ContainerEngine.podman(["network", "rm", "-f"] + networks) }
    }

    /// What podman still lists of the project (containers, volumes, networks).
    func leftovers() -> String {
        let label = "label=io.podman.compose.project=\(name)"
        let containers = (try? ContainerEngine.podman(["ps", "-a", "-q", "--filter", label]))?.stdout ?? ""
        let volumes = (try? ContainerEngine.podman(["volume", "ls", "-q", "--filter", label]))?.stdout ?? ""
        let networks = (try? ContainerEngine.podman(["network", "ls", "-q", "--filter", label]))?.stdout ?? ""
        return (containers + volumes + networks).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

@Suite("docker-compose: the stack under podman-compose", .serialized)
struct ContainerComposeTests {
    static let tools = ContainerEngine.tools + ["podman-compose"]
    /// The system's services (Prometheus and Grafana come from a registry, out of reach here).
    static let systemServices = ["graph-store", "vector-search", "budget-service", "inference-gateway", "vkb"]

    @Test(
        "podman-compose brings up deploy/docker-compose.yml with two gateway replicas: every container healthy, kb status passes, ukb imports and counts, the indexer reaches vector-search by name; down -v leaves nothing",
        .enabled(if: ContainerEngine.runnable(tools), "podman, runc, debootstrap or podman-compose is not installed, or not root (scripts/setup-system.sh --test installs them)")
    )
    func composeStack() async throws {
        try ContainerEngine.requireTools(Self.tools)
        let image = try ContainerEngine.builtImage()
        let token = "compose-test-\(UUID().uuidString)"
        let work = temporaryDirectory("compose-test")
        let envFile = work.appendingPathComponent("kb.env")
        try "KB_AUTH_TOKEN=\(token)\n".write(to: envFile, atomically: true, encoding: .utf8)
        let published = [
            "KB_GRAPH_STORE_HOST_PORT", "KB_GRAPH_STORE_ADMIN_HOST_PORT", "KB_VECTOR_SEARCH_HOST_PORT", "KB_VECTOR_SEARCH_ADMIN_HOST_PORT",
            "KB_VECTOR_QDRANT_HOST_PORT", "KB_BUDGET_SERVICE_HOST_PORT", "KB_BUDGET_SERVICE_ADMIN_HOST_PORT", "KB_VKB_HOST_PORT",
        ]
        var hostPorts: [String: Int] = [:]
        for key in published { hostPorts[key] = freePort() }
        let project = ComposeProject(environment: hostPorts.mapValues(String.init).merging([
            "KB_IMAGE": image, "KB_ENV_FILE": envFile.path, "CONTAINERS_CONF": ContainerEngine.containersConf.path,
            // What `down` needs to see both replicas (podman-compose's down reads no --scale).
            "KB_INFERENCE_GATEWAY_REPLICAS": "2",
        ]) { $1 })
        defer {
            let down = try? project.compose(["down", "-v", "-t", "10"])
            let left = project.leftovers()
            #expect(left.isEmpty, "podman-compose down -v left: \(left)\n\(down?.stderr ?? "")")
            if !left.isEmpty { project.removeLeftovers() }
        }

        // The file is valid compose for podman-compose: the whole stack, the token only from the env file.
        let config = try project.compose(["config"])
        #expect(config.status == 0, "podman-compose config: \(config.stderr)")
        for service in Self.systemServices + ["prometheus", "grafana"] {
            #expect(config.stdout.contains("\n  \(service):"), "config lists \(service)")
        }

        let up = try project.compose(["up", "-d", "--scale", "inference-gateway=2"] + Self.systemServices)
        #expect(up.status == 0, "podman-compose up: \(up.stdout)\(up.stderr)")
        let gateways = try project.containers("inference-gateway")
        #expect(gateways.count == 2, "two gateway replicas: \(gateways)")

        // kb on the host, through the published ports (each gateway replica on its own free one).
        let data = work.appendingPathComponent("client")
        var clientEnvironment: [String: String] = [
            "KB_AUTH_TOKEN": token, "KB_DATA_DIR": data.path, "KB_TEAM": "",
            "KB_GRAPH_STORE_ADDR": "127.0.0.1:\(hostPorts["KB_GRAPH_STORE_HOST_PORT"]!)",
            "KB_GRAPH_STORE_ADMIN_PORT": "\(hostPorts["KB_GRAPH_STORE_ADMIN_HOST_PORT"]!)",
            "KB_VECTOR_SEARCH_ADDR": "127.0.0.1:\(hostPorts["KB_VECTOR_SEARCH_HOST_PORT"]!)",
            "KB_VECTOR_SEARCH_ADMIN_PORT": "\(hostPorts["KB_VECTOR_SEARCH_ADMIN_HOST_PORT"]!)",
            "KB_BUDGET_SERVICE_ADDR": "127.0.0.1:\(hostPorts["KB_BUDGET_SERVICE_HOST_PORT"]!)",
            "KB_BUDGET_SERVICE_ADMIN_PORT": "\(hostPorts["KB_BUDGET_SERVICE_ADMIN_HOST_PORT"]!)",
            "KB_VKB_PORT": "\(hostPorts["KB_VKB_HOST_PORT"]!)",
        ]
        func kb(_ arguments: [String], _ extra: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
            try ContainerEngine.runAndReap(builtProductsDirectory.appendingPathComponent("kb"), arguments, environment: clientEnvironment.merging(extra) { $1 })
        }
        func logs() -> String {
            var text = ""
            for service in Self.systemServices {
                for container in (try? project.containers(service)) ?? [] {
                    let output = try? ContainerEngine.podman(["logs", container])
                    let log = (output?.stdout ?? "") + (output?.stderr ?? "")
                    text += "--- \(container)\n\(log.suffix(2000))\n"
                }
            }
            return text
        }
        var gatewayAdminPorts: [Int] = []
        for gateway in gateways {
            if let port = try project.hostPort(gateway, 9103) { gatewayAdminPorts.append(port) }
        }
        #expect(gatewayAdminPorts.count == gateways.count, "each replica publishes 9103 on a host port of its own: \(gatewayAdminPorts)")
        clientEnvironment["KB_INFERENCE_GATEWAY_ADMIN_PORT"] = "\(gatewayAdminPorts.first ?? 9103)"

        let deadline = ContinuousClock.now + .seconds(240)
        var status = (status: Int32(-1), stdout: "", stderr: "")
        while ContinuousClock.now < deadline {
            status = try kb(["status", "--ready"])
            if status.status == 0 { break }
            try await Task.sleep(for: .seconds(1))
        }
        #expect(status.status == 0, "kb status: \(status.stdout)\(status.stderr)\n\(logs())")
        guard status.status == 0 else { return }
        for port in gatewayAdminPorts.dropFirst() {
            let replica = try kb(["status", "--ready", "--only", "inference-gateway"], ["KB_INFERENCE_GATEWAY_ADMIN_PORT": "\(port)"])
            #expect(replica.status == 0, "the second gateway replica: \(replica.stdout)\(replica.stderr)")
        }

        // Each container's compose health check (kb status --only <service> --ready inside it).
        // podman schedules health checks with systemd timers; this sandbox has no systemd, so
        // the test runs each one (README "docker-compose").
        for service in Self.systemServices {
            for container in try project.containers(service) {
                let check = try ContainerEngine.podman(["healthcheck", "run", container])
                #expect(check.status == 0, "health check of \(container): \(check.stdout)\(check.stderr)")
            }
        }

        // The smoke test: ukb on the host imports and counts; the gateways index by name.
        let file = work.appendingPathComponent("smoke.json")
        try Data(smokeGraph.utf8).write(to: file)
        let ukb = builtProductsDirectory.appendingPathComponent("ukb")
        let imported = try ContainerEngine.runAndReap(ukb, ["import", file.path], environment: clientEnvironment)
        #expect(imported.status == 0, "ukb import: \(imported.stdout)\(imported.stderr)")
        let stats = try ContainerEngine.runAndReap(ukb, ["query", "--stats"], environment: clientEnvironment)
        #expect(statNumber(stats.stdout, "Total Entities:") == 3 && statNumber(stats.stdout, "Total Relations:") == 2, "ukb query --stats: \(stats.stdout)\(stats.stderr)")
        // An online backup lands in the shared `backups` volume (KB_BACKUP_DIR=/backups), not in a
        // container's own layer: budget-service's container sees what graph-store wrote.
        let backup = try ContainerEngine.runAndReap(ukb, ["backup", "compose-check"], environment: clientEnvironment)
        #expect(backup.status == 0, "ukb backup: \(backup.stdout)\(backup.stderr)")
        let budgetContainer = try #require(try project.containers("budget-service").first)
        let listed = try ContainerEngine.podman(["exec", budgetContainer, "ls", "/backups/compose-check"])
        #expect(listed.status == 0 && !listed.stdout.isEmpty, "the graph's backup in the backups volume: \(listed.stdout)\(listed.stderr)")
        let points = try await waitForIndexedPoints(3) { try kb(["vectors", "describe", "knowledge_384", "--json"]) }
        #expect(points == 3, "knowledge_384 holds the 3 entities: \(points)\n\(logs())")
    }
}
