import Foundation

/// Why a benchmark could not go on; printed as the last line before it exits.
public struct BenchmarkFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The executable `name` built beside the running benchmark (e.g. `.build/release/graph-store`).
public func siblingExecutable(_ name: String) -> URL {
    URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent(name)
}

/// Starts `executable` with the current environment overlaid by `environment`; its output goes to
/// `log` when given (created or truncated), else to this process's.
public func startProcess(_ executable: URL, arguments: [String] = [], environment: [String: String] = [:], log: URL? = nil) throws -> Process {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    if let log {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
    }
    try process.run()
    return process
}

/// What a finished helper process printed.
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var standardOutput: String
    public var standardError: String
    /// The last non-empty line of standard error, for a one-line failure message.
    public var lastErrorLine: String { standardError.split(separator: "\n").last.map(String.init) ?? "" }
}

/// Runs `executable` to its end and captures its output (both streams read while it runs, so a
/// chatty helper cannot block on a full pipe). `python3 …` is run as `/usr/bin/env python3 …`.
public func runToEnd(_ executable: String, _ arguments: [String], environment: [String: String] = [:], directory: URL? = nil) throws -> ProcessOutput {
    let process = Process()
    if executable.contains("/") {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
    } else {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
    }
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    if let directory { process.currentDirectoryURL = directory }
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let errorData = LockedData()
    let errorsRead = DispatchSemaphore(value: 0)
    Thread {
        errorData.set(errors.fileHandleForReading.readDataToEndOfFile())
        errorsRead.signal()
    }.start()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    errorsRead.wait()
    return ProcessOutput(status: process.terminationStatus,
                         standardOutput: String(decoding: outputData, as: UTF8.self),
                         standardError: String(decoding: errorData.value, as: UTF8.self))
}

private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?
    func set(_ value: Data) { lock.withLock { data = value } }
    var value: Data { lock.withLock { data ?? Data() } }
}

/// Polls `probe` every 100 ms until it answers true; throws when `what` is not ready within `limit`.
public func waitUntilReady(_ what: String, within limit: Duration = .seconds(30), _ probe: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while await !probe() {
        guard ContinuousClock.now < deadline else { throw BenchmarkFailure("\(what) was not ready within \(limit)") }
        try await Task.sleep(for: .milliseconds(100))
    }
}
