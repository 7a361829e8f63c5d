import CoreMetrics
import Foundation
import KBProto
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The RPC server: accepts connections, reads frames, dispatches each request to its handler
/// concurrently (bounded per connection) and writes the responses as they finish, in any order.
///
/// Bad input never takes it down: a broken frame ends only its own connection (after an error
/// envelope with id 0), and a bad request gets an error status on a connection that goes on.
public final class RPCServer: Service, Sendable {
    /// How the server listens and what it tolerates. Every field has a default fit for production.
    public struct Configuration: Sendable {
        /// The address to bind; loopback unless told otherwise.
        public var host: String = "127.0.0.1"
        /// The port to bind; 0 picks a free one (see `localAddress`).
        public var port: Int = 0
        /// The largest frame body accepted, in bytes (16 MiB).
        public var maxFrameLength: Int = Frame.defaultMaxLength
        /// Requests handled at once on one connection; further frames wait unread (backpressure).
        public var maxConcurrentRequestsPerConnection: Int = 64
        /// Connections served at once; more are closed on arrival.
        public var maxConnections: Int = 4096
        /// A connection silent this long with nothing in flight is closed.
        public var idleTimeout: Duration = .seconds(300)
        /// The deadline of a request that names none.
        public var defaultDeadline: Duration = .seconds(30)
        /// When set, every request but health checks must carry `authorization: Bearer <token>`.
        public var authToken: String?
        /// How long shutdown waits for in-flight requests before closing connections anyway.
        public var shutdownGracePeriod: Duration = .seconds(10)
        /// The listen backlog.
        public var backlog: Int32 = 4096

        /// The defaults.
        public init() {}
    }

    /// The methods that need no token.
    public static let unauthenticatedMethods: Set<String> = [HealthMethods.check.name]

    private let configuration: Configuration
    private let router: RPCRouter
    private let logger: Logger
    private let metrics: RPCServerMetrics
    private let group: any EventLoopGroup
    private let bound: EventLoopPromise<SocketAddress>
    /// The open connections, and whoever waits for there to be none.
    private struct Connections {
        var open: [ObjectIdentifier: (state: ConnectionState, task: Task<Void, Never>)] = [:]
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let connections = Mutex(Connections())
    private let listener = Mutex<(any Channel)?>(nil)
    private let shuttingDown = Atomic<Bool>(false)

    /// Creates a server; it binds when `run()` starts.
    public init(
        configuration: Configuration,
        router: RPCRouter,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.metrics = RPCServerMetrics(factory: metricsFactory)
        self.group = eventLoopGroup
        self.bound = eventLoopGroup.any().makePromise(of: SocketAddress.self)
    }

    /// The address the server listens on, once bound (waits for `run()` to bind; throws if binding failed).
    public var localAddress: SocketAddress {
        get async throws { try await bound.futureResult.get() }
    }

