import Foundation
import KBRPC
import KBRuntime

#if canImport(Glibc)
import Glibc
#endif

/// A store service started by the launcher on a scratch data directory, on free loopback ports
/// and apart from the live system: how `kb verify-backup` and `kb restore` open a backup's copy
/// of a store with the service's own code (restore, verify, counts) instead of reading its files.
///
/// Its ports are 0 (the service binds free ones and logs them; no race with another process),
/// its Qdrant port is off, its token is a random one of its own, and it is given no peer address.
final class ScratchService: @unchecked Sendable {
    let descriptor: ServiceDescriptor
    let pid: pid_t
    let logFile: URL
    let token = UUID().uuidString
    private(set) var rpcPort = 0
    private(set) var adminPort = 0

    /// Starts `descriptor`'s executable from `binDirectory` with `dataDirectory` as its
    /// `KB_DATA_DIR`, `backupDirectory` (when given) as its `KB_BACKUP_DIR`.
    init(_ descriptor: ServiceDescriptor, binDirectory: URL, environment: [String: String], dataDirectory: URL, backupDirectory: URL? = nil) throws {
        self.descriptor = descriptor
        let executable = binDirectory.appendingPathComponent(descriptor.name)
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw LauncherError("\(descriptor.name) is not installed in \(binDirectory.path); it is needed to open its store's backup")
        }
        logFile = dataDirectory.appendingPathComponent("\(descriptor.name).log")
        var environment = environment.filter { !$0.key.hasSuffix("_ADDR") }
        environment[ServiceConfiguration.Keys.dataDirectory.name] = dataDirectory.path
        environment[ServiceConfiguration.Keys.backupDirectory.name] = (backupDirectory ?? dataDirectory.appendingPathComponent("backups")).path
        environment[descriptor.portKey] = "0"
        environment[descriptor.adminPortKey] = "0"
        environment[descriptor.hostKey] = "127.0.0.1"
        environment["KB_LOG_FORMAT"] = "json"
        environment["KB_VECTOR_QDRANT_PORT"] = "off"
        environment[ServiceConfiguration.Keys.authToken.name] = token
        pid = try ProcessControl.spawn(executable: executable, environment: environment, logFile: logFile)
    }

    /// Waits until the service logged its ports and answers `/health/ready`.
    func waitUntilReady(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = ProcessControl.reap(pid) {
                throw LauncherError("\(descriptor.name) on the scratch copy exited with status \(status) before it was ready:\n\(lastLines())")
            }
            if rpcPort == 0 || adminPort == 0 { readPorts() }
            if rpcPort > 0, adminPort > 0, await HealthProbe.isReady(host: "127.0.0.1", port: adminPort) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        await stop()
        throw LauncherError("\(descriptor.name) on the scratch copy was not ready within \(timeout):\n\(lastLines())")
    }

    /// A client of it.
    func client() -> RPCClient {
        var configuration = RPCClient.Configuration(host: "127.0.0.1", port: rpcPort)
        configuration.authToken = token
        configuration.connections = 1
        configuration.defaultTimeout = .seconds(3600)
        return RPCClient(configuration: configuration)
    }

    /// Stops it (SIGTERM, SIGKILL after 30 s).
    func stop() async {
        await ProcessControl.stop(pid, grace: .seconds(30), isChild: true)
    }

    /// The ports from its JSON log: `rpc server listening` (address) and `admin http listening` (port).
    private func readPorts() {
        guard let text = try? String(contentsOf: logFile, encoding: .utf8) else { return }
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            switch object["message"] as? String {
            case "rpc server listening":
                if let address = object["address"] as? String, let port = address.split(separator: ":").last.flatMap({ Int($0) }) { rpcPort = port }
            case "admin http listening":
                if let port = (object["port"] as? String).flatMap(Int.init) { adminPort = port }
            default:
                continue
            }
        }
    }

    private func lastLines() -> String {
        let text = (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(10).joined(separator: "\n")
    }
}

/// Runs a tool to its end with its output captured (through a file: a pipe's write end could be
/// inherited by a service started meanwhile); returns its status and output.
func runTool(_ executable: URL, _ arguments: [String], environment: [String: String], currentDirectory: URL? = nil) throws -> (status: Int32, output: String) {
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("kb-tool-\(UUID().uuidString).out")
    FileManager.default.createFile(atPath: output.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: output) }
    let handle = try FileHandle(forWritingTo: output)
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = environment
    if let currentDirectory { process.currentDirectoryURL = currentDirectory }
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    do { try process.run() } catch {
        try? handle.close()
        throw LauncherError("cannot run \(executable.path): \(error)")
    }
    try? handle.close()
    process.waitUntilExit()
    let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
    return (process.terminationStatus, text.trimmingCharacters(in: .whitespacesAndNewlines))
}
