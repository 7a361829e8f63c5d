import Foundation
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The folder holding the package's built executables (beside the test bundle).
public let builtProductsDirectory: URL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()

/// The package's root folder.
public let packageRoot: URL = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url
}()

/// A loopback TCP port that was free a moment ago, and that this test process has not handed out
/// before.
///
/// Drawn from 20000–32767, below Linux's ephemeral range (32768–60999): a port the kernel picks
/// for `bind(0)` is one it also gives to outgoing connections, so between this check and the
/// service's own bind another process's client socket could take it (a test run saw
/// vector-search fail with "Address already in use" that way). Falls back to `bind(0)` when no
/// port below the range is free.
public func freePort() -> Int {
    for _ in 0..<200 {
        let candidate = Int.random(in: 20_000..<32_768)
        guard handedOutPorts.withLock({ $0.insert(candidate).inserted }) else { continue }
        if bindsLoopback(candidate) { return candidate }
    }
    let port = bindLoopback(0)
    handedOutPorts.withLock { _ = $0.insert(port) }
    return port
}

private let handedOutPorts = Mutex<Set<Int>>([])

private func bindsLoopback(_ port: Int) -> Bool { bindLoopback(port) == port }

/// Binds a loopback TCP socket to `port` (0: the kernel's choice) and closes it; the port bound,
/// or 0 when the bind failed.
private func bindLoopback(_ port: Int) -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard bound == 0 else { return 0 }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Serializes `Process.run()`: swift-corelibs-foundation's launch path crashed once (a bad
/// memmove inside `Process.run`) while tests in parallel suites launched processes at once.
private let processLaunchLock = NSLock()

/// Starts `process`, one launch at a time across the test run.
public func launch(_ process: Process) throws {
    try processLaunchLock.withLock { try process.run() }
}

/// A fresh temporary folder.
public func temporaryDirectory(_ prefix: String = "kb-test") -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)", isDirectory: true)
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// An HTTP response: status and body.
public struct HTTPResult: Sendable {
    public let status: Int
    public let body: String
    /// Response headers, names lowercased.
    public var headers: [String: String] = [:]

    public init(status: Int, body: String, headers: [String: String] = [:]) {
        self.status = status
        self.body = body
        self.headers = headers
    }

    /// The body parsed as a JSON object (empty when it is not one).
    public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
}

private func lowercasedHeaders(_ response: HTTPURLResponse) -> [String: String] {
    var headers: [String: String] = [:]
    for (name, value) in response.allHeaderFields {
        headers[String(describing: name).lowercased()] = String(describing: value)
    }
    return headers
}

/// GETs `url`, or nil when nothing answers.
public func httpGet(_ url: String, timeout: TimeInterval = 5) async -> HTTPResult? {
    var request = URLRequest(url: URL(string: url)!)
    request.timeoutInterval = timeout
    guard let (data, response) = try? await URLSession.shared.data(for: request), let http = response as? HTTPURLResponse else { return nil }
    return HTTPResult(status: http.statusCode, body: String(decoding: data, as: UTF8.self))
}

/// Sends `method` to `url` with `body` and `headers`, or nil when nothing answers.
public func httpRequest(_ method: String, _ url: String, body: Data? = nil, headers: [String: String] = [:], timeout: TimeInterval = 5) async -> HTTPResult? {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.httpBody = body
    request.timeoutInterval = timeout
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    guard let (data, response) = try? await URLSession.shared.data(for: request), let http = response as? HTTPURLResponse else { return nil }
    return HTTPResult(status: http.statusCode, body: String(decoding: data, as: UTF8.self), headers: lowercasedHeaders(http))
}

/// Runs a program to completion and returns its exit code and output.
///
/// Output goes through temporary files, not pipes: a pipe's write end can leak into a process
/// another test starts at the same moment (a long-lived service), and reading it to the end then
/// waits for that service to exit — a hang seen in the full parallel run.
public func runProgram(_ executable: URL, _ arguments: [String] = [], environment: [String: String] = [:], currentDirectory: URL? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    if let currentDirectory { process.currentDirectoryURL = currentDirectory }
    let folder = temporaryDirectory("kb-run")
    defer { try? FileManager.default.removeItem(at: folder) }
    let outURL = folder.appendingPathComponent("stdout"), errURL = folder.appendingPathComponent("stderr")
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try launch(process)
    try? out.close()
    try? err.close()
    process.waitUntilExit()
    let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
    let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
    return (process.terminationStatus, stdout, stderr)
}

