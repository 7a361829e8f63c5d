// graph-benchmark: the graph store on 100k entities and 1M relations, beside its references.
//
//   swift build -c release && .build/release/graph-benchmark [--entities N] [--relations-per-entity K] [--queries Q]
//
// Starts the real `graph-store` (built beside this binary) on a temporary folder and measures,
// over loopback RPC: the import rate (entities/s, relations/s), and p50/p99 of get-entity,
// 1-hop and 2-hop neighbours and text search with 1 and 16 concurrent clients. In the same run
// it measures the references: LevelDB's own synced batch write rate on this machine (the floor
// for imports), and the same 1-hop / 2-hop queries in Kuzu (embedded, Python) on the same graph.
import BenchmarkSupport
import Foundation
import KBLevelDB
import KBProto
import KBRPC
import NIOCore
import NIOPosix

// Swift concurrency on NIO's event loops, as in the services (one thread hop less per call).
NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()


// MARK: Settings

func settings() -> (entities: Int, relationsPerEntity: Int, queries: Int) {
    var result = (entities: 100_000, relationsPerEntity: 10, queries: 2000)
    var arguments = CommandLine.arguments.dropFirst().makeIterator()
    while let argument = arguments.next() {
        switch argument {
        case "--entities": result.entities = Int(arguments.next() ?? "") ?? result.entities
        case "--relations-per-entity": result.relationsPerEntity = Int(arguments.next() ?? "") ?? result.relationsPerEntity
        case "--queries": result.queries = Int(arguments.next() ?? "") ?? result.queries
        default:
            print("usage: graph-benchmark [--entities N] [--relations-per-entity K] [--queries Q]")
            exit(64)
        }
    }
    return result
}
let (entityCount, relationsPerEntity, queriesPerRow) = settings()

// MARK: The graph (deterministic)

let vocabulary = ["cache", "retry", "timeout", "token", "session", "index", "query", "schema", "migration", "latency", "throughput", "queue",
                  "lock", "deadlock", "memory", "leak", "pool", "connection", "socket", "thread", "async", "actor", "batch", "stream",
                  "parser", "encoder", "decoder", "buffer", "checksum", "snapshot", "backup", "restore", "replica", "shard", "leader",
                  "follower", "election", "heartbeat", "circuit", "breaker", "budget", "quota", "embedding", "vector", "search", "rank",
                  "filter", "cursor", "page", "auth", "jwt", "refresh", "rotate", "secret", "config", "deploy", "rollback", "canary"]
let entityTypes = ["Pattern", "Bug", "Decision", "Component", "Service", "Library", "Incident", "Runbook", "Metric", "Team"]
let relationTypes = ["uses", "depends_on", "fixes", "causes", "implements", "documents", "replaces", "relates_to"]

func entityName(_ index: Int) -> String { String(format: "entity %06d", index) }

func makeGraph() -> (entities: [Kb_Graph_V1_Entity], relations: [Kb_Graph_V1_Relation], starts: [String], searches: [String]) {
    var generator = SeededRandom()
    func sentence(_ words: Int) -> String { (0..<words).map { _ in vocabulary[generator.below(vocabulary.count)] }.joined(separator: " ") }
    let entities: [Kb_Graph_V1_Entity] = (0..<entityCount).map { index in
        .with {
            $0.name = entityName(index)
            $0.entityType = entityTypes[index % entityTypes.count]
            $0.observations = [.with { $0.content = sentence(8) }, .with { $0.content = sentence(6) }]
            $0.significance = Int32(1 + index % 10)
        }
    }
    var relationSet = Set<String>()
    var relations: [Kb_Graph_V1_Relation] = []
    relations.reserveCapacity(entityCount * relationsPerEntity)
    for from in 0..<entityCount {
        for _ in 0..<relationsPerEntity {
            let to = generator.below(entityCount), type = relationTypes[generator.below(relationTypes.count)]
            guard to != from, relationSet.insert("\(from) \(type) \(to)").inserted else { continue }
            relations.append(.with { $0.from = entityName(from); $0.to = entityName(to); $0.relationType = type })
        }
    }
    let starts = (0..<queriesPerRow).map { _ in entityName(generator.below(entityCount)) }
    let searches = (0..<queriesPerRow).map { _ in "\(vocabulary[generator.below(vocabulary.count)]) \(vocabulary[generator.below(vocabulary.count)])" }
    return (entities, relations, starts, searches)
}
let (entities, relations, starts, searchWords) = makeGraph()

let work = FileManager.default.temporaryDirectory.appendingPathComponent("graph-benchmark-\(getpid())")
try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: work) }


