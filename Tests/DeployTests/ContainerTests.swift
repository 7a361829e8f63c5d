import Foundation
import KBTestSupport
import Testing

/// The containers one test started, removed (with their volumes) when it ends, however it ends.
final class ContainerRun: @unchecked Sendable {
    /// A label on everything this run starts, so the end can check that nothing is left.
    let label: String
    private(set) var containers: [String] = []
    private(set) var volumes: [String] = []

    init() {
        label = "kb-test-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Starts `command` of `image` in the background on the host's network, with a volume of its
    /// own at /data (`volume`: a name under this run, reused when given twice).
    func start(_ name: String, image: String, command: [String], volume: String?, environment: [String: String]) throws {
        let container = "\(label)-\(name)"
        var arguments = ["run", "-d", "--name", container, "--label", "kb.test=\(label)", "--network", "host"]
        if let volume {
            let volumeName = "\(label)-\(volume)"
            if !volumes.contains(volumeName) {
                let created = try ContainerEngine.podman(["volume", "create", "--label", "kb.test=\(label)", volumeName])
                guard created.status == 0 else { throw ProcessFailure("podman volume create \(volumeName): \(created.stderr)") }
                volumes.append(volumeName)
            }
            arguments += ["-v", "\(volumeName):/data"]
        }
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) { arguments += ["-e", "\(key)=\(value)"] }
        containers.append(container)
        let result = try ContainerEngine.podman(arguments + [image] + command)
        guard result.status == 0 else { throw ProcessFailure("podman run \(name): \(result.stderr)") }
    }

    /// Stops and removes one container (its volume stays).
    func remove(_ name: String) throws {
        let container = "\(label)-\(name)"
        let result = try ContainerEngine.podman(["rm", "-f", "-v", "-t", "10", container])
        guard result.status == 0 else { throw ProcessFailure("podman rm \(container): \(result.stderr)") }
        containers.removeAll { $0 == container }
    }

    /// The container's log (the service's JSON lines).
    func logs(_ name: String) -> String {
        (try? ContainerEngine.podman(["logs", "\(label)-\(name)"])).map { $0.stdout + $0.stderr } ?? ""
    }

    /// Runs `arguments` in the running container `name`.
    func exec(_ name: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try ContainerEngine.podman(["exec", "\(label)-\(name)"] + arguments)
    }

