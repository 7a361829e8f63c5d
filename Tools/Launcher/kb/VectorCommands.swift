import ArgumentParser
import Foundation
import KBProto
import KBRPC
import KBRuntime
import LauncherKit

/// `kb vectors …`: the operator's view of vector-search collections.
struct Vectors: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Vector collections: list, create, describe, delete, snapshot, restore, rebuild.",
        discussion: "A client of vector-search at KB_VECTOR_SEARCH_ADDR (default 127.0.0.1:7102) with KB_AUTH_TOKEN.",
        subcommands: [VectorsList.self, VectorsCreate.self, VectorsDescribe.self, VectorsDelete.self, VectorsSnapshot.self, VectorsRestore.self, VectorsRebuild.self]
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
