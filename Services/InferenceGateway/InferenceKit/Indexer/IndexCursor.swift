import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The indexer's place in the graph store's change feed, in a small file of the gateway's data
/// folder (`indexer.cursor`: the sequence number, as decimal text).
///
/// It is written only after vector-search acknowledged every write up to it, through a
/// temporary file that is synced, renamed over the old one, and the folder synced: after
/// `kill -9` or a power cut the file holds the old number or the new one, never a torn one.
/// At-least-once: changes after the stored number are applied again, and every write the
/// indexer makes is idempotent (points keyed by `team:name`).
public struct IndexCursor: Sendable {
    /// The cursor file's name inside the data folder.
    public static let fileName = "indexer.cursor"

    /// The file; nil keeps the cursor in memory only (a gateway without a data folder).
    public let url: URL?

    /// The cursor of the gateway whose data folder is `directory`.
    public init(directory: URL?) {
        url = directory?.appendingPathComponent(Self.fileName)
    }

    /// The stored sequence number; nil when none was stored yet (the indexer then starts from
    /// the feed's beginning, or resynchronises when the feed no longer holds it).
    public func load() throws -> Int64? {
        guard let url, FileManager.default.fileExists(atPath: url.path) else { return nil }
        let text = try String(contentsOf: url, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let value = Int64(text), value >= 0 else {
            throw IndexerError(.damagedCursor, "\(url.path) does not hold a sequence number (found \(text.prefix(40).debugDescription)); delete it to resynchronise the index from the graph")
        }
        return value
    }

    /// Stores `sequence` durably (temporary file, fsync, rename, fsync of the folder).
    public func store(_ sequence: Int64) throws {
        guard let url else { return }
        let folder = url.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(".\(Self.fileName).tmp")
        let bytes = Array("\(sequence)\n".utf8)
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw IndexerError(.cursorWrite, "cannot write \(temporary.path): \(String(cString: strerror(errno)))") }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0 else { throw IndexerError(.cursorWrite, "cannot write \(temporary.path): \(String(cString: strerror(errno)))") }
        guard rename(temporary.path, url.path) == 0 else { throw IndexerError(.cursorWrite, "cannot replace \(url.path): \(String(cString: strerror(errno)))") }
        let directory = open(folder.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            _ = fsync(directory)
            close(directory)
        }
    }
}

/// A failure of the indexer that is not a peer's RPC error.
public struct IndexerError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, for a caller to switch on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name, as logged.
        public let rawValue: String
        /// The code's name.
        public var description: String { rawValue }
        /// The cursor file holds something else than a number.
        public static let damagedCursor = Code(rawValue: "damaged_cursor")
        /// The cursor file cannot be written.
        public static let cursorWrite = Code(rawValue: "cursor_write")
        /// The local embedding model is not loaded.
        public static let noModel = Code(rawValue: "no_model")
        /// A rebuild is already running.
        public static let busy = Code(rawValue: "busy")
        /// A peer answered something the indexer cannot use.
        public static let unexpectedAnswer = Code(rawValue: "unexpected_answer")
    }

    /// What went wrong.
    public let code: Code
    /// What happened and what to do about it, for a person.
    public let message: String
    /// An error with `code` and `message`.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    /// `code: message`.
    public var description: String { "\(code): \(message)" }
}