    /// Removes every container and volume of this run; what podman still lists under the label after.
    @discardableResult
    func removeAll() -> String {
        if !containers.isEmpty { _ = try? ContainerEngine.podman(["rm", "-f", "-v", "-t", "10"] + containers) }
        if !volumes.isEmpty { _ = try? ContainerEngine.podman(["volume", "rm", "-f"] + volumes) }
        containers = []
        volumes = []
        let left = (try? ContainerEngine.podman(["ps", "-a", "-q", "--filter", "label=kb.test=\(label)"]))?.stdout ?? ""
        let leftVolumes = (try? ContainerEngine.podman(["volume", "ls", "-q", "--filter", "label=kb.test=\(label)"]))?.stdout ?? ""
        return (left + leftVolumes).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

@Suite("Container image: the whole system in podman", .serialized)
struct ContainerTests {
    let token = "container-test-\(UUID().uuidString)"

    /// `kb` or `ukb` of this test run, on the host, as a client of the containers.
    func client(_ tool: String, _ arguments: [String], ports: SystemPorts, data: URL) throws -> (status: Int32, stdout: String, stderr: String) {
        try ContainerEngine.runAndReap(builtProductsDirectory.appendingPathComponent(tool), arguments, environment: ports.environment.merging([
            "KB_AUTH_TOKEN": token, "KB_DATA_DIR": data.path, "KB_TEAM": "", "KB_BIND_HOST": "127.0.0.1",
        ]) { $1 })
    }

    /// Waits until `kb status` passes (every service serving and ready); its last output when time runs out.
    func waitForSystem(ports: SystemPorts, data: URL, timeout: Duration = .seconds(180)) async throws -> (ok: Bool, output: String) {
        let deadline = ContinuousClock.now + timeout
        var last = ""
        while ContinuousClock.now < deadline {
            let status = try client("kb", ["status", "--ready"], ports: ports, data: data)
            last = status.stdout + status.stderr
            if status.status == 0 { return (true, last) }
            try await Task.sleep(for: .seconds(1))
        }
        return (false, last)
    }

    @Test(
        "the image runs every service on host networking: kb status passes, ukb imports and counts, the health check and the volume work, nothing is left",
        .enabled(if: ContainerEngine.runnable(ContainerEngine.tools), "podman, runc and debootstrap are not installed, or not root (scripts/setup-system.sh --test installs them)")
    )
    func wholeSystemInContainers() async throws {
        try ContainerEngine.requireTools(ContainerEngine.tools)
        let image = try ContainerEngine.builtImage()
        let run = ContainerRun()
        defer {
            let left = run.removeAll()
            #expect(left.isEmpty, "containers or volumes left behind: \(left)")
        }
        let ports = SystemPorts()
        let data = temporaryDirectory("container-client")
        // Loopback only: host networking would otherwise put the services on every interface.
        let environment = ports.environment.merging(["KB_AUTH_TOKEN": token, "KB_BIND_HOST": "127.0.0.1"]) { $1 }
        let volumes = ["graph-store": "graph", "vector-search": "vectors", "budget-service": "budget", "inference-gateway": "inference"]
        for (name, _) in SystemPorts.services {
            try run.start(name, image: image, command: [name], volume: volumes[name], environment: environment)
        }

        let system = try await waitForSystem(ports: ports, data: data)
        let allLogs = SystemPorts.services.map { "--- \($0.name)\n\(run.logs($0.name).suffix(3000))" }.joined(separator: "\n")
        #expect(system.ok, "kb status did not pass: \(system.output)\n\(allLogs)")
        guard system.ok else { return }
        for (name, _) in SystemPorts.services {
            #expect(system.output.contains(name), "kb status lists \(name): \(system.output)")
        }

        // The image's own health check (kb-healthcheck → kb status --only <service> --ready).
        for (name, _) in SystemPorts.services {
            let check = try ContainerEngine.podman(["healthcheck", "run", "\(run.label)-\(name)"])
            #expect(check.status == 0, "podman healthcheck run \(name): \(check.stdout)\(check.stderr)")
        }
        // Not root, inside.
        let user = try run.exec("graph-store", ["id", "-u"])
        #expect(user.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "10001", "the services run as the image's kb user: \(user)")

        // ukb on the host imports and counts through the containers' graph-store.
        let file = data.appendingPathComponent("smoke.json")
        try Data(smokeGraph.utf8).write(to: file)
        let imported = try client("ukb", ["import", file.path], ports: ports, data: data)
        #expect(imported.status == 0, "ukb import: \(imported.stdout)\(imported.stderr)")
        let stats = try client("ukb", ["query", "--stats"], ports: ports, data: data)
        #expect(stats.status == 0, "ukb query --stats: \(stats.stderr)")
        #expect(statNumber(stats.stdout, "Total Entities:") == 3, "\(stats.stdout)")
        #expect(statNumber(stats.stdout, "Total Relations:") == 2, "\(stats.stdout)")

        // The gateway's indexer, in its container, embeds them into vector-search's knowledge_384
        // (the embedding model and OpenBLAS in the image, the peers' addresses from the environment).
        let points = try await waitForIndexedPoints(3) { try client("kb", ["vectors", "describe", "knowledge_384", "--json"], ports: ports, data: data) }
        #expect(points == 3, "knowledge_384 holds the 3 entities: \(points)\n\(run.logs("inference-gateway").suffix(3000))")

        // The image's ukb agrees, and the refused token is refused.
        let inside = try ContainerEngine.podman(
            ["run", "--rm", "--network", "host", "--label", "kb.test=\(run.label)"]
                + environment.sorted { $0.key < $1.key }.flatMap { ["-e", "\($0.key)=\($0.value)"] }
                + [image, "ukb", "query", "--stats"]
        )
        #expect(inside.status == 0 && statNumber(inside.stdout, "Total Entities:") == 3, "ukb in the image: \(inside.stdout)\(inside.stderr)")
        let wrongToken = try ContainerEngine.runAndReap(builtProductsDirectory.appendingPathComponent("ukb"), ["query", "--stats"], environment: ports.environment.merging(["KB_AUTH_TOKEN": "wrong", "KB_DATA_DIR": data.path, "KB_TEAM": ""]) { $1 })
        #expect(wrongToken.status != 0, "a wrong token is refused by the containers' graph-store")

        // The graph lives in the volume: a new container on it still holds it.
        try run.remove("graph-store")
        try run.start("graph-store", image: image, command: ["graph-store"], volume: "graph", environment: environment)
        let again = try await waitForSystem(ports: ports, data: data, timeout: .seconds(60))
        #expect(again.ok, "graph-store on its old volume: \(again.output)\n\(run.logs("graph-store"))")
        let restarted = try client("ukb", ["query", "--stats"], ports: ports, data: data)
        #expect(statNumber(restarted.stdout, "Total Entities:") == 3 && statNumber(restarted.stdout, "Total Relations:") == 2, "after a new container on the volume: \(restarted.stdout)\(restarted.stderr)")
    }
}
