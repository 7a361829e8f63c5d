import Foundation

/// A free TCP port on 127.0.0.1 (bound once and released: another process could take it before
/// the caller does, which is good enough for a benchmark).
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The command line of a benchmark: `--name value` options and `--flag` switches.
public struct BenchmarkArguments: Sendable {
    /// The arguments after the program name.
    public let words: [String]

    public init(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) {
        words = arguments
    }

    /// The value after `name`, or nil when `name` is absent or last.
    public func string(_ name: String) -> String? {
        guard let index = words.firstIndex(of: name), index + 1 < words.count else { return nil }
        return words[index + 1]
    }

    /// The whole number after `name`; `fallback` when absent. A value that is not a whole number
    /// ends the program with a message naming the option.
    public func integer(_ name: String, default fallback: Int) -> Int {
        guard let raw = string(name) else { return fallback }
        guard let value = Int(raw) else { fail("\(name) takes a whole number, not '\(raw)'") }
        return value
    }

    /// The comma-separated whole numbers after `name` (e.g. `--callers 1,16,64`); `fallback` when absent.
    public func integers(_ name: String, default fallback: [Int]) -> [Int] {
        guard let raw = string(name) else { return fallback }
        let values = raw.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count == raw.split(separator: ",").count else {
            fail("\(name) takes whole numbers separated by commas, not '\(raw)'")
        }
        return values
    }

    /// Whether the switch `name` is present.
    public func flag(_ name: String) -> Bool { words.contains(name) }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("\(message)\n".utf8))
        exit(64)
    }
}

/// A deterministic generator (xorshift64): the same seed gives the same benchmark data on every
/// machine and every run.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// The default seed is the one the graph benchmark's data has always been drawn with.
    public init(seed: UInt64 = 0x9E37_79B9_7F4A_7C15) {
        state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed
    }

    public mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    /// A number in 0..<bound.
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// The fixed period every benchmark's data lives in, so that runs on different days compare:
/// a mid-month instant (2026-06-15T12:00:00Z). Day-dependent work (a month's load spread up to
/// now, ranges with partial first and last day) is then the same on the 1st and on the 30th.
public enum PinnedClock {
    /// 2026-06-15T12:00:00Z in Unix milliseconds.
    public static let startMs: Int64 = 1_781_524_800_000

    /// A clock for a service under benchmark: `startMs` when the process starts, then moving with
    /// real time (reservations expire, group commits see time pass) from there.
    public static func advancing(from startMs: Int64 = startMs) -> @Sendable () -> Int64 {
        let origin = ContinuousClock.now
        return { startMs + Int64(seconds(ContinuousClock.now - origin) * 1000) }
    }
}

/// The options of a round-trip benchmark, shared by rpc-benchmark and the gRPC reference it runs
/// so that both measure the same thing: `--seconds` per row, `--payload` bytes, `--connections`,
/// `--callers` (comma-separated counts), `--separate-executor`.
public struct RoundTripOptions: Sendable {
    /// The measured window of each row (after a 0.5 s warm-up).
    public var window: Duration
    /// The bytes carried each way.
    public var payloadSize: Int
    /// Connections the callers share.
    public var connections: Int
    /// The caller counts, one row each.
    public var callerCounts: [Int]
    /// Whether Swift concurrency should keep its own thread pool instead of running on NIO's
    /// event loops (as the services do).
    public var separateExecutor: Bool

    public init(_ arguments: BenchmarkArguments) {
        window = .seconds(max(1, arguments.integer("--seconds", default: 3)))
        payloadSize = max(0, arguments.integer("--payload", default: 64))
        connections = max(1, arguments.integer("--connections", default: 2))
        callerCounts = arguments.integers("--callers", default: [1, 16, 64])
        separateExecutor = arguments.flag("--separate-executor")
    }

    /// These options as command-line arguments, for a reference run as a subprocess.
    public var commandLine: [String] {
        ["--seconds", "\(Int(seconds(window)))", "--payload", "\(payloadSize)", "--connections", "\(connections)",
         "--callers", callerCounts.map(String.init).joined(separator: ",")] + (separateExecutor ? ["--separate-executor"] : [])
    }

    /// The payload: `payloadSize` bytes counting up from 0.
    public var payload: Data { Data((0..<payloadSize).map { UInt8($0 & 0xFF) }) }
}
