import ArgumentParser
import Foundation
import KBProto
import KBRPC
import KBRuntime
import LauncherKit
import SwiftProtobuf

/// `kb budget …`: the operator's view of the budget service (status, reports, the monthly reset,
/// the emergency freeze, the limit, events, prices, backup / verify / restore).
struct Budget: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The LLM budget: status, reports, monthly reset, emergency freeze, limit.",
        discussion: "A client of budget-service at KB_BUDGET_SERVICE_ADDR (default 127.0.0.1:7104) with KB_AUTH_TOKEN. Days and months are UTC.",
        subcommands: [
            BudgetStatus.self, BudgetReport.self, BudgetReset.self, BudgetFreeze.self, BudgetUnfreeze.self,
            BudgetSetLimit.self, BudgetEvents.self, BudgetPrices.self, BudgetBackup.self, BudgetVerify.self, BudgetRestore.self,
        ]
    )
}

struct JSONFlag: ParsableArguments {
    @Flag(help: "Print JSON (the proto3 JSON mapping) instead of text.")
    var json = false
}

/// Calls the budget service; any failure becomes one line on stderr and exit status 1.
func withBudgetService(_ body: (RPCClient) async throws -> Void) async throws {
    try await CommandLineClient.run(.budgetService, tool: "kb budget", passThrough: { $0 is ExitCode }, body)
}

func budgetFail(_ reason: String) -> Never {
    CommandLineClient.fail("kb budget", reason)
}

func printProtoJSON(_ message: some SwiftProtobuf.Message) throws {
    var options = JSONEncodingOptions()
    options.preserveProtoFieldNames = true
    options.alwaysPrintInt64sAsNumbers = true
    print(try message.jsonString(options: options))
}

struct BudgetStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "The month so far: limit, spend, reservations, projection, routing mode, freeze.")
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withBudgetService { client in
            let status = try await client.call(BudgetMethods.getStatus, .init())
            if output.json { return try printProtoJSON(status) }
            print(BudgetText.status(status))
        }
    }
}

struct BudgetReport: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Costs by provider, model, operation and project, with the daily trend.")
    @Option(help: "day (today), week (the last 7 days), month (this month) or custom (--from/--to).")
    var period = "month"
    @Option(help: "First day of a custom range, YYYY-MM-DD (UTC).")
    var from: String?
    @Option(help: "Last day of a custom range, YYYY-MM-DD (UTC), included.")
    var to: String?
    @Option(help: "Only this project.")
    var project: String?
    @OptionGroup var output: JSONFlag

    func validate() throws {
        guard ["day", "week", "month", "custom"].contains(period) else {
            throw ValidationError("--period must be day, week, month or custom (found '\(period)')")
        }
        if period == "custom" {
            guard let from, BudgetText.parseDay(from) != nil else { throw ValidationError("--from YYYY-MM-DD is required with --period custom") }
            guard let to, BudgetText.parseDay(to) != nil else { throw ValidationError("--to YYYY-MM-DD is required with --period custom") }
        } else if from != nil || to != nil {
            throw ValidationError("--from and --to go with --period custom")
        }
    }

    func run() async throws {
        var request = Kb_Budget_V1_GetReportRequest()
        switch period {
        case "day": request.period = .day
        case "week": request.period = .week
        case "custom":
            request.period = .custom
            request.fromMs = BudgetText.parseDay(from!)!
            request.toMs = BudgetText.parseDay(to!)! + 86_400_000
        default: request.period = .month
        }
        request.project = project ?? ""
        try await withBudgetService { client in
            let report = try await client.call(BudgetMethods.getReport, request)
            if output.json { return try printProtoJSON(report) }
            print(BudgetText.report(report, title: "Cost report (\(period)\(project.map { ", project \($0)" } ?? ""))"))
        }
    }
}

struct BudgetReset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reset", abstract: "The monthly reset: archive the finished month's events (safe to run twice).")
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withBudgetService { client in
            let response = try await client.call(BudgetMethods.resetPeriod, .init())
            if output.json { return try printProtoJSON(response) }
            if response.alreadyDone {
                print("\(response.archivedPeriod) was already archived; nothing to do.")
            } else {
                print("Archived \(BudgetText.count(response.archivedEvents)) events up to \(response.archivedPeriod); \(response.status.period) is the current period.")
            }
        }
    }
}

struct BudgetFreeze: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "freeze", abstract: "Emergency budget freeze: refuse every paid provider until unfreeze (local providers still run).")
    @Option(help: "Why (kept with the freeze and shown by status).")
    var reason = ""
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withBudgetService { client in
            let status = try await client.call(BudgetMethods.freeze, .with { $0.reason = reason })
            if output.json { return try printProtoJSON(status) }
            print("Budget frozen: paid providers are refused until `kb budget unfreeze`.\n")
            print(BudgetText.status(status))
        }
    }
}

