import BenchmarkSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What one wrk run measured.
struct LoadFigures: Sendable {
    /// Completed requests per second over the run.
    var rate: Double
    /// Latency quantiles in milliseconds (wrk's, microsecond resolution).
    var p50: Double
    var p99: Double
    /// Non-2xx answers, connection errors and timeouts.
    var errors: Int
    var requests: Int
}

/// One request shape, as the three systems under test are asked it.
struct ChatCall: Sendable {
    /// e.g. `http://127.0.0.1:40123/v1/chat/completions`.
    var url: String
    var model: String
    var bearer: String
    var stream: Bool

    /// The JSON body: one short user message, temperature 0.7 (so no response cache answers it).
    var body: String {
        #"{"model":"\#(model)","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":16,"temperature":0.7"#
            + (stream ? #","stream":true}"# : "}")
    }
}

/// Drives HTTP load with wrk (Debian's `wrk`, LuaJIT inside): closed-loop for the maximum
/// throughput, and paced for a fixed rate.
///
/// wrk has no fixed-rate mode (wrk2 is not packaged in Debian) and `hey -q` reports latencies
/// only to 0.1 ms. So the rate is held by wrk's Lua `delay()` hook: every request of a thread
/// takes the next slot of a fixed schedule (1/rate apart) from a monotonic clock read through
/// LuaJIT's FFI, and waits for it (wrk's timers have millisecond resolution; slots stay exact on
/// average). Latency is timed from the request's send, so a system that falls behind shows it as
/// a lower achieved rate (reported), not as queueing time (no coordinated-omission correction).
struct LoadGenerator: Sendable {
    let wrk: String
    let workDirectory: URL