/// A service executable started by a test on free loopback ports, stopped when the test ends.
public final class ServiceProcess: @unchecked Sendable {
    public let process = Process()
    public let dataDirectory: URL
    public let logFile: URL
    private let portLock = NSLock()
    private var listening: (rpc: Int, admin: Int)?

    /// The RPC port the service bound (read from its log; waits for it up to 20 s).
    public var port: Int { listeningPorts().rpc }
    /// The admin HTTP port the service bound.
    public var adminPort: Int { listeningPorts().admin }

    /// Starts `executable` with its data directory and ports set through `envPrefix` keys. The
    /// ports are 0: the service binds free ones and logs them, so no other process can take a
    /// port between our choosing it and the service binding it (a race that made services exit
    /// at start in the full parallel run).
    /// Whether the service has an RPC port (VKB has only its HTTP one).
    public let hasRPC: Bool

    public init(executable: String, envPrefix: String, environment: [String: String] = [:], dataDirectory: URL? = nil, hasRPC: Bool = true) throws {
        self.hasRPC = hasRPC
        let port = 0, adminPort = 0
        self.dataDirectory = dataDirectory ?? temporaryDirectory("kb-data")
        logFile = self.dataDirectory.appendingPathComponent("\(executable)-\(UUID().uuidString.prefix(8)).log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        process.executableURL = builtProductsDirectory.appendingPathComponent(executable)
        process.environment = ProcessInfo.processInfo.environment.merging([
            "\(envPrefix)_PORT": "\(port)",
            "\(envPrefix)_ADMIN_PORT": "\(adminPort)",
            "KB_DATA_DIR": self.dataDirectory.path,
            "KB_LOG_FORMAT": "json",
            // vector-search's Qdrant port (default 6333): a free one, so tests never collide.
            "KB_VECTOR_QDRANT_PORT": "0",
        ].merging(environment) { $1 }) { $1 }
        let handle = try FileHandle(forWritingTo: logFile)
        process.standardOutput = handle
        process.standardError = handle
        try launch(process)
    }

    /// The ports from the log lines `rpc server listening` (its address) and `admin http
    /// listening` (its port); (0, 0) when the process exits or 20 s pass without them.
    private func listeningPorts() -> (rpc: Int, admin: Int) {
        let deadline = Date().addingTimeInterval(20)
        while true {
            if let known = portLock.withLock({ listening }) { return known }
            var rpc: Int?, admin: Int?
            for line in log.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
                if object["message"] as? String == "rpc server listening", let address = object["address"] as? String {
                    rpc = address.split(separator: ":").last.flatMap { Int($0) }
                }
                if object["message"] as? String == "admin http listening", let port = object["port"] as? String {
                    admin = Int(port)
                }
            }
            if let admin, let rpc = rpc ?? (hasRPC ? nil : 0) {
                portLock.withLock { listening = (rpc, admin) }
                return (rpc, admin)
            }
            if !process.isRunning || Date() > deadline { return (rpc ?? 0, admin ?? 0) }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// Waits until `/health/ready` answers 200; throws with the log when the process dies or time runs out.
    public func waitUntilReady(timeout: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if !process.isRunning { throw ProcessFailure("exited with \(process.terminationStatus) before ready: \(log)") }
            if portLock.withLock({ listening }) == nil && !(log.contains("admin http listening") && (!hasRPC || log.contains("rpc server listening"))) {
                try await Task.sleep(for: .milliseconds(20))
                continue
            }
            if await httpGet("http://127.0.0.1:\(adminPort)/health/ready", timeout: 1)?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ProcessFailure("not ready within \(timeout): \(log)")
    }

    /// The port of the HTTP server whose log says `<name> http listening` (vector-search's
    /// `qdrant`); 0 when the process exits or 20 s pass without it.
    public func httpPort(_ name: String) -> Int {
        let deadline = Date().addingTimeInterval(20)
        while true {
            for line in log.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
                if object["message"] as? String == "\(name) http listening", let port = (object["port"] as? String).flatMap(Int.init) { return port }
            }
            if !process.isRunning || Date() > deadline { return 0 }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// Sends `signal` and waits for the exit; returns the exit status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(20)) async -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        return process.terminationStatus
    }

    /// What the process has logged so far.
    public var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A test process that did not behave.
public struct ProcessFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