struct BudgetUnfreeze: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unfreeze", abstract: "End the freeze: paid providers follow the budget's mode again.")
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withBudgetService { client in
            let status = try await client.call(BudgetMethods.unfreeze, .init())
            if output.json { return try printProtoJSON(status) }
            print("Budget unfrozen.\n")
            print(BudgetText.status(status))
        }
    }
}

struct BudgetSetLimit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set-limit", abstract: "Set the monthly limit in USD (kept across restarts).")
    @Argument(help: "The limit in USD, e.g. 8.33.")
    var usd: Double
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withBudgetService { client in
            let status = try await client.call(BudgetMethods.setLimit, .with { $0.limitUsd = usd })
            if output.json { return try printProtoJSON(status) }
            print(BudgetText.status(status))
        }
    }
}

struct BudgetEvents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Recorded calls, newest first.")
    @Option(help: "Only this provider.") var provider: String?
    @Option(help: "Only this model.") var model: String?
    @Option(help: "Only this operation.") var operation: String?
    @Option(help: "Only this project.") var project: String?
    @Option(help: "At most this many (1–1000).") var limit: Int32 = 50
    @Option(help: "Continue after this cursor (printed after a full page).") var cursor: String?
    @OptionGroup var output: JSONFlag

    func run() async throws {
        var request = Kb_Budget_V1_ListEventsRequest()
        request.provider = provider ?? ""
        request.model = model ?? ""
        request.operation = operation ?? ""
        request.project = project ?? ""
        request.limit = limit
        request.cursor = cursor ?? ""
        try await withBudgetService { client in
            let response = try await client.call(BudgetMethods.listEvents, request)
            if output.json { return try printProtoJSON(response) }
            print(BudgetText.events(response.events))
            if !response.nextCursor.isEmpty { print("\nMore: --cursor \(response.nextCursor)") }
        }
    }
}

struct BudgetPrices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prices", abstract: "The price table (USD per million tokens).")
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withBudgetService { client in
            let response = try await client.call(BudgetMethods.listPrices, .init())
            if output.json { return try printProtoJSON(response) }
            print(BudgetText.table(["Provider", "Model", "Input / 1M", "Output / 1M"], response.prices.map { price in
                price.local ? [price.provider, price.model, "local", "free"] : [price.provider, price.model, String(format: "$%.3f", price.inputUsdPerMillion), String(format: "$%.3f", price.outputUsdPerMillion)]
            }, rightAligned: [2, 3]))
        }
    }
}

struct BudgetBackup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "backup", abstract: "Online backup: a consistent copy of the database, written by the service while it serves.")
    @Argument(help: "The backup file to create, inside the service's backup folder (KB_BACKUP_DIR): a relative path is taken inside it; must not exist.")
    var path: String
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withBudgetService { client in
            let response = try await client.call(BudgetMethods.backup, .with { $0.path = path }, options: CallOptions(timeout: .seconds(600)))
            if output.json { return try printProtoJSON(response) }
            print("Backed up \(BudgetText.count(response.events)) events and \(BudgetText.count(response.archivedEvents)) archived ones to \(response.path) (\(BudgetText.count(response.bytes)) bytes).")
        }
    }
}

struct BudgetVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "Integrity check of the database and of the daily totals; exit 1 on problems.")
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withBudgetService { client in
            let response = try await client.call(BudgetMethods.verify, .init(), options: CallOptions(timeout: .seconds(600)))
            if output.json { try printProtoJSON(response) } else if response.ok {
                print("OK: \(BudgetText.count(response.events)) events, \(BudgetText.count(response.archivedEvents)) archived; the database and the daily totals agree.")
            } else {
                print("PROBLEMS:")
                for problem in response.problems { print("  \(problem)") }
            }
            if !response.ok { throw ExitCode.failure }
        }
    }
}

struct BudgetRestore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restore", abstract: "Replace the database with a backup (stop budget-service first; the old database is kept beside it).")
    @Argument(help: "The backup file.")
    var file: String
    @OptionGroup var common: Common

    func run() async throws {
        let launcher: Launcher
        do { launcher = try common.launcher() } catch { budgetFail("\(error)") }
        let executable = launcher.binDirectory.appendingPathComponent("budget-service")
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            budgetFail("budget-service is not installed in \(launcher.binDirectory.path)")
        }
        let process = Process()
        process.executableURL = executable
        process.arguments = ["restore", URL(fileURLWithPath: file).standardizedFileURL.path]
        do { try process.run() } catch { budgetFail("cannot run \(executable.path): \(error)") }
        process.waitUntilExit()
        if process.terminationStatus != 0 { throw ExitCode(process.terminationStatus) }
    }
}
