import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A loopback HTTP/1.1 server whose paths misbehave on purpose, written on raw NIO so every byte
/// (and every reset) is under the test's control:
/// `/ok` (keep-alive), `/echo` (method, headers and body back), `/status/N` (that status, with
/// `retry-after` on 429), `/hang` (never answers), `/drip` (a byte a second), `/reset` (ten bytes
/// of a 1,000-byte body, then a TCP reset), `/big` (4 MiB), `/sse` and `/ndjson` (chunked streams
/// held at a gate until the test opens it).
final class ScriptedHTTPServer: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let channel: Channel
    let stats = NIOLockedValueBox(Stats())
    let gate: EventLoopPromise<Void>

    struct Stats {
        var accepted = 0
        var closed = 0
        var requests: [String] = []
    }

    var port: Int { channel.localAddress!.port! }
    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    init() throws {
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
    func openGate() { gate.succeed() }

    func stop() {
        gate.succeed()
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// Waits (at most `seconds`) until `condition` holds for the server's counters.
    func wait(seconds: Double = 10, until condition: (Stats) -> Bool) async -> Bool {
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
            stats.withLockedValue { $0.requests.append("\(request.method) \(request.path)") }
            answer(request, context: context)
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
