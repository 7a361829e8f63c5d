import Foundation
import HTTPTypes
import Hummingbird
import KBProto
import KBRPC
import KBRuntime

/// Snapshots through the Qdrant port: the store's collection snapshots (a folder with
/// `collection.pb` and `points.bin`), always inside `KB_BACKUP_DIR`, named
/// `<collection>-<milliseconds>`; the same folders `kb vectors snapshot` / `restore` use.
extension QdrantFront {
    func addSnapshotRoutes<Context: RequestContext>(to router: Router<Context>) {
        let store = self.store, backupRoot = self.backupRoot, logger = self.logger
        handle(router, .post, "/collections/:name/snapshots") { _, context, _ in
            let collection = try namedCollection(context)
            let name = collection.config.name
            let target = try backupRoot.newBackup("\(name)-\(Int64(Date().timeIntervalSince1970 * 1000))", field: "name")
            _ = try await store.snapshot(name, to: target.path)
            logger.info("collection snapshot written through the Qdrant API", metadata: ["collection": "\(name)", "path": "\(target.path)"])
            return Self.describe(target)
        }
        handle(router, .get, "/collections/:name/snapshots") { _, context, _ in
            let name = try namedCollection(context).config.name
            return .array(Self.snapshots(of: name, in: backupRoot).map(Self.describe))
        }
        handle(router, .delete, "/collections/:name/snapshots/:snapshot") { _, context, _ in
            let name = try namedCollection(context).config.name
            let snapshot = context.parameters.get("snapshot") ?? ""
            guard let folder = Self.snapshots(of: name, in: backupRoot).first(where: { $0.lastPathComponent == snapshot }) else {
                throw QdrantError(status: 404, message: "Not found: Snapshot \(snapshot) of collection `\(name)` doesn't exist!", field: "snapshot_name")
            }
            try FileManager.default.removeItem(at: folder)
            return .bool(true)
        }
        // Recovery creates or replaces the collection from a snapshot inside the backup root:
        // `location` is a snapshot's name, its path, or a `file://` URL of it.
        handle(router, .put, "/collections/:name/snapshots/recover") { _, context, body in
            let name = context.parameters.get("name") ?? ""
            guard VectorStore.isValidName(name) else { throw QdrantError.invalid("name", "is not a collection name") }
            guard case .string(var location)? = body?["location"] else { throw QdrantError.invalid("location", "is required: the snapshot's name, path or file:// URL") }
            if location.hasPrefix("http://") || location.hasPrefix("https://") {
                throw QdrantError.invalid("location", "downloading snapshots is not supported: give the name of a snapshot inside KB_BACKUP_DIR (\(backupRoot.directory.path))")
            }
            if location.hasPrefix("file://") { location = URL(string: location)?.path ?? String(location.dropFirst(7)) }
            let source = try backupRoot.existingBackup(location, field: "location")
            for file in ["collection.pb", "points.bin"] {
                _ = try backupRoot.existingBackup(source.appendingPathComponent(file).path, field: "location")
            }
            let restored = try await store.restore(name, from: source.path)
            logger.notice("collection recovered from a snapshot through the Qdrant API", metadata: ["collection": "\(name)", "points": "\(restored.pointCount)"])
            return .bool(true)
        }
    }

    /// The snapshot folders of collection `name` in the backup root, oldest first.
    static func snapshots(of name: String, in root: BackupRoot) -> [URL] {
        let folders = (try? FileManager.default.contentsOfDirectory(at: root.directory, includingPropertiesForKeys: nil)) ?? []
        return folders.filter { folder in
            guard let data = try? Data(contentsOf: folder.appendingPathComponent("collection.pb")),
                  let config = try? Kb_Vector_V1_CollectionConfig(serializedBytes: data) else { return false }
            return config.name == name
        }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Qdrant's `SnapshotDescription` of a snapshot folder.
    static func describe(_ folder: URL) -> QdrantJSON {
        var size: Int64 = 0
        var created = Date()
        for file in ["collection.pb", "points.bin"] {
            if let attributes = try? FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(file).path) {
                size += (attributes[.size] as? NSNumber)?.int64Value ?? 0
                if file == "points.bin", let modified = attributes[.modificationDate] as? Date { created = modified }
            }
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withDashSeparatorInDate]
        return .object(["name": .string(folder.lastPathComponent), "creation_time": .string(formatter.string(from: created)), "size": .int(size), "checksum": .null])
    }
}
