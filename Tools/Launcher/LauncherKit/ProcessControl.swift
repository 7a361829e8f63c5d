import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Starting, watching and stopping service processes.
public enum ProcessControl {
    /// glibc's POSIX_SPAWN_SETSID (2.26+), which Swift does not import because it needs _GNU_SOURCE.
    private static let spawnSetSID: Int32 = 0x80

    /// Starts `executable` in a session of its own (so a terminal's Ctrl-C reaches only the
    /// launcher, which then stops services in order), with stdout and stderr appended to `logFile`.
    public static func spawn(executable: URL, arguments: [String] = [], environment: [String: String], logFile: URL) throws -> pid_t {
        try FileManager.default.createDirectory(at: logFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        closeInheritedDescriptorsOnExec()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, logFile.path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(spawnSetSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let argv = [executable.path] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let result = withCStrings(argv) { argvPointer in
            withCStrings(envp) { envPointer in
                posix_spawn(&pid, executable.path, &actions, &attributes, argvPointer, envPointer)
            }
        }
        guard result == 0 else {
            throw LauncherError("cannot start \(executable.path): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// Whether a process with this id exists (and is not a zombie we have reaped).
    public static func isAlive(_ pid: pid_t) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    /// Reaps our child `pid` if it has exited; returns its exit status then, nil while it runs.
    public static func reap(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid else { return result < 0 ? -1 : nil }
        if status & 0x7F == 0 { return (status >> 8) & 0xFF }  // exited
        return 128 + (status & 0x7F)  // killed by a signal
    }

    /// Sends SIGTERM, waits up to `grace` for the exit, then SIGKILL. Returns true when it was
    /// still running and had to be killed.
    @discardableResult
    public static func stop(_ pid: pid_t, grace: Duration, isChild: Bool) async -> Bool {
        guard isAlive(pid) else { return false }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            if isChild, reap(pid) != nil { return false }
            if !isChild, !isAlive(pid) { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
        kill(pid, SIGKILL)
        if isChild { _ = waitpid(pid, nil, 0) }
        return true
    }

    /// Marks every descriptor above stderr close-on-exec, so a service does not inherit the
    /// launcher's (a caller's pipe held open by a detached service would never see end-of-file).
    private static func closeInheritedDescriptorsOnExec() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for entry in entries {
            guard let fd = Int32(entry), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        let pointers = strings.map { strdup($0) } + [nil]
        defer { pointers.forEach { free($0) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// A launcher failure, with a message for the operator.
public struct LauncherError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
