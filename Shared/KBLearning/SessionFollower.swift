import Foundation
import KBKnowledge
import KBSessions

/// How far the learner has read in each transcript, kept in one JSON file written whole (a
/// temporary file, synced, renamed) after every exchange learned, so a restart neither misses
/// nor repeats an exchange. A file that was replaced (another inode) or shrank is read again from
/// its start. Exchanges that no provider could extract wait in `queued` for the next run.
public struct LearnState: Codable, Sendable, Equatable {
    public struct Position: Codable, Sendable, Equatable {
        public var inode: UInt64
        public var offset: Int
        public var line: Int
        /// The file's size when last read, and when it last changed (ms since the epoch): a
        /// tail that has not grown for a while is a finished exchange.
        public var size: Int
        public var grewAtMs: Int64
        /// SHA-256 of the file's first `fingerprintBytes` bytes (at most 1 KB): the same
        /// transcript under a new inode (saved by writing a new file and renaming it) reads on;
        /// other content under the same name or inode is read from its start.
        public var fingerprint: String?
        public var fingerprintBytes: Int?

        public init(inode: UInt64, offset: Int, line: Int, size: Int, grewAtMs: Int64) {
            self.inode = inode
            self.offset = offset
            self.line = line
            self.size = size
            self.grewAtMs = grewAtMs
        }
    }

    public var version = 1
    public var team: String
    public var files: [String: Position] = [:]
    public var queued: [SessionExchange] = []

    public init(team: String) {
        self.team = team
    }

    /// The state in `url`, or a new one when there is none. A file that is there but cannot be
    /// read is an error, never a silent new state (that would learn everything again).
    public static func load(_ url: URL, team: String) throws -> LearnState {
        guard FileManager.default.fileExists(atPath: url.path) else { return LearnState(team: team) }
        let data = try Data(contentsOf: url)
        do {
            let state = try JSONDecoder().decode(LearnState.self, from: data)
            guard state.team == team else {
                throw LearnStateError(description: "\(url.path) is the learn state of team '\(state.team)', not '\(team)'; use --state for another file")
            }
            return state
        } catch let error as LearnStateError {
            throw error
        } catch {
            throw LearnStateError(description: "\(url.path) is damaged (\(error)); move it away to learn every file again from its start")
        }
    }

    /// Writes the state durably: temporary file, fsync, rename, fsync of the folder.
    public func save(_ url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(self)
        let folder = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).tmp")
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw LearnStateError(description: "cannot write \(temporary.path): \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        let synced = fsync(descriptor)
        close(descriptor)
        guard written == data.count, synced == 0 else { throw LearnStateError(description: "cannot write \(temporary.path): \(String(cString: strerror(errno)))") }
        guard rename(temporary.path, url.path) == 0 else { throw LearnStateError(description: "cannot replace \(url.path): \(String(cString: strerror(errno)))") }
        let folderDescriptor = open(folder.path, O_RDONLY)
        if folderDescriptor >= 0 {
            fsync(folderDescriptor)
            close(folderDescriptor)
        }
    }
}

public struct LearnStateError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Finds transcripts and reads what is new in each, from the state's positions.
public enum SessionFiles {
    /// The transcript files of `paths` (files as given; folders searched recursively for
    /// `.jsonl`, `.md`, `.markdown`, `.txt`), sorted.
    public static func list(_ paths: [String]) throws -> [String] {
        var found: [String] = []
        for path in paths {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
                throw LearnStateError(description: "\(path): no such file or folder")
            }
            if !isFolder.boolValue {
                found.append(URL(fileURLWithPath: path).standardizedFileURL.path)
                continue
            }
            let root = URL(fileURLWithPath: path, isDirectory: true)
            let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])
            while let url = enumerator?.nextObject() as? URL {
                if SessionFormat.isTranscript(url.path), (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
                    found.append(url.standardizedFileURL.path)
                }
            }
        }
        return Array(Set(found)).sorted()
    }

    /// The most read from a transcript in one look.
    public static let readLimit = 32 << 20

    /// What is new in `file` since `position`: the complete exchanges, and the position after
    /// everything read; nil when the file is gone. The last exchange counts as complete when
    /// `idleMs` is 0 (a batch) or the file has not changed for `idleMs`. A file that has not
    /// changed and whose last exchange is not complete is not read again.
    public static func readNew(_ file: String, from position: LearnState.Position?, idleMs: Int64, nowMs: Int64) throws -> (exchanges: [SessionExchange], unreadable: [Int], position: LearnState.Position)? {
        guard let handle = FileHandle(forReadingAtPath: file) else {
            if errno == ENOENT { return nil }
            throw LearnStateError(description: "\(file): cannot be opened (\(String(cString: strerror(errno))))")
        }
        defer { try? handle.close() }
        var info = stat()
        guard fstat(handle.fileDescriptor, &info) == 0 else { throw LearnStateError(description: "\(file): \(String(cString: strerror(errno)))") }
        let inode = UInt64(info.st_ino)
        let size = Int(info.st_size)
        let head = try handle.read(upToCount: 16_384) ?? Data()
        func fingerprint(_ count: Int) -> String { SHA256.hex([UInt8](head.prefix(count))) }
        let fresh = LearnState.Position(inode: inode, offset: 0, line: 1, size: -1, grewAtMs: nowMs)
        var start = position ?? fresh
        if start.offset < 0 || start.line < 1 || start.offset > size {
            start = fresh  // truncated, or a state edited by hand
        } else if let known = start.fingerprint, let count = start.fingerprintBytes {
            if count > head.count || fingerprint(count) != known { start = fresh }  // other content
        } else if start.inode != inode {
            start = fresh  // replaced, and nothing to tell it is the same
        }
        start.inode = inode
        let grew = size != start.size
        if grew { start.grewAtMs = nowMs }
        start.size = size
        let count = min(1024, head.count)
        start.fingerprintBytes = count
        start.fingerprint = fingerprint(count)
        let final = idleMs == 0 || (!grew && nowMs - start.grewAtMs >= idleMs)
        guard start.offset < size, grew || final || position == nil else { return ([], [], start) }
        let format = SessionFormat.detect(path: file, head: head)
        let context = SessionReader.SessionContext.of(file: file, head: head, format: format)
        try handle.seek(toOffset: UInt64(start.offset))
        // At most `readLimit` bytes a look: memory stays bounded however far behind the follower
        // is (the rest is read by the next look). One exchange longer than that — a pasted log —
        // is taken as ending there (its texts are cut to the exchange limits anyway).
        let data = try handle.read(upToCount: readLimit) ?? Data()
        var result = SessionReader.read(data, file: file, format: format, context: context, offset: start.offset, line: start.line, final: final && data.count < readLimit)
        if data.count == readLimit, result.nextOffset == start.offset {
            result = SessionReader.read(data, file: file, format: format, context: context, offset: start.offset, line: start.line, final: true)
        }
        var next = start
        next.offset = result.nextOffset
        next.line = result.nextLine
        return (result.exchanges, result.unreadable, next)
    }
}
