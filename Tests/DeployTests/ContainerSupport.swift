import Foundation
import KBTestSupport
import Testing

/// podman as the project runs it (deploy/containers/containers.conf through `CONTAINERS_CONF`,
/// `--runtime runc`), and the image the container tests run, built once per test run.
enum ContainerEngine {
    /// The project's podman settings.
    static let containersConf = packageRoot.appendingPathComponent("deploy/containers/containers.conf")
    /// The image the tests build and run (build.sh `--tag`).
    static let testImage = "localhost/kb-system:test"
    /// The tools the container tests need.
    static let tools = ["podman", "runc", "debootstrap"]

    /// `name` found on PATH.
    static func executable(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let folders = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
        return folders.lazy.map { URL(fileURLWithPath: $0).appendingPathComponent(name) }.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// Whether CI demands the deployment tools (`KB_REQUIRE_DEPLOY_TOOLS=1`, set by scripts/test.sh):
    /// then a missing tool fails the test instead of skipping it.
    static var toolsRequired: Bool { ProcessInfo.processInfo.environment["KB_REQUIRE_DEPLOY_TOOLS"] == "1" }

    /// Whether a test needing `names` runs: they are all installed and we are root (debootstrap,
    /// rootful podman), or CI demands them (and the test then fails on what is missing).
    static func runnable(_ names: [String]) -> Bool {
        toolsRequired || (getuid() == 0 && names.allSatisfy { executable($0) != nil })
    }

    /// Records an issue and throws when a tool in `names` is missing or we are not root.
    static func requireTools(_ names: [String]) throws {
        let missing = names.filter { executable($0) == nil }
        if !missing.isEmpty {
            throw ProcessFailure("\(missing.joined(separator: ", ")) not installed: scripts/setup-system.sh --test installs them (KB_REQUIRE_DEPLOY_TOOLS=1 demands them)")
        }
        if getuid() != 0 { throw ProcessFailure("the container tests build the base image with debootstrap and run rootful podman: run them as root") }
    }

    /// Runs podman with the project's settings.
    @discardableResult
    static func podman(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        guard let podman = executable("podman") else { throw ProcessFailure("podman is not installed") }
        return try runAndReap(podman, ["--runtime", "runc"] + arguments, environment: ["CONTAINERS_CONF": containersConf.path])
    }

    /// Runs a program and waits for it alone (`waitpid`), its output through files.
    ///
    /// Not Foundation's `Process`: `podman run -d` leaves conmon running with the descriptors
    /// podman inherited, and `Process.waitUntilExit` waits for the end of one of them — for
    /// ever, as long as the container runs. Every program of these tests runs this way (a
    /// `Process` beside these children hung once too).
    static func runAndReap(_ executable: URL, _ arguments: [String], environment: [String: String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let folder = temporaryDirectory("kb-podman")
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("stdout").path, err = folder.appendingPathComponent("stderr").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable.path] + arguments).map { strdup($0) } + [nil]
        let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable.path, &actions, nil, argv, envp)
        guard spawned == 0 else { throw ProcessFailure("could not start \(executable.path): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        return (code, stdout, stderr)
    }

    /// What building the test image gave: build.sh's exit status, its output, and how long it took.
    struct Build: Sendable {
        let status: Int32
        let output: String
        let seconds: Double
    }

    /// Builds the image once per test run from the executables this test run has (build.sh
    /// `--bin-dir`, with the Swift runtime they load: a release build would add more than ten
    /// minutes to CI on two cores; README "Containers").
    static let imageBuild: Build = {
        let started = Date()
        do {
            let result = try runAndReap(
                packageRoot.appendingPathComponent("deploy/containers/build.sh"),
                ["--debug", "--bin-dir", builtProductsDirectory.path, "--tag", "kb-system:test"], environment: [:]
            )
            let seconds = Date().timeIntervalSince(started)
            print("deploy/containers/build.sh --debug: \(Int(seconds)) s\n\(result.stdout)")
            return Build(status: result.status, output: result.stdout + result.stderr, seconds: seconds)
        } catch {
            return Build(status: -1, output: "\(error)", seconds: 0)
        }
    }()

    /// The test image's name; throws with build.sh's output when it did not build.
    static func builtImage() throws -> String {
        let build = imageBuild
        guard build.status == 0 else { throw ProcessFailure("deploy/containers/build.sh failed (\(build.status)):\n\(build.output)") }
        return testImage
    }
}

/// Free loopback ports for every service of the system, and the environment that gives them to
/// the services and to their clients (`KB_<SERVICE>_PORT`, `_ADMIN_PORT`, `_ADDR`).
struct SystemPorts {
    let rpc: [String: Int]
    let admin: [String: Int]
    let qdrant: Int

