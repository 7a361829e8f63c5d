import Foundation
import KBProto
import Logging
import NIOCore
import NIOPosix
import SwiftProtobuf

/// One server connection, served on its channel's event loop: decodes each frame's envelope,
/// checks its method, token and deadline there, and dispatches it where its handler runs (inline,
/// on the blocking pool, or on a task). Responses written while a read burst is being handled
/// are flushed once at its end; responses that finish later are flushed once per loop tick.
///
/// Backpressure: at most `maxConcurrentRequestsPerConnection` requests run at once; frames beyond
/// that wait in a small backlog and the socket is not read again (autoRead's `read` is held back)
/// until a slot frees. A request past its deadline is answered `DEADLINE_EXCEEDED` at once and
/// its work cancelled; it keeps its slot until the work has really stopped.
final class RPCServerHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What every connection of one server shares.
    struct Environment: Sendable {
        let handlers: [String: RPCRouter.ErasedHandler]
        let configuration: RPCServer.Configuration
        let metrics: RPCServerMetrics
        let logger: Logger
        let registry: RPCServer.ConnectionRegistry
    }

    /// A request that runs off the event loop and has not been answered yet.
    private struct Pending {
        let id: UInt64
        let label: String
        let started: NIODeadline
        let deadline: NIODeadline
        let cancellation: RPCCancellation
        var task: Task<Void, Never>?
        /// Cancel the task when the server starts shutting down (a long poll).
        var endsAtShutdown = false
    }

    private let environment: Environment
    private var context: ChannelHandlerContext?
    private var peer = "unknown"
    private var logger: Logger

    /// Requests whose work has not ended (answered or not): the backpressure count.
    private var running = 0
    /// Requests running off the loop and not yet answered, by a key of ours (ids are the client's).
    private var pending: [UInt64: Pending] = [:]
    private var nextKey: UInt64 = 0
    /// Frames read while every slot was taken.
    private var backlog = CircularBuffer<ByteBuffer>()
    /// Whether the pipeline asked to read while we were full.
    private var readHeldBack = false
    /// Inside a read burst (between the first `channelRead` and `channelReadComplete`).
    private var inReadBurst = false
    private var needsFlush = false
    private var flushScheduled = false
    /// The one timer that answers overdue requests, armed for the earliest deadline.
    private var deadlineTimer = DeadlineTimer()
    /// Set by shutdown: new requests get UNAVAILABLE; the connection closes once idle.
    private var draining = false
    /// The client closed its side, or the stream broke: answer what was received, then close.
    private var inputEnded = false
    /// Why the connection ends, told to the peer (an envelope with id 0) after the last answer.
    private var connectionError: RPCError?
    private var closing = false
    /// Time reading was held back, which the frame arrival deadline does not count.
    private let pauses: ReadPauses
    private var registered = false

    init(environment: Environment, pauses: ReadPauses) {
        self.environment = environment
        self.pauses = pauses
        self.logger = environment.logger
    }

    // MARK: Connection lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        peer = context.channel.remoteAddress?.description ?? "unknown"
        logger[metadataKey: "peer"] = "\(peer)"
        let metrics = environment.metrics
        let configuration = environment.configuration
        if let refusal = environment.registry.open(
            context.channel, handler: NIOLoopBound(self, eventLoop: context.eventLoop),
            limit: configuration.maxConnections, perAddressLimit: configuration.maxConnectionsPerAddress
        ) {
            metrics.connectionsRejected.increment()
            let message = switch refusal {
            case .tableFull: "server has reached its limit of \(configuration.maxConnections) connections"
            case .addressFull: "server has reached its limit of \(configuration.maxConnectionsPerAddress) connections from one address"
            }
            logger.warning("connection refused: \(message)")
            sendConnectionError(RPCError(.resourceExhausted, message), context: context)
            context.fireChannelActive()
            return
        }
        registered = true
        metrics.connectionsTotal.increment()
        metrics.connectionsActive.increment(by: 1)
        if environment.registry.isDraining { draining = true }
        context.fireChannelActive()
        closeIfDone(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelAll()
        deadlineTimer.cancel()
        backlog.removeAll()
        if registered {
            registered = false
            environment.metrics.connectionsActive.decrement(by: 1)
            environment.registry.closed(context.channel)
        }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if running == 0 && backlog.isEmpty { context.close(promise: nil) }
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputEnded = true
            closeIfDone(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let frameError = error as? Frame.Error {
            environment.metrics.recordMalformedFrame(reason: frameError.reason)
            logger.warning("closing connection: \(frameError.message)", metadata: ["reason": "\(frameError.reason)"])
            sendConnectionError(frameError.rpcError, context: context)
            return
        }
        if inputEnded { return }  // already ending; reading has stopped
        logger.debug("connection failed: \(error)")
        context.close(promise: nil)
    }

    /// Stops reading, answers every request already received (running or waiting), then tells
    /// the peer why the connection ends (an envelope with id 0) and closes.
    private func sendConnectionError(_ error: RPCError, context: ChannelHandlerContext) {
        if connectionError == nil { connectionError = error }
        inputEnded = true
        closeIfDone(context: context)
    }

    /// Closes once nothing is left to answer, if the connection is ending.
    private func closeIfDone(context: ChannelHandlerContext) {
        guard (draining || inputEnded), running == 0, backlog.isEmpty, !closing else { return }
        closing = true
        if let connectionError {
            var envelope = Kb_Rpc_V1_Envelope()
            envelope.status = connectionError.status
            if let frame = try? Frame.encode(envelope, allocator: context.channel.allocator) {
                context.write(wrapOutboundOut(frame), promise: nil)
            }
        }
        // Written in order: the empty write completes after every response before it.
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: done)
        done.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    // MARK: Shutdown (called on the event loop by the server)

    /// Starts draining: new requests get UNAVAILABLE; closes once what runs has been answered.
    func drain() {
        draining = true
        for request in pending.values where request.endsAtShutdown { request.task?.cancel() }
        if let context { closeIfDone(context: context) }
    }

    /// Cancels every request and closes now.
    func stopNow() {
        cancelAll()
        context?.close(promise: nil)
    }

    private func cancelAll() {
        for request in pending.values {
            request.cancellation.cancel()
            request.task?.cancel()
        }
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inReadBurst = true
        let frame = unwrapInboundIn(data)
        if closing { return }
        if running >= environment.configuration.maxConcurrentRequestsPerConnection || !backlog.isEmpty {
            backlog.append(frame)
            return
        }
        serve(frame, context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBurst = false
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if inputEnded { return }  // the stream is over (EOF or a broken frame): never read again
        if running >= environment.configuration.maxConcurrentRequestsPerConnection || !backlog.isEmpty {
            if !readHeldBack { pauses.pause(at: .now()) }
            readHeldBack = true
        } else {
            context.read()
        }
    }

    /// A slot freed: serve waiting frames, then read again if there is room.
    private func slotFreed(context: ChannelHandlerContext) {
        let limit = environment.configuration.maxConcurrentRequestsPerConnection
        while running < limit, let frame = backlog.popFirst() {
            serve(frame, context: context)
        }
        if readHeldBack && running < limit && backlog.isEmpty {
            readHeldBack = false
            pauses.resume(at: .now())
            if !inputEnded { context.read() }
        }
        closeIfDone(context: context)
    }

    // MARK: Requests

    /// Serves one frame: decodes it, checks it, and runs or dispatches its handler. Every
    /// failure becomes a status on the response.
    private func serve(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        let started = NIODeadline.now()
        let request: Kb_Rpc_V1_Envelope
        do {
            request = try Frame.decodeEnvelope(frame)
        } catch {
            environment.metrics.recordMalformedFrame(reason: "bad_envelope")
            logger.warning("frame is not a kb.rpc.v1.Envelope: \(error)")
            answer(id: 0, label: "unknown", started: started, .failure(RPCError(.invalidArgument, "frame is not a kb.rpc.v1.Envelope: \(error)")), context: context)
            return
        }
        let handler = environment.handlers[request.method]
        let label = handler == nil ? "unknown" : request.method
        if let refusal = admissionError(for: request, served: handler != nil) {
            logger.debug("request refused", metadata: ["method": .string(label), "error": "\(refusal)"])
            answer(id: request.id, label: label, started: started, .failure(refusal), context: context)
            return
        }
        let timeout = request.deadlineMs > 0
            ? TimeAmount.milliseconds(Int64(min(request.deadlineMs, Self.longestDeadlineMs)))
            : environment.configuration.defaultDeadline.timeAmount
        let deadline = started + timeout
        var requestLogger = logger
        if let trace = request.metadata["trace-id"] { requestLogger[metadataKey: "trace-id"] = .string(trace) }
        let cancellation = RPCCancellation()
        let rpcContext = RPCContext(
            method: request.method, metadata: request.metadata,
            deadline: .now + .nanoseconds(timeout.nanoseconds),
            peer: peer, logger: requestLogger, cancellation: cancellation
        )
        let payload = request.payload

        switch handler! {
        case .sync(.eventLoop, let body):
            answer(id: request.id, label: label, started: started, Result { try body(payload, rpcContext) }, context: context)

        case .sync(.threadPool, let body):
            let key = admit(Pending(id: request.id, label: label, started: started, deadline: deadline, cancellation: cancellation), context: context)
            environment.configuration.blockingPool
                .runIfActive(eventLoop: context.eventLoop) {
                    try rpcContext.checkCancellation()
                    return try body(payload, rpcContext)
                }
                .assumeIsolated()
                .whenComplete { result in self.finished(key, result, context: context) }

        case .task(let body, let endsAtShutdown):
            let key = admit(Pending(id: request.id, label: label, started: started, deadline: deadline, cancellation: cancellation, endsAtShutdown: endsAtShutdown), context: context)
            let loop = context.eventLoop
            let this = NIOLoopBound((self, context), eventLoop: loop)
            pending[key]?.task = Task {
                let result: Result<[UInt8], any Error>
                do { result = .success(try await body(payload, rpcContext)) } catch { result = .failure(error) }
                if loop.inEventLoop {
                    this.value.0.finished(key, result, context: this.value.1)
                } else {
                    loop.execute { this.value.0.finished(key, result, context: this.value.1) }
                }
            }
        }
    }

    /// A request longer than this (ten years) is kept to it, so the arithmetic cannot overflow.
    private static let longestDeadlineMs: UInt64 = 10 * 365 * 24 * 3600 * 1000

    /// Takes a slot for a request that runs off the loop and arms the deadline timer for it.
    private func admit(_ request: Pending, context: ChannelHandlerContext) -> UInt64 {
        nextKey &+= 1
        running += 1
        pending[nextKey] = request
        coverDeadline(request.deadline, context: context)
        return nextKey
    }

    /// The work of request `key` ended: answer it unless its deadline did, free its slot.
    private func finished(_ key: UInt64, _ result: Result<[UInt8], any Error>, context: ChannelHandlerContext) {
        running -= 1
        if let request = pending.removeValue(forKey: key) {
            answer(id: request.id, label: request.label, started: request.started, result, context: context)
        }
        slotFreed(context: context)
    }

    /// Writes the response of a request, counts it, and flushes at the end of the read burst or
    /// of this loop tick.
    private func answer(id: UInt64, label: String, started: NIODeadline, _ result: Result<[UInt8], any Error>, context: ChannelHandlerContext) {
        var response = Kb_Rpc_V1_Envelope()
        response.id = id
        var code: RPCError.Code
        switch result {
        case .success(let bytes):
            response.payload = Data(bytes)
            code = .ok
        case .failure(let error):
            let failure = status(of: error, label: label)
            response.status = failure.status
            code = failure.code
        }
        var frame = try? Frame.encode(response, allocator: context.channel.allocator)
        let limit = environment.configuration.maxFrameLength
        if frame == nil || frame!.readableBytes - Frame.headerLength > limit {
            // An answer the client could not read (or that does not encode) is refused whole,
            // with the request's id, rather than dropped or sent to break the connection.
            let size = frame.map { "\($0.readableBytes - Frame.headerLength) bytes" } ?? "an answer that does not encode"
            logger.warning("answer over the frame limit", metadata: ["method": .string(label), "size": "\(size)"])
            var refusal = Kb_Rpc_V1_Envelope()
            refusal.id = id
            refusal.status = RPCError(.resourceExhausted, "the answer (\(size)) exceeds the frame limit of \(limit) bytes: ask for less (a smaller limit or page)").status
            frame = try? Frame.encode(refusal, allocator: context.channel.allocator)
            code = .resourceExhausted
        }
        environment.metrics.record(method: label, code: code, nanoseconds: (NIODeadline.now() - started).nanoseconds)
        guard let frame else { return }
        write(frame, context: context)
    }

    private func write(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(frame), promise: nil)
        if inReadBurst {
            needsFlush = true
        } else if !flushScheduled {
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute {
                self.flushScheduled = false
                context.flush()
            }
        }
    }

    /// The status a handler's failure is answered with: an `RPCError` as it is, cancellation as
    /// `CANCELLED`, anything else as `INTERNAL` (logged here, so internals do not leak).
    private func status(of error: any Error, label: String) -> RPCError {
        switch error {
        case let error as RPCError:
            return error
        case is CancellationError:
            return RPCError(.cancelled, "request cancelled")
        case is NIOThreadPoolError.ThreadPoolInactive:
            return RPCError(.unavailable, "server is shutting down")
        default:
            logger.error("handler failed", metadata: ["method": .string(label), "error": "\(error)"])
            return RPCError(.internal, "internal error in \(label)")
        }
    }

    // MARK: Deadlines

    private func coverDeadline(_ deadline: NIODeadline, context: ChannelHandlerContext) {
        deadlineTimer.cover(deadline, on: context.eventLoop) { self.expireDeadlines(context: context) }
    }

    /// Answers `DEADLINE_EXCEEDED` for every request past its deadline and cancels its work;
    /// covers the next deadline.
    private func expireDeadlines(context: ChannelHandlerContext) {
        deadlineTimer.fired()
        let now = NIODeadline.now()
        let (overdue, next) = DeadlineTimer.overdue(pending, at: now) { $0.deadline }
        for key in overdue {
            guard let request = pending.removeValue(forKey: key) else { continue }
            request.cancellation.cancel()
            request.task?.cancel()
            let late = now - request.started
            answer(id: request.id, label: request.label, started: request.started,
                   .failure(RPCError(.deadlineExceeded, "deadline exceeded after \(late.nanoseconds / 1_000_000) ms")), context: context)
        }
        if let next { coverDeadline(next, context: context) }
    }

    // MARK: Admission

    /// Why a request is refused before its handler runs, if it is.
    private func admissionError(for request: Kb_Rpc_V1_Envelope, served: Bool) -> RPCError? {
        if request.method.isEmpty {
            return RPCError(.invalidArgument, "envelope has no method")
        }
        if let token = environment.configuration.authToken, !RPCServer.unauthenticatedMethods.contains(request.method) {
            guard let presented = request.metadata["authorization"] else {
                return RPCError(.unauthenticated, "missing authorization metadata: send 'authorization: Bearer <KB_AUTH_TOKEN>'")
            }
            guard BearerToken.matches(presented, token: token) else {
                return RPCError(.unauthenticated, "invalid token")
            }
        }
        if !served {
            return RPCError(.unimplemented, "unknown method '\(request.method)'")
        }
        if draining {
            return RPCError(.unavailable, "server is shutting down")
        }
        return nil
    }
}

/// How long reading was held back on one connection (backpressure), so the frame arrival
/// deadline does not count time the server itself refused to read. Confined to the
/// connection's event loop, shared by its `FrameDecoder` and `RPCServerHandler`.
public final class ReadPauses {
    private var total: TimeAmount = .zero
    private var since: NIODeadline?

    /// No pause yet.
    public init() {}

    /// Reading stops at `now`.
    func pause(at now: NIODeadline) {
        if since == nil { since = now }
    }

    /// Reading resumes at `now`.
    func resume(at now: NIODeadline) {
        if let since {
            total = total + (now - since)
            self.since = nil
        }
    }

    /// The time reading has been held back in all, up to `now`.
    func paused(upTo now: NIODeadline) -> TimeAmount {
        total + (since.map { now - $0 } ?? .zero)
    }
}
