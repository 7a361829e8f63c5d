import Foundation
import KBRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Starts, watches and stops the system's services on one machine: the logic behind `kb up`,
/// `kb down`, `kb status` and `kb logs`.
///
/// Services are the catalog's executables found in `binDirectory` (normally beside `kb`). Their
/// pid files live in `<KB_DATA_DIR>/run/`, their logs in `<KB_DATA_DIR>/logs/`.
public struct Launcher: Sendable {
    /// One service the launcher manages, with the addresses it will use.
    public struct Managed: Sendable {
        public let descriptor: ServiceDescriptor
        public let configuration: ServiceConfiguration
        public let executable: URL
        /// The command line after the executable (the session learner's `learn --watch …`).
        public var arguments: [String] = []

        /// The host to probe: the bind host, or loopback when it binds every interface.
        public var probeHost: String {
            ["0.0.0.0", "::", ""].contains(configuration.host) ? "127.0.0.1" : configuration.host
        }
    }

    public let environment: [String: String]
    public let binDirectory: URL
    public let dataDirectory: URL
    public let source: ConfigSource
    private let print: @Sendable (String) -> Void

    /// A launcher reading `environment` (KB_* keys) and finding executables in `binDirectory`.
    public init(environment: [String: String], binDirectory: URL, print: @escaping @Sendable (String) -> Void = { Swift.print($0) }) throws {
        var environment = environment
        let dataKey = ServiceConfiguration.Keys.dataDirectory
        let data = URL(fileURLWithPath: try ConfigSource(environment: environment).value(of: dataKey), isDirectory: true).standardizedFileURL
        environment[dataKey.name] = data.path  // children see one absolute path, whatever their cwd
        self.environment = environment
        self.binDirectory = binDirectory
        self.dataDirectory = data
        self.source = try ConfigSource(environment: environment)
        self.print = print
    }

    public var runDirectory: URL { dataDirectory.appendingPathComponent("run", isDirectory: true) }
    var logDirectory: URL { dataDirectory.appendingPathComponent("logs", isDirectory: true) }

    public func pidFile(_ name: String) -> URL { runDirectory.appendingPathComponent("\(name).pid") }
    /// The log file of service `name`.
    public func logFile(_ name: String) -> URL { logDirectory.appendingPathComponent("\(name).log") }

    /// The catalog's services whose executables exist, in start order; `only` narrows the set.
    public func installedServices(only: [String] = []) throws -> [Managed] {
        for name in only where !knows(name) {
            throw LauncherError("unknown service '\(name)'; known: \(Self.managedDescriptors.map(\.name).joined(separator: ", "))")
        }
        var services = try ServiceDescriptor.catalog.compactMap { descriptor -> Managed? in
            guard only.isEmpty || only.contains(descriptor.name) else { return nil }
            let executable = binDirectory.appendingPathComponent(descriptor.name)
            guard FileManager.default.isExecutableFile(atPath: executable.path) else { return nil }
            return Managed(descriptor: descriptor, configuration: try ServiceConfiguration(descriptor: descriptor, source: source), executable: executable)
        }
        if only.isEmpty || only.contains(ServiceDescriptor.sessionLearner.name), let learner = try sessionLearner() {
            services.append(learner)
        }
        return services
    }

    /// What `kb up` manages: the catalog's services, then the session learner.
    public static let managedDescriptors = ServiceDescriptor.catalog + [.sessionLearner]

    /// The session learner (`ukb learn --watch` over `KB_LEARN_WATCH`'s folders, serving
    /// `/health` and `/metrics` on `KB_LEARNER_PORT`), when that key names folders and `ukb` is
    /// installed beside the services. It learns for `KB_TEAM`, keeps its state in
    /// `KB_DATA_DIR/learn/`, and needs the graph store, vector search and the gateway, which
    /// start before it.
    public func sessionLearner() throws -> Managed? {
        let folders = try source.value(of: ServiceConfiguration.Keys.learnWatch)
        guard !folders.isEmpty else { return nil }
        let executable = binDirectory.appendingPathComponent("ukb")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else { return nil }
        let configuration = try ServiceConfiguration(descriptor: .sessionLearner, source: source)
        var learner = Managed(descriptor: .sessionLearner, configuration: configuration, executable: executable)
        learner.arguments = ["learn", "--watch", "--admin-port", "\(configuration.adminPort)"] + folders
        return learner
    }

