import Foundation
import KBRPC

#if canImport(Glibc)
import Glibc
#endif

/// The one folder a service writes its backups to and restores from (`KB_BACKUP_DIR`, by
/// default `backups` beside the data directory), and the one check of a caller's path against it,
/// shared by graph-store's `Backup`, vector-search's `SnapshotCollection` / `RestoreCollection`
/// and budget-service's `Backup`.
///
/// The rules, each named in the error (`INVALID_ARGUMENT` on the request's path field):
/// a relative path is taken inside the root; an absolute path must lie inside it; `..` is never
/// allowed; no component below the root may be a symbolic link (checked with `lstat`, so a
/// dangling link is refused too, never followed, replaced or deleted); folders are created only
/// inside the root. The root itself may be a link an operator made (it is resolved once).
public struct BackupRoot: Sendable, CustomStringConvertible {
    /// The root folder, absolute, its own links resolved.
    public let directory: URL

    /// The root at `directory` (relative to the working directory when relative).
    public init(directory: URL) {
        self.directory = directory.standardizedFileURL.resolvingSymlinksInPath()
    }

    public var description: String { directory.path }

    /// Where a new backup named by a caller goes: inside the root, not existing yet (not even as
    /// a dangling link), its missing parent folders created inside the root.
    public func newBackup(_ path: String, field: String) throws -> URL {
        let target = try resolve(path, field: field)
        if let type = Self.fileType(target.path) {
            if type == .link {
                throw refusal(field, path, "is a symbolic link; backups never follow or replace links")
            }
            throw RPCError(.alreadyExists, field: field, reason: nil, "\(target.path) already exists; name a new backup inside \(directory.path)")
        }
        try createFolders(upTo: target.deletingLastPathComponent(), field: field, given: path)
        return target
    }

    /// An existing backup named by a caller, to restore from: inside the root, no link on the
    /// way, present.
    public func existingBackup(_ path: String, field: String) throws -> URL {
        let target = try resolve(path, field: field)
        guard let type = Self.fileType(target.path) else {
            throw RPCError(.notFound, field: field, reason: .notFound, "\(target.path) does not exist (backups are read from inside \(directory.path), KB_BACKUP_DIR)")
        }
        if type == .link {
            throw refusal(field, path, "is a symbolic link; restores never follow links")
        }
        return target
    }

    /// `path` checked lexically and against links on the way: the absolute URL inside the root.
    func resolve(_ path: String, field: String) throws -> URL {
        guard !path.isEmpty else { throw RPCError.invalidArgument(field: field, reason: .required, "is required: a backup path inside \(directory.path) (KB_BACKUP_DIR)") }
        guard !path.contains("\0") else { throw refusal(field, path, "holds a NUL character") }
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        if components.contains("..") { throw refusal(field, path, "may not contain '..'") }
        let relative: [Substring]
        if path.hasPrefix("/") {
            let rootComponents = directory.path.split(separator: "/", omittingEmptySubsequences: true)
            let given = components.filter { $0 != "." }
            guard given.count > rootComponents.count, Array(given.prefix(rootComponents.count)) == rootComponents else {
                throw refusal(field, path, "is outside the backup folder \(directory.path); give a path inside it, or a relative one (KB_BACKUP_DIR)")
            }
            relative = Array(given.dropFirst(rootComponents.count))
        } else {
            relative = components.filter { $0 != "." }
        }
        guard !relative.isEmpty else { throw refusal(field, path, "names the backup folder itself; name a backup inside it") }
        var url = directory
        for (index, component) in relative.enumerated() {
            url.appendPathComponent(String(component), isDirectory: index < relative.count - 1)
            guard index < relative.count - 1, let type = Self.fileType(url.path) else { continue }
            if type == .link { throw refusal(field, path, "goes through the symbolic link \(url.path); links are never followed") }
            if type != .folder { throw refusal(field, path, "goes through \(url.path), which is not a folder") }
        }
        return url
    }

    /// Creates the root and the folders from it down to `folder` (each checked not to be a link).
    private func createFolders(upTo folder: URL, field: String, given: String) throws {
        let files = FileManager.default
        if !files.fileExists(atPath: directory.path) {
            try files.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        let relative = folder.path.dropFirst(directory.path.count).split(separator: "/")
        var url = directory
        for component in relative {
            url.appendPathComponent(String(component), isDirectory: true)
            if mkdir(url.path, 0o750) != 0 && errno != EEXIST {
                throw RPCError(.failedPrecondition, field: field, reason: nil, "cannot create \(url.path): \(String(cString: strerror(errno)))")
            }
            guard Self.fileType(url.path) == .folder else {
                throw refusal(field, given, "goes through \(url.path), which is a link or not a folder")
            }
        }
    }

    /// What a path names, seen without following a link.
    enum FileType { case link, folder, other }

    /// What is at `path` without following a link there (`lstat`); nil when nothing is.
    static func fileType(_ path: String) -> FileType? {
        var status = stat()
        guard lstat(path, &status) == 0 else { return nil }
        switch status.st_mode & mode_t(S_IFMT) {
        case mode_t(S_IFLNK): return .link
        case mode_t(S_IFDIR): return .folder
        default: return .other
        }
    }

    private func refusal(_ field: String, _ path: String, _ rule: String) -> RPCError {
        RPCError.invalidArgument(field: field, reason: .invalidFormat, "'\(path)' \(rule)")
    }
}