    /// Binds and serves until graceful shutdown or cancellation.
    ///
    /// Graceful shutdown (SIGTERM via swift-service-lifecycle, or `beginShutdown()`) stops
    /// accepting, lets in-flight requests finish for at most the grace period, then closes every
    /// connection. Cancellation stops at once: connections close and handlers are cancelled.
    public func run() async throws {
        let channel: any Channel
        do {
            channel = try await bind()
        } catch {
            bound.fail(error)
            throw error
        }
        listener.withLock { $0 = channel }
        bound.succeed(channel.localAddress!)
        logger.info("rpc server listening", metadata: ["address": "\(channel.localAddress!)", "methods": "\(router.methods.count)"])
        if shuttingDown.load(ordering: .acquiring) { channel.close(promise: nil) }

        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                try? await channel.closeFuture.get()
                self.drainConnections()
                let grace = self.group.any().scheduleTask(in: .nanoseconds(RPCClient.nanoseconds(self.configuration.shutdownGracePeriod))) {
                    self.logger.warning("shutdown grace period over: closing connections with requests in flight")
                    self.stopNow()
                }
                await self.connectionsClosed()
                grace.cancel()
            } onCancel: {
                self.stopNow()
            }
        } onGracefulShutdown: {
            self.beginShutdown()
        }
        logger.info("rpc server stopped")
    }

    /// Stops accepting connections; `run()` then drains and returns.
    public func beginShutdown() {
        shuttingDown.store(true, ordering: .releasing)
        listener.withLock { $0 }?.close(promise: nil)
    }

    /// Stops accepting, closes every connection and cancels every handler.
    private func stopNow() {
        beginShutdown()
        for (state, task) in connections.withLock({ Array($0.open.values) }) {
            task.cancel()
            state.channel.close(promise: nil)
        }
    }

    private func bind() async throws -> any Channel {
        let configuration = configuration
        let metrics = metrics, logger = logger
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    let state = ConnectionState(channel: channel, maxInFlight: configuration.maxConcurrentRequestsPerConnection)
                    try sync.addHandler(IdleStateHandler(readTimeout: .nanoseconds(RPCClient.nanoseconds(configuration.idleTimeout))))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameLength: configuration.maxFrameLength)))
                    try sync.addHandler(ConnectionGuard(connection: state) { error in
                        metrics.recordMalformedFrame(reason: error.reason)
                        logger.warning("closing connection: \(error.message)", metadata: ["peer": "\(channel.remoteAddress?.description ?? "unknown")", "reason": "\(error.reason)"])
                    })
                    let connection = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(backPressureStrategy: .init(lowWatermark: 4, highWatermark: 32))
                    )
                    self.start(connection, state: state)
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
    }

    // MARK: Connections

    /// Hands a new connection to a task of its own, tracked so shutdown can wait for it or stop it.
    /// Every connection is served by `executeThenClose`, even one refused for the limit.
    private func start(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, state: ConnectionState) {
        let key = ObjectIdentifier(connection.channel)
        connections.withLock { connections in
            guard connections.open.count < configuration.maxConnections else {
                Task { await self.refuse(connection) }
                return
            }
            let task = Task {
                await self.serve(connection, state: state)
                let waiters = self.connections.withLock { connections in
                    connections.open.removeValue(forKey: key)
                    guard connections.open.isEmpty else { return [CheckedContinuation<Void, Never>]() }
                    defer { connections.waiters = [] }
                    return connections.waiters
                }
                for waiter in waiters { waiter.resume() }
            }
            connections.open[key] = (state, task)
        }
    }

    /// Returns once no connection is open.
    private func connectionsClosed() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let none = connections.withLock { connections in
                if connections.open.isEmpty { return true }
                connections.waiters.append(continuation)
                return false
            }
            if none { continuation.resume() }
        }
    }

    private func refuse(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        metrics.connectionsRejected.increment()
        logger.warning("connection refused: too many connections", metadata: ["peer": "\(connection.channel.remoteAddress?.description ?? "unknown")", "limit": "\(configuration.maxConnections)"])
        let error = RPCError(.resourceExhausted, "server has reached its limit of \(configuration.maxConnections) connections")
        try? await connection.executeThenClose { _, outbound in
            try await outbound.write(errorFrame(error, allocator: connection.channel.allocator))
        }
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, state: ConnectionState) async {
        let channel = connection.channel
        let peer = channel.remoteAddress?.description ?? "unknown"
        metrics.connectionsTotal.increment()
        metrics.connectionsActive.increment(by: 1)
        defer { metrics.connectionsActive.decrement(by: 1) }
        if shuttingDown.load(ordering: .acquiring) { state.drain() }

        var connectionLogger = logger
        connectionLogger[metadataKey: "peer"] = "\(peer)"
        let log = connectionLogger
        do {
            try await connection.executeThenClose { inbound, outbound in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await frame in inbound {
                            await state.acquire()
                            let draining = state.isDraining
                            group.addTask {
                                let response = await self.respond(to: frame, peer: peer, draining: draining, logger: log, eventLoop: channel.eventLoop)
                                if let bytes = try? Frame.encode(response, allocator: channel.allocator) {
                                    try? await outbound.write(bytes)
                                }
                                state.release()
                            }
                        }
                    } catch let error as Frame.Error {
                        // Counted and logged by ConnectionGuard; tell the peer why, then close.
                        try? await outbound.write(self.errorFrame(error.rpcError, allocator: channel.allocator))
                    } catch {
                        log.debug("connection ended: \(error)")
                    }
                }
            }
        } catch {
            log.debug("connection closed with error: \(error)")
        }
    }

    private func errorFrame(_ error: RPCError, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var envelope = Kb_Rpc_V1_Envelope()
        envelope.id = 0
        envelope.status = error.status
        return try Frame.encode(envelope, allocator: allocator)
    }

    private func drainConnections() {
        for (state, _) in connections.withLock({ Array($0.open.values) }) { state.drain() }
    }

    // MARK: Requests

    /// Turns one frame into its response envelope. Never throws: every failure is a status.
    private func respond(to frame: ByteBuffer, peer: String, draining: Bool, logger: Logger, eventLoop: any EventLoop) async -> Kb_Rpc_V1_Envelope {
        let start = ContinuousClock.now
        var response = Kb_Rpc_V1_Envelope()
        let request: Kb_Rpc_V1_Envelope
        do {
            request = try Frame.decodeEnvelope(frame)
        } catch {
            metrics.recordMalformedFrame(reason: "bad_envelope")
            logger.warning("frame is not a kb.rpc.v1.Envelope: \(error)")
            response.status = RPCError(.invalidArgument, "frame is not a kb.rpc.v1.Envelope: \(error)").status
            return response
        }
        response.id = request.id
        let handler = router.handlers[request.method]
        let label = handler == nil ? "unknown" : request.method
        let outcome: Result<[UInt8], RPCError>
        if let refusal = admissionError(for: request, draining: draining, served: handler != nil) {
            outcome = .failure(refusal)
        } else {
            let timeout = request.deadlineMs > 0 ? Duration.milliseconds(Int64(clamping: request.deadlineMs)) : configuration.defaultDeadline
            var requestLogger = logger
            requestLogger[metadataKey: "method"] = "\(request.method)"
            requestLogger[metadataKey: "request-id"] = "\(request.id)"
            if let trace = request.metadata["trace-id"] { requestLogger[metadataKey: "trace-id"] = "\(trace)" }
            let context = RPCContext(method: request.method, metadata: request.metadata, deadline: start + timeout, peer: peer, logger: requestLogger)
            outcome = await Self.run(handler!, payload: request.payload, context: context, timeout: timeout, eventLoop: eventLoop)
        }
        switch outcome {
        case .success(let payload):
            response.payload = Data(payload)
        case .failure(let error):
            response.status = error.status
            if error.code == .internal || error.code == .unknown {
                logger.error("request failed", metadata: ["method": "\(request.method)", "error": "\(error)"])
            } else {
                logger.debug("request refused", metadata: ["method": "\(request.method)", "error": "\(error)"])
            }
        }
        let elapsed = ContinuousClock.now - start
        let nanos = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        metrics.record(method: label, code: RPCError(status: response.status)?.code ?? .ok, nanoseconds: nanos)
        return response
    }

    /// Why a request is refused before its handler runs, if it is.
    private func admissionError(for request: Kb_Rpc_V1_Envelope, draining: Bool, served: Bool) -> RPCError? {
        if request.method.isEmpty {
            return RPCError(.invalidArgument, "envelope has no method")
        }
        if let token = configuration.authToken, !Self.unauthenticatedMethods.contains(request.method) {
            guard let presented = request.metadata["authorization"] else {
                return RPCError(.unauthenticated, "missing authorization metadata: send 'authorization: Bearer <KB_AUTH_TOKEN>'")
            }
            guard Self.constantTimeEquals(presented, "Bearer \(token)") else {
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

    /// Runs a handler under its deadline. At the deadline the caller gets `DEADLINE_EXCEEDED` at
    /// once and the handler is cancelled, whether or not it notices.
    private static func run(
        _ handler: @escaping RPCRouter.ErasedHandler,
        payload: Data,
        context: RPCContext,
        timeout: Duration,
        eventLoop: any EventLoop
    ) async -> Result<[UInt8], RPCError> {
        let outcome = OneShot<Result<[UInt8], RPCError>>()
        let handlerTask = Mutex<Task<Void, Never>?>(nil)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                outcome.set(continuation)
                let task = Task {
                    let result: Result<[UInt8], RPCError>
                    do {
                        result = .success(try await handler(payload, context))
                    } catch let error as RPCError {
                        result = .failure(error)
                    } catch is CancellationError {
                        result = .failure(RPCError(.cancelled, "request cancelled"))
                    } catch {
                        context.logger.error("handler failed: \(error)")
                        result = .failure(RPCError(.internal, "internal error in \(context.method)"))
                    }
                    outcome.complete(result)
                }
                handlerTask.withLock { $0 = task }
                let timer = eventLoop.scheduleTask(in: .nanoseconds(RPCClient.nanoseconds(timeout))) {
                    if outcome.complete(.failure(RPCError(.deadlineExceeded, "deadline of \(timeout) exceeded"))) {
                        task.cancel()
                    }
                }
                outcome.onComplete { timer.cancel() }
            }
        } onCancel: {
            // The server itself is being torn down (not a graceful drain): stop the handler too.
            outcome.complete(.failure(RPCError(.cancelled, "server is stopping")))
            handlerTask.withLock { $0 }?.cancel()
        }
    }

    private static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<min(x.count, y.count) { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}

/// A result delivered once to one waiting continuation, whichever of several racers comes first.
/// The value may arrive before the continuation does (a racer can finish first); it is kept.
final class OneShot<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Value, Never>?
        var value: Value?
        var done = false
        var onComplete: (@Sendable () -> Void)?
    }
    private let state = Mutex(State())

    /// Sets the continuation to resume; resumes it at once if the value is already there.
    func set(_ continuation: CheckedContinuation<Value, Never>) {
        let early = state.withLock { state -> Value? in
            if let value = state.value {
                state.value = nil
                return value
            }
            state.continuation = continuation
            return nil
        }
        if let early { continuation.resume(returning: early) }
    }

    /// Registers an action to run after completion (at once if already complete).
    func onComplete(_ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.done { return true }
            state.onComplete = action
            return false
        }
        if runNow { action() }
    }

    /// Delivers the value if nobody did before; returns whether this call delivered it.
    @discardableResult
    func complete(_ value: Value) -> Bool {
        let outcome = state.withLock { state -> (delivered: Bool, CheckedContinuation<Value, Never>?, (@Sendable () -> Void)?) in
            guard !state.done else { return (false, nil, nil) }
            state.done = true
            defer { state.continuation = nil; state.onComplete = nil }
            if state.continuation == nil { state.value = value }
            return (true, state.continuation, state.onComplete)
        }
        outcome.1?.resume(returning: value)
        outcome.2?()
        return outcome.delivered
    }
}
