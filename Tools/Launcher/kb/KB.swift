// kb: the operator's launcher. Starts, watches and stops the knowledge system on one machine.
import ArgumentParser
import Foundation
import LauncherKit

@main
struct KB: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kb",
        abstract: "Start, watch and stop the knowledge system's services on this machine.",
        discussion: "Configuration comes from KB_* environment variables (see the README). Pid files and logs live under $KB_DATA_DIR (default .data).",
        subcommands: [Up.self, Down.self, Status.self, Logs.self, Budget.self, Vectors.self, Inference.self, Embed.self, Backup.self, VerifyBackup.self, Restore.self, Drill.self]
    )
}

/// Options every subcommand shares.
struct Common: ParsableArguments {
    @Option(help: "Where the service executables are (default: beside kb).")
    var binDir: String?

    func launcher() throws -> Launcher {
        let bin = binDir.map { URL(fileURLWithPath: $0, isDirectory: true) }
            ?? URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        return try Launcher(environment: ProcessInfo.processInfo.environment, binDirectory: bin)
    }
}

/// Runs a launcher action, turning its failures into one line on stderr and exit status 1.
func runReportingFailure(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        FileHandle.standardError.write(Data("kb: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start every installed service, wait until each is ready, and stay in the foreground (Ctrl-C stops them all).")

    @OptionGroup var common: Common
    @Flag(help: "Start them in the background and return; stop them with 'kb down'.")
    var detach = false
    @Option(help: "Only these services (comma-separated names).")
    var only: String?
    @Option(help: "Seconds to wait for each service's /health/ready.")
    var timeout: Int = 60

    func run() async throws {
        try await runReportingFailure {
            let launcher = try common.launcher()
            let names = only?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
            let signals = detach ? nil : SignalWaiter()
            let started = try await launcher.start(only: names, readyTimeout: .seconds(timeout), interrupt: signals)
            guard let signals else {
                if !started.isEmpty { print("Running in the background. 'kb status' checks them, 'kb down' stops them, logs in \(launcher.dataDirectory.path)/logs.") }
                return
            }
            let code = await launcher.supervise(started, signals: signals)
            if code != 0 { throw ExitCode(code) }
        }
    }
}

struct Down: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the services started with 'kb up --detach'.")

    @OptionGroup var common: Common

    func run() async throws {
        try await runReportingFailure {
            try await common.launcher().stopAll()
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show each service's health, one line per service; exit 1 if any installed service is not serving (with --ready: not ready).")

    @OptionGroup var common: Common
    @Flag(help: "Print JSON instead of lines.")
    var json = false
    @Option(help: "Only these services (comma-separated names).")
    var only: String?
    @Flag(help: "Also require each service's /health/ready to answer 200 (what a container's health check asks).")
    var ready = false

    func run() async throws {
        try await runReportingFailure {
            let names = only?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
            let lines = try await common.launcher().status(only: names, requireReady: ready)
            if json {
                let objects = lines.map { ["service": $0.name, "status": $0.state, "detail": $0.detail] }
                let data = try JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                for line in lines {
                    print(line.name.padding(toLength: 19, withPad: " ", startingAt: 0) + line.state.padding(toLength: 15, withPad: " ", startingAt: 0) + line.detail)
                }
            }
            if lines.contains(where: \.isProblem) { throw ExitCode.failure }
        }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the services' logs.")

    @OptionGroup var common: Common
    @Argument(help: "One service; all of them when omitted.")
    var service: String?
    @Option(name: [.customShort("n"), .long], help: "Lines to show from the end of each log.")
    var lines: Int = 50
    @Flag(name: .shortAndLong, help: "Keep printing new lines as they are written.")
    var follow = false

    func run() async throws {
        try await runReportingFailure {
            let launcher = try common.launcher()
            let names = try service.map { name -> [String] in
                guard launcher.knows(name) else { throw LauncherError("unknown service '\(name)'") }
                return [name]
            } ?? launcher.servicesWithLogs()
            if names.isEmpty { print("No logs yet in \(launcher.dataDirectory.path)/logs.") }
            for name in names {
                if names.count > 1 { print("==> \(name) <==") }
                print(launcher.tail(launcher.logFile(name), lines: lines))
            }
            if follow { try await launcher.follow(names) }
        }
    }
}
