import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A loopback HTTP/1.1 server whose paths misbehave on purpose, written on raw NIO so every byte
/// (and every reset) is under the test's control:
/// `/ok` (keep-alive), `/echo` (method, headers and body back), `/status/N` (that status, with
/// `retry-after` on 429), `/hang` (never answers), `/drip` (a byte a second), `/reset` (ten bytes
/// of a 1,000-byte body, then a TCP reset), `/big` (4 MiB), `/sse` and `/ndjson` (chunked streams
/// held at a gate until the test opens it) — and any path can be given a canned answer
/// (`answer(_:with:)`), which is how mock LLM providers speak their exact wire formats.
public final class ScriptedHTTPServer: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let channel: Channel
    public let stats = NIOLockedValueBox(Stats())
    let gate: EventLoopPromise<Void>

    /// What the server saw.
    public struct Stats: Sendable {
        public var accepted = 0
        public var closed = 0
        /// `METHOD /path` of each request, in order.
        public var requests: [String] = []
        /// Each request in full, in order.
        public var received: [ReceivedRequest] = []
        /// Canned answers by path (a path without one uses the scripted behaviours).
        var canned: [String: [CannedAnswer]] = [:]
    }

    /// A request as received.
    public struct ReceivedRequest: Sendable {
        public var method: String
        /// The path with its query.
        public var path: String
        public var headers: [(String, String)]
        public var body: [UInt8]

        /// A header's value by case-insensitive name.
        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    /// A canned answer: status, headers, the body in chunks (each written and flushed apart,
    /// chunked transfer encoding when `chunked`), then how the connection ends.
    public struct CannedAnswer: Sendable {
        public enum Ending: Sendable {
            /// The answer is complete.
            case complete
            /// After the chunks, nothing more: the connection stays silent.
            case hang
            /// After the chunks, a TCP reset.
            case reset
        }

        public var status: Int
        public var headers: [(String, String)]
        public var chunks: [[UInt8]]
        public var chunked: Bool
        public var ending: Ending

        public init(status: Int = 200, headers: [(String, String)] = [("Content-Type", "application/json")], body: String, ending: Ending = .complete) {
            self.init(status: status, headers: headers, chunks: [Array(body.utf8)], chunked: false, ending: ending)
        }

        public init(status: Int = 200, headers: [(String, String)], chunks: [[UInt8]], chunked: Bool, ending: Ending = .complete) {
            self.status = status
            self.headers = headers
            self.chunks = chunks
            self.chunked = chunked
            self.ending = ending
        }

        /// A streamed answer (`text/event-stream` or NDJSON), chunked, one write per string.
        public static func stream(_ parts: [String], contentType: String = "text/event-stream", ending: Ending = .complete) -> CannedAnswer {
            CannedAnswer(headers: [("Content-Type", contentType)], chunks: parts.map { Array($0.utf8) }, chunked: true, ending: ending)
        }
    }

    public var port: Int { channel.localAddress!.port! }
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    public func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// Answers requests to `path` (without query) with `answers`, one per request in order; the
    /// last one repeats.
    public func answer(_ path: String, with answers: CannedAnswer...) {
        stats.withLockedValue { $0.canned[path] = answers }
    }

    /// The requests received so far.
    public var received: [ReceivedRequest] { stats.withLockedValue { $0.received } }

    public init() throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        gate = group.next().makePromise()
        let stats = self.stats
        let gateFuture = gate.futureResult
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                stats.withLockedValue { $0.accepted += 1 }
                channel.closeFuture.whenComplete { _ in stats.withLockedValue { $0.closed += 1 } }
                return channel.pipeline.addHandler(ScriptedHandler(stats: stats, gate: gateFuture))
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    /// Lets the held-back parts of `/sse` and `/ndjson` go.
    public func openGate() { gate.succeed() }

    public func stop() {
        gate.succeed()
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// Waits (at most `seconds`) until `condition` holds for the server's counters.
    public func wait(seconds: Double = 10, until condition: (Stats) -> Bool) async -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition(stats.withLockedValue { $0 }) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition(stats.withLockedValue { $0 })
    }
}