print("graph-benchmark: \(entities.count) entities, \(relations.count) relations, \(queriesPerRow) queries per row, \(ProcessInfo.processInfo.activeProcessorCount) cores")

// MARK: Reference 1: LevelDB's synced batch writes

/// Records of the size of our encoded entities, 1000 per synced batch: the most a store on
/// LevelDB can import with every batch durable.
func levelDBFloor() throws -> Double {
    let path = work.appendingPathComponent("raw-leveldb").path
    let db = try LevelDB(path: path)
    let value: [UInt8] = try entities[0].serializedBytes()
    let count = min(entities.count, 100_000)
    let start = ContinuousClock.now
    var batch = WriteBatch()
    for index in 0..<count {
        batch.put(Array("E\(entityName(index))".utf8), value)
        if batch.count == 1000 {
            try db.write(batch, sync: true)
            batch = WriteBatch()
        }
    }
    try db.write(batch, sync: true)
    return Double(count) / seconds(ContinuousClock.now - start)
}
let floor = try levelDBFloor()

// MARK: Our store, as a process


let port = freePort()
let service = try startProcess(siblingExecutable("graph-store"), environment: [
    "KB_DATA_DIR": work.appendingPathComponent("data").path,
    "KB_GRAPH_STORE_PORT": "\(port)",
    "KB_GRAPH_STORE_ADMIN_PORT": "\(freePort())",
    "KB_LOG_LEVEL": "warning",
    "KB_RPC_MAX_FRAME_BYTES": "\(64 << 20)",
])
defer { service.terminate(); service.waitUntilExit() }

let clientConfiguration = {
    var configuration = RPCClient.Configuration(host: "127.0.0.1", port: port)
    configuration.maxFrameLength = 64 << 20
    configuration.defaultTimeout = .seconds(600)
    return configuration
}()
let client = RPCClient(configuration: clientConfiguration)
try await waitUntilReady("graph-store") {
    (try? await client.call(HealthMethods.check, .init(), options: CallOptions(timeout: .seconds(1)))) != nil
}

// MARK: Import

/// Sends `items` in batches of `size`, `parallel` batches in flight; returns items per second.
func importRate<T: Sendable>(_ items: [T], size: Int, parallel: Int, send: @escaping @Sendable ([T]) async throws -> Void) async throws -> Double {
    let batches = stride(from: 0, to: items.count, by: size).map { Array(items[$0..<min($0 + size, items.count)]) }
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = 0
        for _ in 0..<min(parallel, batches.count) {
            let batch = batches[next]
            next += 1
            group.addTask { try await send(batch) }
        }
        while try await group.next() != nil, next < batches.count {
            let batch = batches[next]
            next += 1
            group.addTask { try await send(batch) }
        }
        try await group.waitForAll()
    }
    return Double(items.count) / seconds(ContinuousClock.now - start)
}

let entityRate = try await importRate(entities, size: 1000, parallel: 4) { batch in
    _ = try await client.call(GraphStoreMethods.putEntities, .with { $0.team = "bench"; $0.entities = batch; $0.omitEntities = true })
}
let relationRate = try await importRate(relations, size: 5000, parallel: 4) { batch in
    _ = try await client.call(GraphStoreMethods.putRelations, .with { $0.team = "bench"; $0.relations = batch })
}

// MARK: Queries

/// Waits until the store's CPU use (LevelDB's background compaction after the import) drops
/// below 5% of a core for a second, at most a minute: queries are measured on a settled store.
func waitUntilIdle(pid: Int32) async throws -> Double {
    func cpuTicks() -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }
    let start = ContinuousClock.now
    var previous = cpuTicks()
    while ContinuousClock.now - start < .seconds(60) {
        try await Task.sleep(for: .seconds(1))
        let now = cpuTicks()
        if now - previous < 5 { break }
        previous = now
    }
    return seconds(ContinuousClock.now - start)
}
let settleSeconds = try await waitUntilIdle(pid: service.processIdentifier)

struct Latencies {
    var p50: Double
    var p99: Double
    var perSecond: Double
}


/// Runs `queriesPerRow` calls of `body` from `callers` concurrent clients (each its own connection).
func measure(callers: Int, _ body: @escaping @Sendable (RPCClient, Int) async throws -> Void) async throws -> Latencies {
    let clients = (0..<callers).map { _ in RPCClient(configuration: clientConfiguration) }
    for index in 0..<callers { try await body(clients[index], index) }
    let start = ContinuousClock.now
    let samples = try await withThrowingTaskGroup(of: [Double].self) { group in
        for caller in 0..<callers {
            group.addTask {
                var timings: [Double] = []
                for index in stride(from: caller, to: queriesPerRow, by: callers) {
                    let begin = ContinuousClock.now
                    try await body(clients[caller], index)
                    timings.append(seconds(ContinuousClock.now - begin))
                }
                return timings
            }
        }
        return try await group.reduce(into: []) { $0 += $1 }.sorted()
    }
    let elapsed = seconds(ContinuousClock.now - start)
    for client in clients { await client.close() }
    return Latencies(p50: percentile(samples, 0.5) * 1e6, p99: percentile(samples, 0.99) * 1e6, perSecond: Double(samples.count) / elapsed)
}

