import ArgumentParser
import Foundation
import KBHTTPClient
import KBProto
import KBRPC
import KBRuntime
import LauncherKit

/// `kb vectors …`: the operator's view of vector-search collections.
struct Vectors: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Vector collections: list, create, describe, delete, snapshot, restore, rebuild, rebuild-from-graph.",
        discussion: "A client of vector-search at KB_VECTOR_SEARCH_ADDR (default 127.0.0.1:7102) with KB_AUTH_TOKEN.",
        subcommands: [VectorsList.self, VectorsCreate.self, VectorsDescribe.self, VectorsDelete.self, VectorsSnapshot.self, VectorsRestore.self, VectorsRebuild.self, VectorsRebuildFromGraph.self]
    )
}

func withVectorSearch(_ body: (RPCClient) async throws -> Void) async throws {
    try await CommandLineClient.run(.vectorSearch, tool: "kb vectors", passThrough: { $0 is ExitCode }, body)
}

func describe(_ info: Kb_Vector_V1_CollectionInfo) -> [String] {
    let distance = switch info.config.distance {
    case .cosine: "cosine"
    case .dot: "dot"
    case .euclidean: "euclidean"
    case .UNRECOGNIZED(let value): "unknown(\(value))"
    }
    let state = switch info.indexState {
    case .ready: "ready"
    case .building: "building"
    case .unavailable: "UNAVAILABLE"
    default: "unknown"
    }
    return [info.config.name, String(info.config.dimension), distance, BudgetText.count(info.pointCount), state,
            "m=\(info.config.hnsw.m) ef_construct=\(info.config.hnsw.efConstruct)", String(format: "%.1f MiB", Double(info.memoryBytes) / 1_048_576),
            info.config.textField.isEmpty ? "-" : info.config.textField]
}

let collectionHeader = ["Collection", "Dim", "Distance", "Points", "Index", "HNSW", "Memory", "Text field"]

struct VectorsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Every collection with its size and index state.")
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withVectorSearch { client in
            let response = try await client.call(VectorSearchMethods.listCollections, .init())
            if output.json { return try printProtoJSON(response) }
            print(BudgetText.table(collectionHeader, response.collections.map(describe), rightAligned: [1, 3]))
        }
    }
}

struct VectorsCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a collection.")
    @Argument(help: "The name (letters, digits, '_', '-', '.').") var name: String
    @Option(help: "Vector dimension.") var dimension: Int32
    @Option(help: "cosine, dot or euclidean.") var distance = "cosine"
    @Option(help: "HNSW links per node.") var m: Int32 = 16
    @Option(help: "HNSW candidate list while inserting.") var efConstruct: Int32 = 100
    @Option(help: "The text payload field indexed for keyword (BM25) search.") var textField = ""
    @OptionGroup var output: JSONFlag

    func run() async throws {
        var config = Kb_Vector_V1_CollectionConfig()
        config.name = name
        config.dimension = dimension
        switch distance {
        case "cosine": config.distance = .cosine
        case "dot": config.distance = .dot
        case "euclidean": config.distance = .euclidean
        default: throw ValidationError("--distance must be cosine, dot or euclidean")
        }
        config.hnsw.m = m
        config.hnsw.efConstruct = efConstruct
        config.textField = textField
        try await withVectorSearch { client in
            let info = try await client.call(VectorSearchMethods.createCollection, .with { $0.config = config })
            if output.json { return try printProtoJSON(info) }
            print(BudgetText.table(collectionHeader, [describe(info)], rightAligned: [1, 3]))
        }
    }
}

struct VectorsDescribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "describe", abstract: "One collection: size, index state, memory, tombstones.")
    @Argument var name: String
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withVectorSearch { client in
            let info = try await client.call(VectorSearchMethods.describeCollection, .with { $0.name = name })
            if output.json { return try printProtoJSON(info) }
            print(BudgetText.table(collectionHeader + ["Deleted"], [describe(info) + [BudgetText.count(info.deletedCount)]], rightAligned: [1, 3, 8]))
        }
    }
}

struct VectorsDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a collection and its points.")
    @Argument var name: String

    func run() async throws {
        try await withVectorSearch { client in
            let response = try await client.call(VectorSearchMethods.deleteCollection, .with { $0.name = name })
            print(response.deleted ? "Deleted \(name)." : "No collection \(name).")
        }
    }
}

struct VectorsSnapshot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "snapshot", abstract: "Write a consistent copy of a collection while it serves.")
    @Argument var name: String
    @Option(help: "The directory to create inside the service's backup folder (KB_BACKUP_DIR; a relative path is taken inside it); default NAME-<time> there.") var path: String?

    func run() async throws {
        try await withVectorSearch { client in
            let response = try await client.call(VectorSearchMethods.snapshotCollection, .with { $0.name = name; $0.path = path ?? "" }, options: CallOptions(timeout: .seconds(600)))
            print("Snapshot of \(name): \(BudgetText.count(response.pointCount)) points in \(response.path)")
        }
    }
}