    /// The pid recorded for `name`, when that process is still alive.
    public func runningPid(_ name: String) -> pid_t? {
        guard let text = try? String(contentsOf: pidFile(name), encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
        return ProcessControl.isAlive(pid) ? pid : nil
    }

    // MARK: up

    /// Starts every installed service not already running and waits until each is ready.
    /// Returns the pids it started, in start order. On a failure it stops what it started.
    public func start(only: [String] = [], readyTimeout: Duration = .seconds(60), interrupt: SignalWaiter? = nil) async throws -> [(Managed, pid_t)] {
        let services = try installedServices(only: only)
        if services.isEmpty {
            print("No service executables in \(binDirectory.path) yet (looked for \(ServiceDescriptor.catalog.map(\.name).joined(separator: ", "))). Nothing to start.")
            return []
        }
        try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        let environment = wiredEnvironment(services)
        var started: [(Managed, pid_t)] = []
        for service in services {
            let name = service.descriptor.name
            if let pid = runningPid(name) {
                print(line(name, "running", "already running (pid \(pid))"))
                continue
            }
            let pid: pid_t
            do {
                pid = try ProcessControl.spawn(executable: service.executable, arguments: service.arguments, environment: environment, logFile: logFile(name))
            } catch {
                await stop(started)
                throw error
            }
            try "\(pid)\n".write(to: pidFile(name), atomically: true, encoding: .utf8)
            started.append((service, pid))
            if let failure = await waitUntilReady(service, pid: pid, timeout: readyTimeout, interrupt: interrupt) {
                await stop(started)
                if interrupt?.received == true {
                    print("Interrupted while starting: stopped what had started.")
                    return []
                }
                throw LauncherError("\(name) did not become ready: \(failure)\n--- last lines of \(logFile(name).path) ---\n\(tail(logFile(name), lines: 15))")
            }
            print(line(name, "ready", describe(service, pid: pid)))
        }
        return started
    }

    /// The services' environment with each started service's address (`KB_<SERVICE>_ADDR`) set
    /// where the operator did not set it, so every service knows where its peers are — and the
    /// inference gateway's indexer (`KB_INFERENCE_INDEXER=auto`) sees graph-store and
    /// vector-search and turns on.
    public func wiredEnvironment(_ services: [Managed]) -> [String: String] {
        var environment = self.environment
        for service in services {
            guard let port = service.configuration.port, port > 0, environment[service.descriptor.addressKey] == nil else { continue }
            environment[service.descriptor.addressKey] = "\(service.probeHost):\(port)"
        }
        return environment
    }

    /// Stays in the foreground watching `started` until SIGINT or SIGTERM, then stops them all.
    /// A service that exits on its own is reported; the others keep running.
    /// `signals` must have been made before the services were started, so that a Ctrl-C at any
    /// moment stops them rather than killing the launcher alone.
    public func supervise(_ started: [(Managed, pid_t)], signals: SignalWaiter) async -> Int32 {
        guard !started.isEmpty else { return 0 }
        print("All services up. Press Ctrl-C to stop them.")
        var running = started
        var exitCode: Int32 = 0
        while !signals.received {
            for (index, (service, pid)) in running.enumerated().reversed() {
                if let status = ProcessControl.reap(pid) {
                    print(line(service.descriptor.name, "exited", "status \(status); see \(logFile(service.descriptor.name).path)"))
                    try? FileManager.default.removeItem(at: pidFile(service.descriptor.name))
                    running.remove(at: index)
                    exitCode = 1
                }
            }
            if running.isEmpty { break }
            try? await Task.sleep(for: .milliseconds(200))
        }
        print("Stopping...")
        await stop(running)
        return exitCode
    }

    /// Stops `services` in reverse start order and removes their pid files.
    func stop(_ services: [(Managed, pid_t)]) async {
        for (service, pid) in services.reversed() {
            let grace = service.configuration.rpc.shutdownGracePeriod + .seconds(5)
            let killed = await ProcessControl.stop(pid, grace: grace, isChild: true)
            try? FileManager.default.removeItem(at: pidFile(service.descriptor.name))
            print(line(service.descriptor.name, killed ? "killed" : "stopped", "pid \(pid)"))
        }
    }

    private func waitUntilReady(_ service: Managed, pid: pid_t, timeout: Duration, interrupt: SignalWaiter?) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if interrupt?.received == true { return "interrupted" }
            if let status = ProcessControl.reap(pid) { return "it exited with status \(status)" }
            if await HealthProbe.isReady(host: service.probeHost, port: service.configuration.adminPort) { return nil }
            try? await Task.sleep(for: .milliseconds(100))
        }
        let health = await HealthProbe.health(host: service.probeHost, port: service.configuration.adminPort)
        return "/health/ready did not answer 200 within \(timeout) (health: \(health.status))"
    }

    // MARK: down

    /// Stops every service with a pid file (SIGTERM, then SIGKILL after the grace period).
    /// Returns how many were stopped.
    @discardableResult
    public func stopAll(only: [String] = []) async throws -> Int {
        var stopped = 0
        for descriptor in Self.managedDescriptors.reversed() where only.isEmpty || only.contains(descriptor.name) {
            let name = descriptor.name
            guard FileManager.default.fileExists(atPath: pidFile(name).path) else { continue }
            defer { try? FileManager.default.removeItem(at: pidFile(name)) }
            guard let pid = runningPid(name) else {
                print(line(name, "gone", "stale pid file removed"))
                continue
            }
            let configuration = try ServiceConfiguration(descriptor: descriptor, source: source)
            let killed = await ProcessControl.stop(pid, grace: configuration.rpc.shutdownGracePeriod + .seconds(5), isChild: false)
            print(line(name, killed ? "killed" : "stopped", "pid \(pid)"))
            stopped += 1
        }
        if stopped == 0 { print("Nothing was running.") }
        return stopped
    }

    // MARK: status

    /// One service's state as `kb status` shows it.
    public struct StatusLine: Sendable {
        public let name: String
        public let state: String
        public let detail: String
        /// Whether this line makes `kb status` fail: installed or running, and not serving.
        public let isProblem: Bool
    }

    /// The health of every catalog service that is installed or has a pid file. With
    /// `requireReady`, a serving service whose `/health/ready` does not answer 200 is a problem
    /// too (state `not ready`): the probe a container's health check runs.
    public func status(only: [String] = [], requireReady: Bool = false) async throws -> [StatusLine] {
        for name in only where !knows(name) {
            throw LauncherError("unknown service '\(name)'; known: \(Self.managedDescriptors.map(\.name).joined(separator: ", "))")
        }
        var lines: [StatusLine] = []
        let installed = Set(try installedServices().map(\.descriptor.name))
        for descriptor in Self.managedDescriptors where only.isEmpty || only.contains(descriptor.name) {
            let name = descriptor.name
            let pid = runningPid(name)
            // The learner is optional: listed only when configured or running.
            if descriptor == .sessionLearner, !installed.contains(name), pid == nil { continue }
            guard installed.contains(name) || pid != nil else {
                lines.append(StatusLine(name: name, state: "not installed", detail: "", isProblem: false))
                continue
            }
            let configuration = try ServiceConfiguration(descriptor: descriptor, source: source)
            let managed = Managed(descriptor: descriptor, configuration: configuration, executable: binDirectory.appendingPathComponent(name))
            let reading = await HealthProbe.health(host: managed.probeHost, port: configuration.adminPort)
            var detail = "admin http://\(managed.probeHost):\(configuration.adminPort)"
            if let pid { detail += "  pid \(pid)" }
            if let uptime = reading.uptimeSeconds { detail += "  up \(Int(uptime))s" }
            let unwell = reading.components.filter { $0.value != "healthy" }.map { "\($0.key)=\($0.value)" }.sorted()
            if !unwell.isEmpty { detail += "  (\(unwell.joined(separator: ", ")))" }
            if requireReady, reading.isServing, await !HealthProbe.isReady(host: managed.probeHost, port: configuration.adminPort) {
                lines.append(StatusLine(name: name, state: "not ready", detail: detail, isProblem: true))
                continue
            }
            lines.append(StatusLine(name: name, state: reading.status, detail: detail, isProblem: !reading.isServing))
        }
        return lines
    }

    // MARK: logs

    /// The last `lines` lines of a log file.
    public func tail(_ file: URL, lines: Int) -> String {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return "(no log at \(file.path))" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines + 1).joined(separator: "\n")
    }

    // MARK: formatting

    func line(_ name: String, _ state: String, _ detail: String) -> String {
        name.padding(toLength: 19, withPad: " ", startingAt: 0) + state.padding(toLength: 10, withPad: " ", startingAt: 0) + detail
    }

    func describe(_ service: Managed, pid: pid_t) -> String {
        var parts: [String] = []
        if let port = service.configuration.port { parts.append("rpc \(service.probeHost):\(port)") }
        parts.append("http://\(service.probeHost):\(service.configuration.adminPort)")
        parts.append("pid \(pid)")
        parts.append("log \(logFile(service.descriptor.name).path)")
        return parts.joined(separator: "  ")
    }
}

