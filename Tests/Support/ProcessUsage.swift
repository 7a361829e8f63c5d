import Foundation

/// What a running process has used, read from `/proc/<pid>/stat` and `/proc/<pid>/status`: the
/// measures tests compare (CPU spent by a cancelled request against an uncancelled one, memory
/// held while answering), never wall-clock thresholds.
public enum ProcessUsage {
    /// CPU time (user + system) the process has used, in clock ticks (1/100 s on Linux).
    public static func cpuTicks(_ pid: Int32) -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        // After the command name: state is field 3, utime field 14, stime field 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return 0 }
        return user + system
    }

    /// Resident memory of the process (`VmRSS`), in bytes.
    public static func residentBytes(_ pid: Int32) -> Int {
        field("VmRSS", of: pid)
    }

    /// Peak resident memory of the process (`VmHWM`), in bytes.
    public static func peakResidentBytes(_ pid: Int32) -> Int {
        field("VmHWM", of: pid)
    }

    private static func field(_ name: String, of pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
              let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return 0 }
        return kilobytes * 1024
    }

    /// Waits until the process stops using CPU (at most one tick in each of two consecutive
    /// 300 ms windows, or `timeout`), so a measurement starts and ends at rest (LevelDB's
    /// compactions, work still running after its caller gave up). Returns the ticks then.
    @discardableResult
    public static func waitUntilIdle(_ pid: Int32, timeout: Duration = .seconds(60)) async -> Int {
        let deadline = ContinuousClock.now + timeout
        var last = cpuTicks(pid)
        var calm = 0
        while ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(300))
            let now = cpuTicks(pid)
            calm = now - last <= 1 ? calm + 1 : 0
            last = now
            if calm >= 2 { break }
        }
        return last
    }
}
