// graph-store: the knowledge graph of every team on LevelDB, served as kb.graph.v1.GraphStore.
//
//   graph-store                 serve (configuration from the environment, README)
//   graph-store restore DIR     replace the store in the data directory with the backup in DIR;
//                               refuses (exit 75) while a graph-store runs on that directory
import GraphStoreKit
import KBRuntime

let restore = RestoreCommand(argument: "BACKUP_DIR", subject: "the store") { backup, runtime in
    let report = try GraphStore.restore(from: backup, into: runtime.dataDirectory!)
    return ["restored \(report.entities) entities and \(report.relations) relations from \(backup.path)"]
        + (report.previous.map { ["the replaced store was kept in \($0.path)"] } ?? [])
}

await ServiceRuntime.main(.graphStore, restore: restore) { runtime in
    let configuration = try runtime.load(GraphStoreConfiguration.self)
    let store = try GraphStore(directory: runtime.dataDirectory!, limits: configuration.limits, feedWindow: configuration.feedWindow)
    return GraphStoreService(store: store, backupRoot: runtime.configuration.backupRoot)
}
