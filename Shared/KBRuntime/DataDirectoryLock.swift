import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on a service's data directory, held for the life of the process, so that a
/// second instance on the same directory refuses to start instead of corrupting the first.
///
/// It is an `flock` on `<directory>/.lock`, which the kernel releases when the process dies, even
/// by `kill -9`: a stale lock file never blocks a restart.
public final class DataDirectoryLock: Sendable {
    /// Why the lock could not be taken.
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public let message: String
        public var description: String { message }
    }

    /// The locked directory.
    public let directory: URL
    private let descriptor: Int32

    /// Creates the directory if needed and locks it, or throws naming the process that holds it.
    public init(directory: URL, owner: String) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(".lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw Error(message: "cannot open lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw Error(message: "\(directory.path) is already in use by another \(owner)\(holder.isEmpty ? "" : " (\(holder))"); stop it first or set KB_DATA_DIR to another directory")
        }
        ftruncate(fd, 0)
        let note = "pid \(getpid())\n"
        _ = note.withCString { write(fd, $0, strlen($0)) }
        self.directory = directory
        self.descriptor = fd
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
