import Foundation
import Hummingbird
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The time and number bounds of an HTTP surface's connections, so slow or silent clients cannot
/// hold file descriptors: Hummingbird 2 has an idle timeout only between requests and a
/// connection bound that stops accepting (clients queue in the kernel), so `HTTPConnectionGuard`
/// does all three.
public struct HTTPConnectionLimits: Sendable {
    /// How long a request's header may take to arrive whole, from the connection's opening (or
    /// the first byte of a later request on it): a client dripping header bytes is closed.
    public var headerTimeout: TimeAmount
    /// How long a connection may stay silent (nothing read, nothing written) unless the server is
    /// still computing an answer to a whole request: a half-sent body or a kept-alive
    /// connection nobody uses is closed.
    public var idleTimeout: TimeAmount
    /// Connections served at once; one more is answered 503 and closed at once.
    public var maxConnections: Int

    /// The limits; the defaults are those of `KB_VKB_HEADER_TIMEOUT_SECONDS`,
    /// `KB_VKB_IDLE_TIMEOUT_SECONDS` and `KB_VKB_MAX_CONNECTIONS`.
    public init(headerTimeout: TimeAmount = .seconds(10), idleTimeout: TimeAmount = .seconds(60), maxConnections: Int = 1024) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }
}

/// Connections open on one HTTP surface, shared by its connections' guards.
public final class HTTPConnectionCount: Sendable {
    private let open = Atomic<Int>(0)

    /// No connection yet.
    public init() {}

    /// The number open now.
    public var current: Int { open.load(ordering: .relaxed) }

    func opened() -> Int { open.add(1, ordering: .relaxed).newValue }
    func closed() { open.subtract(1, ordering: .relaxed) }
}

/// The per-connection handler enforcing `HTTPConnectionLimits`, placed by Hummingbird's channel
/// set-up after the HTTP decoder (it sees whole request heads and the response parts written),
/// with a small companion at the front of the pipeline that notes when raw bytes arrive.
final class HTTPConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let limits: HTTPConnectionLimits
    private let count: HTTPConnectionCount
    private var counted = false
    private var refused = false
    /// Waiting for a request's head (from the opening, or since the last answer ended).
    private var awaitingHead = true
    /// A whole request was read and its answer is not finished: the server is working.
    private var answering = false
    private var headerTimer: Scheduled<Void>?
    private var idleTimer: Scheduled<Void>?
    private var lastActivity = NIODeadline.now()

    init(limits: HTTPConnectionLimits, count: HTTPConnectionCount) {
        self.limits = limits
        self.count = count
    }

    func handlerAdded(context: ChannelHandlerContext) {
        counted = true
        if count.opened() > limits.maxConnections {
            refused = true
            if context.channel.isActive { refuse(context: context) }
            return
        }
        let watcher = ByteArrivalWatcher(guard: self, context: context)
        try? context.pipeline.syncOperations.addHandler(watcher, position: .first)
        armHeaderTimer(context: context)
        armIdleTimer(context: context, at: lastActivity + limits.idleTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
        headerTimer?.cancel()
        idleTimer?.cancel()
    }

    func channelActive(context: ChannelHandlerContext) {
        if refused {
            refuse(context: context)
            return
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        headerTimer?.cancel()
        idleTimer?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        switch unwrapInboundIn(data) {
        case .head:
            awaitingHead = false
            headerTimer?.cancel()
            headerTimer = nil
        case .body:
            break
        case .end:
            answering = true
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastActivity = .now()
        if case .end = unwrapOutboundIn(data) {
            answering = false
            awaitingHead = true
        }
        context.write(data, promise: promise)
    }

    /// Raw bytes arrived (from the companion at the pipeline's front).
    fileprivate func bytesArrived(context: ChannelHandlerContext) {
        lastActivity = .now()
        if awaitingHead, headerTimer == nil { armHeaderTimer(context: context) }
    }

    private func release() {
        if counted {
            counted = false
            count.closed()
        }
    }

    private func armHeaderTimer(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        headerTimer = context.eventLoop.scheduleTask(in: limits.headerTimeout) {
            let (handler, context) = loopBound.value
            handler.headerTimer = nil
            guard handler.awaitingHead else { return }
            context.close(promise: nil)
        }
    }

    private func armIdleTimer(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            let due = handler.lastActivity + handler.limits.idleTimeout
            if handler.answering || due > .now() {
                handler.armIdleTimer(context: context, at: max(due, .now() + .milliseconds(100)))
            } else {
                context.close(promise: nil)
            }
        }
    }

    /// Answers 503 and closes: the connection table is full.
    private func refuse(context: ChannelHandlerContext) {
        let error = APIError(.serviceUnavailable, "too_many_connections", "this server holds its limit of \(limits.maxConnections) connections; retry shortly")
        var head = HTTPResponse(status: error.status)
        head.headerFields[.contentType] = "application/json; charset=utf-8"
        head.headerFields[.connection] = "close"
        head.headerFields[.contentLength] = String(error.body.utf8.count)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(string: error.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.close(promise: nil)
    }

    static func handlers(limits: HTTPConnectionLimits, count: HTTPConnectionCount) -> [any RemovableChannelHandler] {
        [HTTPConnectionGuard(limits: limits, count: count)]
    }
}

/// Tells the connection's guard when raw bytes arrive (before the HTTP decoder), so a header
/// dripped byte by byte starts the header timeout and any byte counts as activity.
private final class ByteArrivalWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let connectionGuard: HTTPConnectionGuard
    private let guardContext: ChannelHandlerContext

    init(guard connectionGuard: HTTPConnectionGuard, context: ChannelHandlerContext) {
        self.connectionGuard = connectionGuard
        self.guardContext = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // The bytes go through the HTTP decoder first: when they hold a whole head (every
        // request of a client that is not dripping), the guard has seen it by the time it hears
        // of them, and no header timer is armed and cancelled for it.
        context.fireChannelRead(data)
        connectionGuard.bytesArrived(context: guardContext)
    }
}