    /// wrk's path, or nil when it is not installed.
    static func find() -> String? {
        ["/usr/bin/wrk", "/usr/local/bin/wrk"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs wrk for `duration` with `connections` connections on one thread; `rate` (requests per
    /// second) paces it, nil runs closed-loop.
    func run(_ call: ChatCall, connections: Int, duration: Int, rate: Double?) throws -> LoadFigures {
        let script = workDirectory.appendingPathComponent("wrk-\(UUID().uuidString.prefix(8)).lua")
        try luaScript(call, rate: rate).write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let output = try runToEnd(wrk, ["-t1", "-c\(connections)", "-d\(duration)s", "--timeout", "10s", "-s", script.path, call.url])
        guard output.status == 0, let line = output.standardOutput.split(separator: "\n").first(where: { $0.hasPrefix("KBBENCH ") }) else {
            throw BenchmarkFailure("wrk failed (status \(output.status)): \(output.lastErrorLine) \(output.standardOutput.suffix(400))")
        }
        let fields = line.split(separator: " ").dropFirst().map { Double($0) ?? 0 }
        guard fields.count == 5 else { throw BenchmarkFailure("wrk printed an unexpected summary: \(line)") }
        let (requests, micros, errors, p50, p99) = (fields[0], fields[1], fields[2], fields[3], fields[4])
        return LoadFigures(rate: micros > 0 ? requests / (micros / 1e6) : 0, p50: p50 / 1000, p99: p99 / 1000, errors: Int(errors), requests: Int(requests))
    }

    /// The Lua script: the POST, the pacing, and a one-line summary (`KBBENCH requests
    /// duration_us errors p50_us p99_us`).
    func luaScript(_ call: ChatCall, rate: Double?) -> String {
        let body = call.body.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
        var lua = """
        wrk.method = "POST"
        wrk.body = '\(body)'
        wrk.headers["Content-Type"] = "application/json"
        wrk.headers["Authorization"] = "Bearer \(call.bearer)"

        """
        if let rate {
            lua += """
            local ffi = require("ffi")
            ffi.cdef[[
              typedef struct { long tv_sec; long tv_nsec; } kb_timespec;
              int clock_gettime(int clock, kb_timespec *tp);
            ]]
            local now_ts = ffi.new("kb_timespec")
            local function now_ms()
              ffi.C.clock_gettime(1, now_ts)
              return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
            end
            local interval = \(1000.0 / rate)
            local next_slot = nil
            function delay()
              local now = now_ms()
              if next_slot == nil then next_slot = now end
              local slot = next_slot
              next_slot = next_slot + interval
              local wait = slot - now
              if wait <= 0 then return 0 end
              return math.floor(wait + 0.5)
            end

            """
        }
        lua += """
        function done(summary, latency, requests)
          local e = summary.errors
          io.write(string.format("KBBENCH %d %d %d %d %d\\n", summary.requests, summary.duration,
            e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50), latency:percentile(99)))
        end

        """
        return lua
    }
}

/// Times streamed answers one at a time over one keep-alive connection: from writing the
/// request to the first byte of the first word of the answer (`FakeProvider.words[0]`), which is
/// when a user sees text. Plain blocking sockets, so the client adds nothing of its own.
struct FirstByteClient {
    let port: Int
    let path: String
    private var connection: Int32 = -1

    init(url: String) throws {
        guard let components = URLComponents(string: url), let port = components.port else { throw BenchmarkFailure("not a URL with a port: \(url)") }
        self.port = port
        path = components.path
    }

    /// Milliseconds to the first word, for each of `count` requests (after `warmUp` unmeasured ones).
    mutating func measure(_ call: ChatCall, count: Int, warmUp: Int = 20) throws -> [Double] {
        let request = Array("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\nAuthorization: Bearer \(call.bearer)\r\nAccept: text/event-stream\r\nContent-Length: \(call.body.utf8.count)\r\n\r\n\(call.body)".utf8)
        let marker = Array(FakeProvider.words[0].utf8)
        var samples: [Double] = []
        for index in 0..<(count + warmUp) {
            // A keep-alive connection the server closed while idle is opened again, once.
            var exchange = try self.exchange(request, marker: marker)
            if exchange == nil {
                disconnect()
                exchange = try self.exchange(request, marker: marker)
            }
            guard let firstWord = exchange else {
                throw BenchmarkFailure("127.0.0.1:\(port)\(path) closed the connection without answering")
            }
            if index >= warmUp { samples.append(BenchmarkSupport.seconds(firstWord) * 1000) }
        }
        return samples
    }

    /// One request and its whole answer: the time to the first word; nil when the connection
    /// was closed before any byte came back.
    private mutating func exchange(_ request: [UInt8], marker: [UInt8]) throws -> Duration? {
        if connection < 0 { try open() }
        let started = ContinuousClock.now
        guard request.withUnsafeBytes({ send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return nil }
        var received: [UInt8] = []
        var firstWord: Duration?
        var buffer = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        var closed = false
        while true {
            let got = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if got <= 0 {
                closed = true
                break
            }
            received += buffer[0..<got]
            if headerEnd == nil, let end = received.firstRange(of: Array("\r\n\r\n".utf8)) { headerEnd = end.upperBound }
            if let headerEnd, firstWord == nil, received[headerEnd...].firstRange(of: marker) != nil { firstWord = ContinuousClock.now - started }
            // A chunked body ends with a zero-length chunk.
            if let headerEnd, received.count >= headerEnd + 5,
               received.suffix(7).elementsEqual(Array("\r\n0\r\n\r\n".utf8)) || received.count == headerEnd + 5 && received.suffix(5).elementsEqual(Array("0\r\n\r\n".utf8)) { break }
        }
        if received.isEmpty { return nil }
        guard let firstWord else {
            throw BenchmarkFailure("a streamed answer from 127.0.0.1:\(port)\(path) had no text: \(String(decoding: received.prefix(600), as: UTF8.self))")
        }
        let head = String(decoding: received.prefix(headerEnd ?? 0), as: UTF8.self).lowercased()
        if closed || head.contains("connection: close") { disconnect() }
        return firstWord
    }

    private mutating func open() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else {
            _ = Glibc.close(fd)
            throw BenchmarkFailure("could not connect to 127.0.0.1:\(port)")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        connection = fd
    }

    /// Closes the connection (the next request opens a new one).
    mutating func disconnect() {
        if connection >= 0 { _ = Glibc.close(connection) }
        connection = -1
    }
}