let queries: [(String, @Sendable (RPCClient, Int) async throws -> Void)] = [
    ("health (RPC floor)", { client, _ in _ = try await client.call(HealthMethods.check, .init()) }),
    ("get-entity", { client, index in _ = try await client.call(GraphStoreMethods.getEntity, .with { $0.team = "bench"; $0.name = starts[index] }) }),
    ("1-hop neighbours", { client, index in _ = try await client.call(GraphStoreMethods.neighbors, .with { $0.team = "bench"; $0.name = starts[index]; $0.depth = 1; $0.maxEntities = 10000 }) }),
    ("2-hop neighbours", { client, index in _ = try await client.call(GraphStoreMethods.neighbors, .with { $0.team = "bench"; $0.name = starts[index]; $0.depth = 2; $0.maxEntities = 10000 }) }),
    ("text search", { client, index in _ = try await client.call(GraphStoreMethods.queryEntities, .with { $0.teams = ["bench"]; $0.text = searchWords[index]; $0.limit = 20 }) }),
]
var rows: [(String, Int, Latencies)] = []
for (name, body) in queries {
    for callers in [1, 16] { rows.append((name, callers, try await measure(callers: callers, body))) }
}
let twoHopSize = try await client.call(GraphStoreMethods.neighbors, .with { $0.team = "bench"; $0.name = starts[0]; $0.depth = 2; $0.maxEntities = 10000 }).entities.count
await client.close()

// MARK: Reference 2: Kuzu on the same graph

var kuzu: [String: Any]?
var kuzuNote = ""
do {
    var entityCSV = "", relationCSV = ""
    for entity in entities { entityCSV += "\(entity.name),\(entity.entityType)\n" }
    for relation in relations { relationCSV += "\(relation.from),\(relation.to),\(relation.relationType)\n" }
    try entityCSV.write(to: work.appendingPathComponent("entities.csv"), atomically: true, encoding: .utf8)
    try relationCSV.write(to: work.appendingPathComponent("relations.csv"), atomically: true, encoding: .utf8)
    try starts.joined(separator: "\n").write(to: work.appendingPathComponent("starts.txt"), atomically: true, encoding: .utf8)
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("kuzu_reference.py")
    let python = try runToEnd("python3", [script.path, work.path])
    kuzu = try? JSONSerialization.jsonObject(with: Data(python.standardOutput.utf8)) as? [String: Any]
    if kuzu == nil { kuzuNote = "kuzu reference failed (pip install kuzu?): \(python.lastErrorLine)" }
}

// MARK: Report

func format(_ value: Double) -> String { String(format: "%10.0f", value) }
print("")
print("import (RPC, batches of 1000 entities / 5000 relations, 4 in flight, every batch synced)")
print("  entities/s   \(format(entityRate))    reference: LevelDB synced batches of 1000 records \(format(floor)) records/s")
print("  relations/s  \(format(relationRate))")
print("")
print("queries over loopback RPC (graph-store process, after \(String(format: "%.0f", settleSeconds)) s for compaction to settle)")
print("                                                      p50 µs     p99 µs      req/s")
for (name, callers, latency) in rows {
    print("  \(name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(String(format: "%2d", callers)) client\(callers == 1 ? " " : "s")                 \(format(latency.p50)) \(format(latency.p99)) \(format(latency.perSecond))")
}
print("  (2-hop neighbourhood of the first start: \(twoHopSize) entities)")
print("")
if let kuzu, let hop1 = kuzu["hop1"] as? [String: Double], let hop2 = kuzu["hop2"] as? [String: Double] {
    print("reference: Kuzu \(kuzu["load_seconds"].map { String(format: "(COPY load %.1f s)", $0 as? Double ?? 0) } ?? ""), embedded, 1 caller, same graph and starts")
    print("  1-hop (distinct names)                              \(format(hop1["p50_us"] ?? 0)) \(format(hop1["p99_us"] ?? 0))   rows \(Int(hop1["mean_rows"] ?? 0))")
    print("  2-hop (distinct names)                              \(format(hop2["p50_us"] ?? 0)) \(format(hop2["p99_us"] ?? 0))   rows \(Int(hop2["mean_rows"] ?? 0))")
} else {
    print(kuzuNote)
}
