import NIOCore
import NIOHTTP1
import NIOPosix

/// A fast OpenAI-compatible provider on loopback: `POST …/chat/completions` answered with canned
/// bytes, whole, or (`"stream": true` in the body) as OpenAI's SSE chunks; `GET …/health` and
/// `GET …/models` for readiness probes. HTTP/1.1 keep-alive; every answer is prepared once, so
/// the provider costs little more than NIO's own parsing and writing (the benchmark measures it
/// alone as the floor).
///
/// A streamed answer sends its first chunk at once and the rest `chunkInterval` apart, so a proxy
/// that buffers a stream instead of relaying it shows a first byte as late as the last one.
final class FakeProvider: Sendable {
    /// The words of every answer (five chunks when streamed); the first is what a client waits
    /// for to time the first byte.
    static let words = ["Hello", " from", " the", " fake", " provider."]
    static let model = "fake-model"

    let group: MultiThreadedEventLoopGroup
    let channel: Channel
    /// The port it listens on (127.0.0.1).
    let port: Int

    /// Starts listening on 127.0.0.1 (`port` 0: a free one) with `threads` event loops.
    init(port: Int = 0, threads: Int = NIOCore.System.coreCount, chunkInterval: TimeAmount = .milliseconds(5)) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        let answers = CannedAnswers()
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(FakeProviderHandler(answers: answers, chunkInterval: chunkInterval))
                }
            }
            .bind(host: "127.0.0.1", port: port).wait()
        self.port = channel.localAddress?.port ?? port
    }

    /// Its OpenAI base URL, e.g. `http://127.0.0.1:40123/v1`.
    var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// Every byte the fake sends, prepared once.
struct CannedAnswers: Sendable {
    let whole: ByteBuffer
    let wholeHead: HTTPHeaders
    let streamHead: HTTPHeaders
    /// One SSE event (`data: {...}\n\n`) per word, then the final one (finish_reason), the usage
    /// chunk and `[DONE]`.
    let streamEvents: [ByteBuffer]
    let small: ByteBuffer

    init() {
        let id = "chatcmpl-fake0001"
        let created = 1_781_524_800
        let text = FakeProvider.words.joined()
        let whole = #"{"id":"\#(id)","object":"chat.completion","created":\#(created),"model":"\#(FakeProvider.model)","choices":[{"index":0,"message":{"role":"assistant","content":"\#(text)"},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#
        self.whole = ByteBuffer(string: whole)
        wholeHead = ["content-type": "application/json", "content-length": String(whole.utf8.count)]
        streamHead = ["content-type": "text/event-stream", "cache-control": "no-cache", "transfer-encoding": "chunked"]
        func chunk(_ delta: String, finish: String) -> ByteBuffer {
            ByteBuffer(string: #"data: {"id":"\#(id)","object":"chat.completion.chunk","created":\#(created),"model":"\#(FakeProvider.model)","choices":[{"index":0,"delta":\#(delta),"finish_reason":\#(finish),"logprobs":null}]}"# + "\n\n")
        }
        var events = FakeProvider.words.enumerated().map { index, word in
            chunk(index == 0 ? #"{"role":"assistant","content":"\#(word)"}"# : #"{"content":"\#(word)"}"#, finish: "null")
        }
        events.append(chunk("{}", finish: #""stop""#))
        events.append(ByteBuffer(string: #"data: {"id":"\#(id)","object":"chat.completion.chunk","created":\#(created),"model":"\#(FakeProvider.model)","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"# + "\n\n"))
        events.append(ByteBuffer(string: "data: [DONE]\n\n"))
        streamEvents = events
        small = ByteBuffer(string: #"{"object":"list","data":[{"id":"\#(FakeProvider.model)","object":"model","created":0,"owned_by":"fake"}]}"#)
    }
}

/// One connection of the fake: reads a request, answers it from `CannedAnswers`.
final class FakeProviderHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let answers: CannedAnswers
    private let chunkInterval: TimeAmount
    private var keepAlive = true
    private var isChat = false
    private var streamed = false
    private var body: ByteBuffer?

    init(answers: CannedAnswers, chunkInterval: TimeAmount) {
        self.answers = answers
        self.chunkInterval = chunkInterval
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            isChat = head.method == .POST && head.uri.hasSuffix("/chat/completions")
            body = nil
        case .body(var part):
            if body == nil { body = part } else { body!.writeBuffer(&part) }
        case .end:
            if isChat {
                streamed = body.map(Self.asksForStream) ?? false
                if streamed { answerStreamed(context: context) } else { answer(context: context, status: .ok, headers: answers.wholeHead, body: answers.whole) }
            } else {
                var headers: HTTPHeaders = ["content-type": "application/json"]
                headers.add(name: "content-length", value: String(answers.small.readableBytes))
                answer(context: context, status: .ok, headers: headers, body: answers.small)
            }
        }
    }

    /// Whether a request body says `"stream": true` (spaces allowed around the colon).
    static func asksForStream(_ body: ByteBuffer) -> Bool {
        let bytes = body.readableBytesView
        let key = Array(#""stream""#.utf8)
        var index = bytes.startIndex
        while let found = bytes[index...].firstIndex(of: key[0]) {
            index = bytes.index(after: found)
            guard bytes[found...].starts(with: key) else { continue }
            var cursor = found + key.count
            while cursor < bytes.endIndex, bytes[cursor] == UInt8(ascii: " ") || bytes[cursor] == UInt8(ascii: ":") { cursor += 1 }
            return cursor < bytes.endIndex && bytes[cursor] == UInt8(ascii: "t")
        }
        return false
    }

    private func answer(context: ChannelHandlerContext, status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer) {
        var headers = headers
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func answerStreamed(context: ChannelHandlerContext) {
        var headers = answers.streamHead
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        let events = answers.streamEvents
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(events[0]))), promise: nil)
        let keepAlive = self.keepAlive
        let loop = context.eventLoop
        let boxed = NIOLoopBound(context, eventLoop: loop)
        let handler = NIOLoopBound(self, eventLoop: loop)
        let interval = chunkInterval
        @Sendable func send(_ index: Int) {
            loop.scheduleTask(in: interval) {
                let context = boxed.value
                guard context.channel.isActive else { return }
                // The last word, its finish chunk, the usage chunk and [DONE] go together.
                let last = index >= FakeProvider.words.count - 1
                let upTo = last ? events.count : index + 1
                for event in events[index..<upTo] { context.write(handler.value.wrapOutboundOut(.body(.byteBuffer(event))), promise: nil) }
                if last {
                    let done = context.writeAndFlush(handler.value.wrapOutboundOut(.end(nil)))
                    if !keepAlive {
                        let channel = context.channel
                        done.whenComplete { _ in channel.close(promise: nil) }
                    }
                } else {
                    context.flush()
                    send(index + 1)
                }
            }
        }
        send(1)
    }
}
