import Foundation

/// A backup folder (`KB_BACKUP_DIR`) laid out with the traps a backup path must not fall into,
/// and the paths that try them: a folder outside it, `..`, a dangling symbolic link as the
/// target, and a link to an outside folder on the way.
public struct BackupRootFixture: Sendable {
    /// The backup folder to give the service.
    public let root: URL
    /// A folder outside the root; nothing may appear in it.
    public let outside: URL
    /// `root/dangling`, a link to `outside/link-target`, which does not exist.
    public let danglingLink: URL
    /// Where the dangling link points.
    public let danglingTarget: URL

    /// A fresh root with its traps.
    public init() throws {
        root = temporaryDirectory("kb-backups")
        outside = temporaryDirectory("outside")
        danglingLink = root.appendingPathComponent("dangling")
        danglingTarget = outside.appendingPathComponent("link-target")
        try FileManager.default.createSymbolicLink(atPath: danglingLink.path, withDestinationPath: danglingTarget.path)
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("linked").path, withDestinationPath: outside.path)
    }

    /// Paths every backup or restore must refuse: an absolute one outside the root, a `..`
    /// escape, the dangling link, a path through the linked folder.
    public var refusedPaths: [String] {
        [outside.appendingPathComponent("copy").path, "../escape", "nested/../../escape", danglingLink.path, "dangling", "linked/copy"]
    }

    /// What went wrong after the refusals, if anything: files outside the root, the link
    /// replaced or followed, a folder made beside the root.
    public func damage() -> [String] {
        var problems: [String] = []
        let files = FileManager.default
        if let inside = try? files.contentsOfDirectory(atPath: outside.path), !inside.isEmpty { problems.append("written outside the root: \(inside)") }
        if (try? files.destinationOfSymbolicLink(atPath: danglingLink.path)) != danglingTarget.path { problems.append("the dangling link was replaced or removed") }
        if files.fileExists(atPath: danglingTarget.path) { problems.append("the dangling link was followed") }
        if files.fileExists(atPath: root.deletingLastPathComponent().appendingPathComponent("escape").path) { problems.append("'..' escaped the root") }
        return problems
    }
}
