// budget-service: the ledger of paid LLM calls and the monthly budget on SQLite, served as
// kb.budget.v1.Budget, with the guide's runbook endpoints on the admin port.
//
//   budget-service                 serve (configuration from the environment, README)
//   budget-service restore FILE    replace the database with the backup FILE (checked first);
//                                  refuses while a budget-service runs on the data directory
import BudgetKit
import Foundation
import KBRPC
import KBRuntime
import KBSQLite

ServiceRuntime.useEventLoopsForConcurrency()
let arguments = Array(CommandLine.arguments.dropFirst())

if arguments.first == "restore" {
    guard arguments.count == 2 else {
        FileHandle.standardError.write(Data("usage: budget-service restore BACKUP_FILE\n".utf8))
        exit(64)
    }
    do {
        let runtime = try ServiceRuntime(descriptor: .budgetService)
        let target = runtime.dataDirectory!.appendingPathComponent(BudgetConfiguration.databaseFileName)
        let kept = try SQLiteDatabase.restore(from: URL(fileURLWithPath: arguments[1]).standardizedFileURL, to: target)
        print("restored \(target.path) from \(arguments[1])")
        if let kept { print("the replaced database was kept in \(kept.path)") }
        exit(0)
    } catch let error as DataDirectoryLock.Error {
        FileHandle.standardError.write(Data("budget-service restore: refused, the database is in use: \(error)\n".utf8))
        exit(75)
    } catch {
        FileHandle.standardError.write(Data("budget-service restore: \(error)\n".utf8))
        exit(1)
    }
}

let runtime: ServiceRuntime
let service: BudgetService
do {
    runtime = try ServiceRuntime(descriptor: .budgetService)
    let options = try BudgetConfiguration.options(from: runtime.configuration.source)
    let path = runtime.dataDirectory!.appendingPathComponent(BudgetConfiguration.databaseFileName).path
    service = BudgetService(path: path, options: options, logger: runtime.logger)
} catch {
    ServiceRuntime.exitOnStartupError(error, service: "budget-service")
}
service.registerHealth(on: runtime.health)
var router = RPCRouter()
service.register(on: &router)
let admin = AdminServer.router(health: runtime.health)
BudgetAdminRoutes.add(to: admin, service: service, authToken: runtime.configuration.authToken)
do {
    try await runtime.run(router: router, services: [service], adminRouter: admin)
} catch {
    runtime.logger.critical("budget-service stopped on an error", metadata: ["error": "\(error)"])
    FileHandle.standardError.write(Data("budget-service: \(error)\n".utf8))
    exit(1)
}
