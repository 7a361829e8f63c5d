// graph-store: the knowledge graph of every team on LevelDB, served as kb.graph.v1.GraphStore.
//
//   graph-store                 serve (configuration from the environment, README)
//   graph-store restore DIR     replace the store in the data directory with the backup in DIR;
//                               refuses while a graph-store runs on that directory
import Foundation
import GraphStoreKit
import KBRPC
import KBRuntime

ServiceRuntime.useEventLoopsForConcurrency()
let arguments = Array(CommandLine.arguments.dropFirst())

if arguments.first == "restore" {
    guard arguments.count == 2 else {
        FileHandle.standardError.write(Data("usage: graph-store restore BACKUP_DIR\n".utf8))
        exit(64)
    }
    do {
        let runtime = try ServiceRuntime(descriptor: .graphStore)
        let report = try GraphStore.restore(from: URL(fileURLWithPath: arguments[1]).standardizedFileURL, into: runtime.dataDirectory!)
        print("restored \(report.entities) entities and \(report.relations) relations from \(arguments[1])")
        if let previous = report.previous { print("the replaced store was kept in \(previous.path)") }
        exit(0)
    } catch let error as DataDirectoryLock.Error {
        FileHandle.standardError.write(Data("graph-store restore: refused, the store is in use: \(error)\n".utf8))
        exit(75)
    } catch {
        FileHandle.standardError.write(Data("graph-store restore: \(error)\n".utf8))
        exit(1)
    }
}

let runtime: ServiceRuntime
let store: GraphStore
do {
    runtime = try ServiceRuntime(descriptor: .graphStore)
    store = try GraphStore(directory: runtime.dataDirectory!)
} catch {
    ServiceRuntime.exitOnStartupError(error, service: "graph-store")
}
GraphStoreService.registerHealth(store, on: runtime.health)
var router = RPCRouter()
GraphStoreService.register(store, on: &router)
do {
    try await runtime.run(router: router, services: [store])
} catch {
    runtime.logger.critical("graph-store stopped on an error", metadata: ["error": "\(error)"])
    store.close()
    FileHandle.standardError.write(Data("graph-store: \(error)\n".utf8))
    exit(1)
}