    /// The services in start order, each with its configuration prefix.
    static let services: [(name: String, prefix: String)] = [
        ("graph-store", "KB_GRAPH_STORE"), ("vector-search", "KB_VECTOR_SEARCH"), ("budget-service", "KB_BUDGET_SERVICE"),
        ("inference-gateway", "KB_INFERENCE_GATEWAY"), ("vkb", "KB_VKB"),
    ]

    init() {
        var rpc: [String: Int] = [:], admin: [String: Int] = [:]
        for (name, _) in Self.services {
            if name != "vkb" { rpc[name] = freePort() }
            admin[name] = freePort()
        }
        self.rpc = rpc
        self.admin = admin
        qdrant = freePort()
    }

    /// Every port and address key, for a service or a client.
    var environment: [String: String] {
        var environment = ["KB_VECTOR_QDRANT_PORT": "\(qdrant)"]
        for (name, prefix) in Self.services {
            if let port = rpc[name] {
                environment["\(prefix)_PORT"] = "\(port)"
                environment["\(prefix)_ADMIN_PORT"] = "\(admin[name]!)"
                environment["\(prefix)_ADDR"] = "127.0.0.1:\(port)"
            } else {
                environment["\(prefix)_PORT"] = "\(admin[name]!)"
            }
        }
        return environment
    }
}

/// A small knowledge graph in the shared-memory JSON format `ukb import` reads: 3 entities, 2 relations.
let smokeGraph = #"""
{"entities": [
  {"name": "Retry Policy", "entityType": "Pattern", "significance": 8, "observations": ["back off exponentially on 503"]},
  {"name": "Timeout Bug", "entityType": "Bug", "observations": ["the client gave up after 1 s"]},
  {"name": "Container Image", "entityType": "Decision", "observations": ["one image, the command chooses the service"]}],
 "relations": [
  {"from": "Timeout Bug", "to": "Retry Policy", "relationType": "fixed_by"},
  {"from": "Container Image", "to": "Retry Policy", "relationType": "relates_to"}],
 "metadata": {"team": "containers"}}
"""#

/// The number after `label` in `ukb query --stats` output.
func statNumber(_ output: String, _ label: String) -> Int? {
    output.split(separator: "\n").first { $0.hasPrefix(label) }.flatMap { $0.split(separator: " ").last.flatMap { Int($0) } }
}

/// Polls `describe` (`kb vectors describe knowledge_384 --json`) until the collection holds
/// `expected` points: the gateway's indexer embedded the graph. The last count seen otherwise.
func waitForIndexedPoints(_ expected: Int, timeout: Duration = .seconds(120), describe: () throws -> (status: Int32, stdout: String, stderr: String)) async throws -> Int {
    let deadline = ContinuousClock.now + timeout
    var count = -1
    while ContinuousClock.now < deadline {
        let result = try describe()
        let json = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any]
        count = (json?["point_count"] as? Int) ?? (json?["point_count"] as? String).flatMap(Int.init) ?? -1
        if count == expected { return count }
        try await Task.sleep(for: .seconds(1))
    }
    return count
}
