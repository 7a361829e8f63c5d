// vkb: the knowledge graph in the browser.
//
//   vkb                      serve in the foreground (what `kb up` runs)
//   vkb start [--port N] [--foreground] [--no-browser]
//   vkb stop | restart | status | logs [-f] [-n N]
//
// The pid file is <KB_DATA_DIR>/run/vkb.pid and the log <KB_DATA_DIR>/logs/vkb.log, the same
// files `kb up` / `kb down` / `kb status` use, so either tool sees what the other started.
import ArgumentParser
import Foundation
import KBKnowledge
import KBProto
import KBRPC
import KBRuntime
import LauncherKit
import VKBKit

#if canImport(Glibc)
import Glibc
#endif

@main
struct VKB: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vkb",
        abstract: "The knowledge graph in the browser: an HTTP API and a page over the graph store.",
        subcommands: [Serve.self, Start.self, Stop.self, Restart.self, Status.self, Logs.self],
        defaultSubcommand: Serve.self
    )
}

/// Runs the server in this process until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve in the foreground (the default; what `kb up` runs).")

    func run() async throws {
        try await VKBProcess.serve()
    }
}

enum VKBProcess {
    static func serve(pidFile: URL? = nil) async throws {
        ServiceRuntime.useEventLoopsForConcurrency()
        let runtime: ServiceRuntime
        let configuration: VKBConfiguration
        do {
            runtime = try ServiceRuntime(descriptor: .vkb)
            configuration = try runtime.load(VKBConfiguration.self)
        } catch {
            ServiceRuntime.exitOnStartupError(error, service: "vkb")
        }
        var clientConfiguration = configuration.graphStore
        clientConfiguration.maxBackoff = .seconds(1)
        clientConfiguration.failFast = true
        let client = RPCClient(configuration: clientConfiguration)
        let meaning = MeaningSearch(gateway: RPCClient(configuration: configuration.inferenceGateway), vectors: RPCClient(configuration: configuration.vectorSearch))
        VKBServer.registerHealth(runtime.health, client: client, meaning: meaning, configuration: configuration)
        let router = VKBServer.router(configuration: configuration, client: client, meaning: meaning, health: runtime.health, requestGuard: runtime.requestGuard, logger: runtime.logger)
        if let pidFile {
            try? FileManager.default.createDirectory(at: pidFile.deletingLastPathComponent(), withIntermediateDirectories: true)
            try "\(getpid())\n".write(to: pidFile, atomically: true, encoding: .utf8)
        }
        defer { if let pidFile { try? FileManager.default.removeItem(at: pidFile) } }
        do {
            try await runtime.serveHTTP(router: router, limits: configuration.connectionLimits)
        } catch {
            runtime.logger.critical("vkb stopped on an error", metadata: ["error": "\(error)"])
            FileHandle.standardError.write(Data("vkb: \(error)\n".utf8))
            await client.close()
            await meaning.close()
            throw ExitCode(1)
        }
        await client.close()
        await meaning.close()
    }
}

/// What the management commands share: the launcher over `.data/run` and `.data/logs`.
struct Management: ParsableArguments {
    func launcher(port: Int? = nil) throws -> Launcher {
        var environment = ProcessInfo.processInfo.environment
        let bin = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let probe = try Launcher(environment: environment, binDirectory: bin, print: { _ in })
        let portFile = probe.runDirectory.appendingPathComponent("vkb.port")
        if let port {
            environment[ServiceDescriptor.vkb.adminPortKey] = String(port)
        } else if environment[ServiceDescriptor.vkb.adminPortKey] == nil, let saved = try? String(contentsOf: portFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), Int(saved) != nil {
            environment[ServiceDescriptor.vkb.adminPortKey] = saved
        }
        return try Launcher(environment: environment, binDirectory: bin)
    }

    func portFile(_ launcher: Launcher) -> URL { launcher.runDirectory.appendingPathComponent("vkb.port") }
}

struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start VKB in the background (pid file and log under .data/), or in the foreground.")

    @Option(help: "The HTTP port (default KB_VKB_PORT, else 8080).") var port: Int?
    @Flag(help: "Serve in this terminal until Ctrl-C.") var foreground = false
    @Flag(help: "Do not open a browser.") var noBrowser = false
    @OptionGroup var management: Management

    func run() async throws {
        try await Self.start(management: management, port: port, foreground: foreground, noBrowser: noBrowser)
    }

    static func start(management: Management, port: Int?, foreground: Bool, noBrowser: Bool) async throws {
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be 0–65535") }
        let launcher = try fail { try management.launcher(port: port) }
        if let pid = launcher.runningPid("vkb") {
            print("vkb is already running (pid \(pid)); `vkb restart` restarts it")
            return
        }
        if let port {
            try? FileManager.default.createDirectory(at: launcher.runDirectory, withIntermediateDirectories: true)
            try? "\(port)\n".write(to: management.portFile(launcher), atomically: true, encoding: .utf8)
        } else {
            try? FileManager.default.removeItem(at: management.portFile(launcher))
        }
        let managed = try fail { try launcher.installedServices(only: ["vkb"]) }
        guard let vkb = managed.first else { Self.exit(withError: ValidationError("the vkb executable is not beside this one")) }
        await warnWithoutGraphStore(launcher)
        let url = "http://\(vkb.probeHost):\(vkb.configuration.adminPort)/"
        if foreground {
            if let port { setenv(ServiceDescriptor.vkb.adminPortKey, String(port), 1) }
            if !noBrowser { openBrowser(url) }
            try await VKBProcess.serve(pidFile: launcher.pidFile("vkb"))
            return
        }
        let started = try await fail { try await launcher.start(only: ["vkb"]) }
        guard !started.isEmpty else { throw ExitCode(1) }
        print("VKB: \(url)")
        if !noBrowser { openBrowser(url) }
    }

    static func warnWithoutGraphStore(_ launcher: Launcher) async {
        guard var configuration = try? launcher.source.clientConfiguration(for: .graphStore) else { return }
        configuration.connections = 1
        configuration.failFast = true
        configuration.connectTimeout = .seconds(1)
        let client = RPCClient(configuration: configuration)
        do {
            _ = try await client.call(HealthMethods.check, .init(), options: CallOptions(timeout: .milliseconds(1500)))
        } catch {
            print("note: graph-store is not answering at \(configuration.host):\(configuration.port); the page will say so until it runs (`kb up` starts everything)")
        }
        await client.close()
    }

    /// Opens `url` with xdg-open when there is a display; otherwise says where to point one.
    static func openBrowser(_ url: String) {
        let environment = ProcessInfo.processInfo.environment
        let hasDisplay = environment["DISPLAY"] != nil || environment["WAYLAND_DISPLAY"] != nil
        guard hasDisplay, let opener = ["/usr/bin/xdg-open", "/usr/local/bin/xdg-open"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            print("open \(url) in a browser (--no-browser hides this)")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: opener)
        process.arguments = [url]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
    }
}

struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop VKB (SIGTERM, then SIGKILL after the grace period).")
    @OptionGroup var management: Management

    func run() async throws {
        let launcher = try fail { try management.launcher() }
        guard launcher.runningPid("vkb") != nil else {
            try? FileManager.default.removeItem(at: launcher.pidFile("vkb"))
            print("vkb is not running")
            return
        }
        _ = try await fail { try await launcher.stopAll(only: ["vkb"]) }
    }
}

struct Restart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop VKB if it runs, then start it in the background.")
    @Option(help: "The HTTP port (default: the one it ran on).") var port: Int?
    @OptionGroup var management: Management

    func run() async throws {
        let launcher = try fail { try management.launcher(port: port) }
        if launcher.runningPid("vkb") != nil { _ = try await fail { try await launcher.stopAll(only: ["vkb"]) } }
        try await Start.start(management: management, port: port, foreground: false, noBrowser: true)
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "VKB's state: pid, address, health (exit 1 when not serving).")
    @OptionGroup var management: Management

    func run() async throws {
        let launcher = try fail { try management.launcher() }
        let lines = try await fail { try await launcher.status(only: ["vkb"]) }
        for line in lines {
            print("\(line.name.padding(toLength: 8, withPad: " ", startingAt: 0))\(line.state.padding(toLength: 12, withPad: " ", startingAt: 0))\(line.detail)")
        }
        if launcher.runningPid("vkb") == nil { print("vkb is not running (`vkb start` starts it)") }
        if lines.contains(where: \.isProblem) || launcher.runningPid("vkb") == nil { throw ExitCode(1) }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print VKB's log (.data/logs/vkb.log).")
    @Flag(name: .shortAndLong, help: "Keep printing new lines until Ctrl-C.") var follow = false
    @Option(name: [.customShort("n"), .long], help: "How many of the last lines to print.") var lines = 50
    @OptionGroup var management: Management

    func run() async throws {
        let launcher = try fail { try management.launcher() }
        print(launcher.tail(launcher.logFile("vkb"), lines: lines))
        if follow { try await launcher.follow(["vkb"]) }
    }
}

/// Runs `body`; an error becomes one line `vkb: reason` and exit status 1.
func fail<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        FileHandle.standardError.write(Data("vkb: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

func fail<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        FileHandle.standardError.write(Data("vkb: \(error)\n".utf8))
        throw ExitCode(1)
    }
}