private final class ScriptedHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let stats: NIOLockedValueBox<ScriptedHTTPServer.Stats>
    let gate: EventLoopFuture<Void>
    var received: [UInt8] = []

    init(stats: NIOLockedValueBox<ScriptedHTTPServer.Stats>, gate: EventLoopFuture<Void>) {
        self.stats = stats
        self.gate = gate
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received += buffer.readBytes(length: buffer.readableBytes) ?? []
        while let request = takeRequest() {
            let route = String(request.path.split(separator: "?", maxSplits: 1).first ?? "")
            let canned: ScriptedHTTPServer.CannedAnswer? = stats.withLockedValue { stats in
                stats.requests.append("\(request.method) \(request.path)")
                stats.received.append(.init(method: request.method, path: request.path, headers: request.headers, body: request.body))
                guard var answers = stats.canned[route], let first = answers.first else { return nil }
                if answers.count > 1 {
                    answers.removeFirst()
                    stats.canned[route] = answers
                }
                return first
            }
            if let canned {
                play(canned, context: context)
            } else {
                answer(request, context: context)
            }
        }
    }

    struct Request {
        var method: String
        var path: String
        var headers: [(String, String)]
        var body: [UInt8]
    }

    private func takeRequest() -> Request? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = received.firstRange(of: separator) else { return nil }
        let headText = String(decoding: received[..<end.lowerBound], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        let headers = lines.compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let length = headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) } ?? 0
        guard received.count >= end.upperBound + length else { return nil }
        let body = Array(received[end.upperBound..<(end.upperBound + length)])
        received.removeFirst(end.upperBound + length)
        return Request(method: String(requestLine[0]), path: String(requestLine[1]), headers: headers, body: body)
    }

    private func write(_ context: ChannelHandlerContext, _ bytes: [UInt8], flush: Bool = true) {
        let buffer = context.channel.allocator.buffer(bytes: bytes)
        if flush { context.writeAndFlush(wrapOutboundOut(buffer), promise: nil) } else { context.write(wrapOutboundOut(buffer), promise: nil) }
    }

    private func respond(_ context: ChannelHandlerContext, status: Int, headers: [(String, String)] = [], body: [UInt8]) {
        var head = "HTTP/1.1 \(status) Scripted\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        write(context, Array((head + "\r\n").utf8) + body)
    }

    private func play(_ canned: ScriptedHTTPServer.CannedAnswer, context: ChannelHandlerContext) {
        var head = "HTTP/1.1 \(canned.status) Canned\r\n"
        if canned.chunked {
            head += "Transfer-Encoding: chunked\r\n"
        } else {
            head += "Content-Length: \(canned.chunks.reduce(0) { $0 + $1.count } + (canned.ending == .complete ? 0 : 1000))\r\n"
        }
        for (name, value) in canned.headers { head += "\(name): \(value)\r\n" }
        write(context, Array((head + "\r\n").utf8))
        for part in canned.chunks where !part.isEmpty {
            write(context, canned.chunked ? Array((String(part.count, radix: 16) + "\r\n").utf8) + part + Array("\r\n".utf8) : part)
        }
        let channel = context.channel
        switch canned.ending {
        case .complete:
            if canned.chunked { write(context, Array("0\r\n\r\n".utf8)) }
        case .hang:
            break
        case .reset:
            context.eventLoop.scheduleTask(in: .milliseconds(50)) {
                _ = (channel as! SocketOptionProvider).setSoLinger(linger(l_onoff: 1, l_linger: 0)).flatMap { channel.close() }
            }
        }
    }

    private func chunk(_ text: String) -> [UInt8] {
        Array((String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n").utf8)
    }

    private func answer(_ request: Request, context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let channel = context.channel
        switch request.path {
        case "/ok":
            respond(context, status: 200, body: Array("hello".utf8))
        case "/echo":
            var headers = [("X-Method", request.method)]
            for (name, value) in request.headers where name.lowercased().hasPrefix("x-") || name.lowercased() == "authorization" || name.lowercased() == "user-agent" {
                headers.append(("X-Seen-\(name)", value))
            }
            respond(context, status: 200, headers: headers, body: request.body)
        case let path where path.hasPrefix("/status/"):
            let status = Int(path.dropFirst("/status/".count)) ?? 500
            respond(context, status: status, headers: status == 429 ? [("Retry-After", "7")] : [], body: Array(#"{"error":{"message":"scripted"}}"#.utf8))
        case "/hang":
            break
        case "/drip":
            write(context, Array("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".utf8))
            let handler = NIOLoopBound(self, eventLoop: loop)
            let contextBox = NIOLoopBound(context, eventLoop: loop)
            loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { task in
                guard channel.isActive else {
                    task.cancel()
                    return
                }
                handler.value.write(contextBox.value, [UInt8(ascii: "x")])
            }
        case "/reset":
            write(context, Array("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789".utf8))
            loop.scheduleTask(in: .milliseconds(200)) {
                // SO_LINGER 0: close sends a reset, not a FIN.
                _ = (channel as! SocketOptionProvider).setSoLinger(linger(l_onoff: 1, l_linger: 0)).flatMap { channel.close() }
            }
        case "/big":
            respond(context, status: 200, body: [UInt8](repeating: UInt8(ascii: "b"), count: 4 << 20))
        case "/sse":
            write(context, Array("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n".utf8))
            write(context, chunk(": keep-alive comment\n\nevent: message_start\ndata: {\"n\":1}\n\n"))
            let handler = NIOLoopBound(self, eventLoop: loop)
            let contextBox = NIOLoopBound(context, eventLoop: loop)
            gate.hop(to: loop).whenSuccess {
                guard channel.isActive else { return }
                handler.value.write(contextBox.value, handler.value.chunk("data: line one\r\ndata: line two\r\n\r\nid: 7\nevent: message_stop\ndata: {\"n\":3}\n\n") + Array("0\r\n\r\n".utf8))
            }
        case "/ndjson":
            write(context, Array("HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n".utf8))
            write(context, chunk("{\"a\":1}\n{\"a\":"))
            let handler = NIOLoopBound(self, eventLoop: loop)
            let contextBox = NIOLoopBound(context, eventLoop: loop)
            gate.hop(to: loop).whenSuccess {
                guard channel.isActive else { return }
                handler.value.write(contextBox.value, handler.value.chunk("2}\r\n\n{\"a\":3}") + Array("0\r\n\r\n".utf8))
            }
        default:
            respond(context, status: 404, body: Array("no such path".utf8))
        }
    }
}

/// Writes `yaml` as `providers.yaml` (the inference gateway's `KB_INFERENCE_PROVIDERS_FILE`) in
/// `directory`; returns the file.
public func writeProvidersFile(_ yaml: String, in directory: URL = temporaryDirectory("kb-inference")) throws -> URL {
    let file = directory.appendingPathComponent("providers.yaml")
    try yaml.write(to: file, atomically: true, encoding: .utf8)
    return file
}

extension ScriptedHTTPServer {
    /// This server as a providers-file entry `name`: an OpenAI-format local provider serving `mock-1`.
    public func localProvider(_ name: String) -> String {
        "\(name): {api: openai, base_url: \"\(baseURL)/v1\", local: true, models: [mock-1]}"
    }
}
