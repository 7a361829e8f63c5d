import Foundation
import KBRuntime

/// The stores a whole-system backup holds, each owned by one service, in the order `kb backup`
/// copies them (see `SystemBackup.backup`).
public enum SystemStore: String, Codable, Sendable, CaseIterable {
    /// The inference gateway's caches (completion, semantic, embedding: one SQLite file) and its
    /// indexer's cursor. First, so the cursor is never past the graph's copy.
    case inferenceCache = "inference-cache"
    /// vector-search's collections, one snapshot each.
    case vectors
    /// budget-service's ledger.
    case budget
    /// graph-store's entities and relations. Last: every change the copied cursor and vectors
    /// have seen is in it.
    case graph

    /// The service that owns the store.
    public var descriptor: ServiceDescriptor {
        switch self {
        case .inferenceCache: .inferenceGateway
        case .vectors: .vectorSearch
        case .budget: .budgetService
        case .graph: .graphStore
        }
    }

    /// The store's folder under `KB_DATA_DIR`.
    public var dataSubdirectory: String { descriptor.dataSubdirectory! }

    /// The part's name inside the backup folder, as the operations guide names its backups
    /// (`graph-db_<date>`, `qdrant_<date>` for the vector collections, `analytics_<date>.db`).
    public func partName(stamp: String) -> String {
        switch self {
        case .inferenceCache: "inference-cache_\(stamp)"
        case .vectors: "qdrant_\(stamp)"
        case .budget: "analytics_\(stamp).db"
        case .graph: "graph-db_\(stamp)"
        }
    }
}

/// `manifest.json` of a whole-system backup: what each store's copy holds (counts), its files
/// with their SHA-256, the versions and the time; `kb verify-backup` and `kb restore` check a
/// backup against it.
public struct BackupManifest: Codable, Sendable, Equatable {
    /// The manifest's file name inside the backup folder.
    public static let fileName = "manifest.json"
    /// The layout version this launcher writes and reads.
    public static let currentFormat = 1

    /// One file of a store's copy.
    public struct File: Codable, Sendable, Equatable {
        /// Relative to the backup folder.
        public var path: String
        public var bytes: Int64
        /// Lowercase hex.
        public var sha256: String
    }

    /// One vector collection's snapshot.
    public struct Collection: Codable, Sendable, Equatable {
        public var name: String
        public var dimension: Int32
        public var distance: String
        public var points: Int64
        /// The snapshot folder, relative to the backup folder.
        public var path: String
    }

    /// One store's copy.
    public struct Store: Codable, Sendable, Equatable {
        public var store: SystemStore
        /// The owning service, e.g. `graph-store`.
        public var service: String
        /// The version the service reported (its `/health`), empty when it did not answer.
        public var serviceVersion: String
        /// The part, relative to the backup folder (a folder, or the budget's one file).
        public var path: String
        /// How the copy was made (which RPC, or which file copy).
        public var method: String
        /// What it holds: `entities`, `relations`; `collections`, `points`; `events`,
        /// `archived_events`; `rows.<table>`, `indexer_cursor`.
        public var counts: [String: Int64]
        /// The vector collections (vectors only).
        public var collections: [Collection]?
        public var files: [File]
        /// How long the copy took.
        public var seconds: Double
    }

    public var format: Int
    /// The backup folder's name, `knowledge-system_<date>`.
    public var name: String
    /// `KnowledgeBaseVersion.current` of the `kb` that made it.
    public var systemVersion: String
    /// ISO 8601, UTC.
    public var createdAt: String
    /// The data directory it was taken from.
    public var dataDirectory: String
    public var stores: [Store]
    /// How long the whole backup took.
    public var seconds: Double

    /// The store entry for `store`, if the backup holds it.
    public func entry(_ store: SystemStore) -> Store? { stores.first { $0.store == store } }

    /// Reads `manifest.json` from `folder`.
    public static func read(from folder: URL) throws -> BackupManifest {
        let file = folder.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw LauncherError("\(file.path) is missing: \(folder.path) is not a backup made by `kb backup`")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let manifest: BackupManifest
        do { manifest = try decoder.decode(BackupManifest.self, from: data) } catch {
            throw LauncherError("\(file.path) is not a readable manifest (\(error)); the backup cannot be checked or restored")
        }
        guard manifest.format == currentFormat else {
            throw LauncherError("\(file.path) has format \(manifest.format); this kb reads format \(currentFormat)")
        }
        return manifest
    }

    /// Writes it as `manifest.json` into `folder` (synced).
    public func write(to folder: URL) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let file = folder.appendingPathComponent(Self.fileName)
        try encoder.encode(self).write(to: file, options: .atomic)
    }
}

/// The files below a folder and their SHA-256 (`sha256sum` from coreutils: streaming, native speed).
enum FileDigests {
    /// Every regular file below `part` (a folder or a file), relative to `base`, with size and digest.
    static func files(of part: URL, relativeTo base: URL) throws -> [BackupManifest.File] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: part.path, isDirectory: &isFolder) else {
            throw LauncherError("\(part.path) is missing")
        }
        var relative: [String] = []
        let prefix = base.standardizedFileURL.path + "/"
        if isFolder.boolValue {
            guard let walk = FileManager.default.enumerator(at: part, includingPropertiesForKeys: [.isRegularFileKey]) else { return [] }
            for case let url as URL in walk where (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
                relative.append(String(url.standardizedFileURL.path.dropFirst(prefix.count)))
            }
        } else {
            relative.append(String(part.standardizedFileURL.path.dropFirst(prefix.count)))
        }
        relative.sort()
        let digests = try sha256(relative, in: base)
        return try relative.map { path in
            let size = try FileManager.default.attributesOfItem(atPath: base.appendingPathComponent(path).path)[.size] as? Int64 ?? 0
            return BackupManifest.File(path: path, bytes: size, sha256: digests[path] ?? "")
        }
    }

    /// The SHA-256 of each of `paths` (relative to `base`).
    static func sha256(_ paths: [String], in base: URL) throws -> [String: String] {
        guard !paths.isEmpty else { return [:] }
        let tool = ["/usr/bin/sha256sum", "/bin/sha256sum"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let tool else { throw LauncherError("sha256sum (coreutils) is not installed; it checksums the backup's files") }
        var digests: [String: String] = [:]
        for chunk in stride(from: 0, to: paths.count, by: 500) {
            let batch = Array(paths[chunk..<min(paths.count, chunk + 500)])
            let result = try runTool(URL(fileURLWithPath: tool), ["--"] + batch, environment: ["LC_ALL": "C"], currentDirectory: base)
            guard result.status == 0 else { throw LauncherError("sha256sum failed in \(base.path): \(result.output)") }
            for line in result.output.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1)
                guard parts.count == 2 else { continue }
                digests[String(parts[1].drop { $0 == " " || $0 == "*" })] = String(parts[0])
            }
        }
        return digests
    }
}
