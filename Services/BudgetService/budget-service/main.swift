// budget-service: the ledger of paid LLM calls and the monthly budget on SQLite, served as
// kb.budget.v1.Budget, with the guide's runbook endpoints on the admin port.
//
//   budget-service                 serve (configuration from the environment, README)
//   budget-service restore FILE    replace the database with the backup FILE (checked first);
//                                  refuses (exit 75) while a budget-service runs on the data directory
import BudgetKit
import KBRuntime
import KBSQLite

let restore = RestoreCommand(argument: "BACKUP_FILE", subject: "the database") { backup, runtime in
    let target = runtime.dataDirectory!.appendingPathComponent(BudgetConfiguration.databaseFileName)
    let kept = try SQLiteDatabase.restore(from: backup, to: target)
    return ["restored \(target.path) from \(backup.path)"] + (kept.map { ["the replaced database was kept in \($0.path)"] } ?? [])
}

await ServiceRuntime.main(.budgetService, restore: restore) { runtime in
    let configuration = try runtime.load(BudgetConfiguration.self)
    let database = runtime.dataDirectory!.appendingPathComponent(BudgetConfiguration.databaseFileName)
    return BudgetService(path: database.path, options: configuration.options, backupRoot: runtime.configuration.backupRoot, logger: runtime.logger)
}