struct VectorsRestore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restore", abstract: "Replace (or create) a collection from a snapshot directory, while serving.")
    @Argument var name: String
    @Argument(help: "The snapshot directory, inside the service's backup folder (KB_BACKUP_DIR; a relative path is taken inside it).") var path: String

    func run() async throws {
        try await withVectorSearch { client in
            let info = try await client.call(VectorSearchMethods.restoreCollection, .with { $0.name = name; $0.path = path }, options: CallOptions(timeout: .seconds(3600)))
            print(BudgetText.table(collectionHeader, [describe(info)], rightAligned: [1, 3]))
        }
    }
}

struct VectorsRebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rebuild", abstract: "Rebuild a collection's HNSW index from its stored points.")
    @Argument var name: String

    func run() async throws {
        try await withVectorSearch { client in
            let info = try await client.call(VectorSearchMethods.rebuildIndex, .with { $0.name = name }, options: CallOptions(timeout: .seconds(3600)))
            print(BudgetText.table(collectionHeader, [describe(info)], rightAligned: [1, 3]))
        }
    }
}

/// `kb vectors rebuild-from-graph [--team T]`: asks the inference gateway's indexer to re-embed
/// the graph into a new collection that replaces `knowledge_384` only when complete, and draws
/// its progress (the guide's `rebuild-qdrant-from-graph.sh`).
struct VectorsRebuildFromGraph: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild-from-graph",
        abstract: "Re-embed every entity of the graph (or of one team) into a new knowledge_384 that replaces the old one when complete.",
        discussion: "Runs in inference-gateway's indexer (its admin port, KB_INFERENCE_GATEWAY_ADMIN_PORT, default 9103, with KB_AUTH_TOKEN): the gateway owns the embeddings. The live collection keeps answering searches until the swap; changes written meanwhile are indexed after it."
    )
    @Option(help: "Only this team's entities are re-embedded; the other teams' points are copied as they are.") var team: String?

    func run() async throws {
        let source = try ConfigSource.fromProcess()
        let port = try source.value(of: ServiceConfiguration.Keys.adminPort(.inferenceGateway))
        let token = try source.value(of: ServiceConfiguration.Keys.authToken)
        let base = "http://127.0.0.1:\(port)/internal/indexer"
        let http = HTTPClient()
        defer { http.shutdown() }
        func send(_ request: HTTPRequest) async throws -> (status: Int, json: [String: Any]) {
            let response: HTTPResponse
            do { response = try await http.execute(request) } catch {
                CommandLineClient.fail("kb vectors rebuild-from-graph", "the inference gateway's admin port at 127.0.0.1:\(port) is not reachable (\(error)); start it with `kb up`")
            }
            let bytes = try await response.body.collect(upTo: 1 << 20)
            let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
            return (response.head.status, object)
        }
        let headers: [(name: String, value: String)] = token.map { [("Authorization", "Bearer \($0)")] } ?? []
        let body = try JSONSerialization.data(withJSONObject: team.map { ["team": $0] } ?? [:])
        let started = try await send(.postJSON(base + "/rebuild", body: [UInt8](body), headers: headers))
        guard started.status == 202 else {
            let message = (started.json["error"] as? [String: Any])?["message"] as? String ?? "HTTP \(started.status)"
            CommandLineClient.fail("kb vectors rebuild-from-graph", message)
        }
        let startedMs = (started.json["rebuild"] as? [String: Any])?["started_ms"] as? Int ?? 0
        let bar = ProgressBar(label: "re-embedding\(team.map { " team \($0)" } ?? "")")
        while true {
            try await Task.sleep(for: .milliseconds(200))
            let status = try await send(HTTPRequest(url: base, headers: headers))
            guard let rebuild = status.json["rebuild"] as? [String: Any], rebuild["started_ms"] as? Int == startedMs else { continue }
            let done = rebuild["done"] as? Int ?? 0, total = rebuild["total"] as? Int ?? 0
            bar.update(done, of: total)
            switch rebuild["phase"] as? String {
            case "done":
                bar.finish()
                print("Rebuilt \(status.json["collection"] as? String ?? "knowledge_384") from the graph: \(done) entities re-embedded\(team.map { " (team \($0); other teams copied)" } ?? "").")
                return
            case "failed":
                bar.finish()
                CommandLineClient.fail("kb vectors rebuild-from-graph", "the rebuild failed, the old collection is unchanged: \(rebuild["error"] as? String ?? "unknown error")")
            default:
                continue
            }
        }
    }
}