/// Notes SIGINT/SIGTERM instead of dying of them, so the launcher can stop its services first.
public final class SignalWaiter: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private var sources: [any DispatchSourceSignal] = []

    /// Starts noting `signals` (they no longer end the process).
    public init(signals: [Int32] = [SIGINT, SIGTERM]) {
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.lock.withLock { self?.flag = true } }
            source.resume()
            sources.append(source)
        }
    }

    /// Whether one of the signals has arrived.
    public var received: Bool { lock.withLock { flag } }
}

extension Launcher {
    /// Whether `name` is a service `kb up` manages (the catalog's, or the session learner).
    public func knows(_ name: String) -> Bool { Self.managedDescriptors.contains { $0.name == name } }

    /// The catalog services that have a log file.
    public func servicesWithLogs() -> [String] {
        Self.managedDescriptors.map(\.name).filter { FileManager.default.fileExists(atPath: logFile($0).path) }
    }

    /// Prints lines appended to the services' logs until interrupted.
    public func follow(_ names: [String]) async throws {
        var offsets: [String: UInt64] = [:]
        for name in names {
            offsets[name] = ((try? FileManager.default.attributesOfItem(atPath: logFile(name).path))?[.size] as? UInt64) ?? 0
        }
        while !Task.isCancelled {
            for name in names {
                guard let handle = try? FileHandle(forReadingFrom: logFile(name)) else { continue }
                defer { try? handle.close() }
                try handle.seek(toOffset: offsets[name] ?? 0)
                let data = handle.readDataToEndOfFile()
                guard !data.isEmpty else { continue }
                offsets[name, default: 0] += UInt64(data.count)
                let prefix = names.count > 1 ? "\(name) | " : ""
                for line in String(decoding: data, as: UTF8.self).split(separator: "\n") { print(prefix + line) }
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}
