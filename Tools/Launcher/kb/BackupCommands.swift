import ArgumentParser
import Foundation
import LauncherKit

/// `kb backup [DIR]`: an online backup of every store into one folder with a manifest.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Online backup of the whole system: every store at once into knowledge-system_<date>/ with manifest.json.",
        discussion: "The stores are copied by their services while they serve (graph-store Backup, vector-search SnapshotCollection per collection, budget-service Backup) and the gateway's cache file by SQLite's online backup API. The folder is made inside the services' backup folder (KB_BACKUP_DIR, default `backups` beside KB_DATA_DIR): the services write nowhere else."
    )
    @OptionGroup var common: Common
    @Argument(help: "The folder to make the backup in, inside KB_BACKUP_DIR (a relative path is taken inside it); default: KB_BACKUP_DIR itself.")
    var directory: String?

    func run() async throws {
        try await runReportingFailure {
            let backups = SystemBackup(launcher: try common.launcher())
            _ = try await backups.backup(into: directory)
        }
    }
}

/// `kb verify-backup DIR`: checks a backup without restoring it into the live system.
struct VerifyBackup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-backup",
        abstract: "Check a backup without touching the live system: checksums, then every store restored and opened in a scratch folder, counts compared with the manifest.",
        discussion: "The stores are opened by their own services, started on free loopback ports on the scratch copy (the executables beside kb). Exit 1 and FAIL with the reasons when anything differs."
    )
    @OptionGroup var common: Common
    @Argument(help: "The backup folder (knowledge-system_<date>).")
    var directory: String
    @Option(help: "The scratch folder to restore into (must not exist; removed afterwards). Default: a new temporary folder.")
    var scratch: String?

    func run() async throws {
        try await runReportingFailure {
            let backups = SystemBackup(launcher: try common.launcher())
            _ = try await backups.verify(URL(fileURLWithPath: directory, isDirectory: true), scratch: scratch.map { URL(fileURLWithPath: $0, isDirectory: true) })
        }
    }
}

/// `kb restore DIR`: every store of a stopped system replaced from a backup.
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore every store into KB_DATA_DIR from a backup (stop the system first with `kb down`).",
        discussion: "Refuses while any service runs. The whole backup is checked first (checksums; each store restored and opened beside the data, counts compared): a damaged backup changes nothing. What was there is renamed <folder>.pre-restore.<date>, never deleted."
    )
    @OptionGroup var common: Common
    @Argument(help: "The backup folder (knowledge-system_<date>).")
    var directory: String

    func run() async throws {
        try await runReportingFailure {
            let backups = SystemBackup(launcher: try common.launcher())
            try await backups.restore(URL(fileURLWithPath: directory, isDirectory: true))
            print("Start the system with `kb up --detach`.")
        }
    }
}

/// `kb drill --yes`: the disaster-recovery procedure end to end, timed.
struct Drill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Disaster-recovery drill on the system `kb up --detach` runs here: backup, stop, wipe, restore, start, verify counts identical; prints each step's time (the RTO).",
        discussion: "Run it on a staging system: the services are down from `stop` to `start`. The wiped stores are moved aside and deleted only after the drill passed; a failed restore puts them back and restarts the system."
    )
    @OptionGroup var common: Common
    @Argument(help: "Where to make the drill's backup, inside KB_BACKUP_DIR; default KB_BACKUP_DIR itself.")
    var directory: String?
    @Flag(help: "Confirm: the drill stops this system and replaces its stores from the backup it makes.")
    var yes = false
    @Option(help: "Seconds to wait for each service's /health/ready after the restore.")
    var timeout: Int = 120

    func run() async throws {
        try await runReportingFailure {
            let launcher = try common.launcher()
            guard yes else {
                throw LauncherError("the drill stops the system running on \(launcher.dataDirectory.path) and restores it from a fresh backup; run it on a staging system, with --yes to confirm")
            }
            _ = try await SystemBackup(launcher: launcher).drill(into: directory, readyTimeout: .seconds(timeout))
        }
    }
}
