import CoreMetrics
import Foundation
import KBProto
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwiftProtobuf
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

        let sweeper = group.any().scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10)) { _ in
            self.expireDeadlines()
        }
        defer { sweeper.cancel() }

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
            state.cancelAll()
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
        try? await connection.executeThenClose { _, _ in
            try await self.writeBeforeClosing(errorFrame(error, allocator: connection.channel.allocator), on: connection.channel)
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
                state.setWriter(outbound)
                do {
                    for try await frame in inbound {
                        let (key, claim) = await state.acquire()
                        let draining = state.isDraining
                        let task = Task {
                            await self.handle(frame, key: key, claim: claim, connection: state, peer: peer, draining: draining, logger: log)
                            state.finish(key)
                        }
                        state.attach(task, to: key)
                    }
                } catch let error as Frame.Error {
                    // Counted and logged by ConnectionGuard; tell the peer why, then close.
                    if let frame = try? self.errorFrame(error.rpcError, allocator: channel.allocator) {
                        try? await self.writeBeforeClosing(frame, on: channel)
                    }
                } catch {
                    log.debug("connection ended: \(error)")
                }
                await state.waitUntilIdle()
            }
        } catch {
            log.debug("connection closed with error: \(error)")
        }
    }

    /// Writes a last frame and waits until it has reached the socket: a write through the
    /// async writer completes when queued, and closing right after could drop it.
    private func writeBeforeClosing(_ frame: ByteBuffer, on channel: any Channel) async throws {
        try await channel.writeAndFlush(frame)
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

    /// Serves one frame: decodes it, checks it, runs its handler, and writes the response,
    /// unless the deadline sweep answered first. Never throws: every failure is a status.
    private func handle(_ frame: ByteBuffer, key: UInt64, claim: ResponseClaim, connection: ConnectionState, peer: String, draining: Bool, logger: Logger) async {
        let start = ContinuousClock.now
        var response = Kb_Rpc_V1_Envelope()
        var label = "unknown"
        do {
            let request = try Frame.decodeEnvelope(frame)
            response.id = request.id
            let handler = router.handlers[request.method]
            if handler != nil { label = request.method }
            if let refusal = admissionError(for: request, draining: draining, served: handler != nil) {
                throw refusal
            }
            let timeout = request.deadlineMs > 0 ? Duration.milliseconds(Int64(clamping: request.deadlineMs)) : configuration.defaultDeadline
            connection.setDeadline(start + timeout, id: request.id, method: label, for: key)
            var requestLogger = logger
            if let trace = request.metadata["trace-id"] { requestLogger[metadataKey: "trace-id"] = .string(trace) }
            let context = RPCContext(method: request.method, metadata: request.metadata, deadline: start + timeout, peer: peer, logger: requestLogger)
            response.payload = Data(try await handler!(request.payload, context))
        } catch let error as RPCError {
            response.status = error.status
            logger.debug("request refused", metadata: ["method": .string(label), "error": "\(error)"])
        } catch is CancellationError {
            response.status = RPCError(.cancelled, "request cancelled").status
        } catch let error as SwiftProtobuf.BinaryDecodingError {
            metrics.recordMalformedFrame(reason: "bad_envelope")
            logger.warning("frame is not a kb.rpc.v1.Envelope: \(error)")
            response.status = RPCError(.invalidArgument, "frame is not a kb.rpc.v1.Envelope: \(error)").status
        } catch {
            logger.error("handler failed", metadata: ["method": .string(label), "error": "\(error)"])
            response.status = RPCError(.internal, "internal error in \(label)").status
        }
        guard claim.claim() else { return }  // the deadline sweep has answered already
        let code = RPCError(status: response.status)?.code ?? .ok
        metrics.record(method: label, code: code, nanoseconds: RPCClient.nanoseconds(ContinuousClock.now - start))
        if let bytes = try? Frame.encode(response, allocator: connection.channel.allocator) {
            await connection.write(bytes)
        }
    }

    /// Answers `DEADLINE_EXCEEDED` for every request past its deadline and cancels its handler.
    /// Runs every 10 ms on an event loop, so a deadline is kept to within about 10 ms without a
    /// timer per request.
    private func expireDeadlines() {
        let now = ContinuousClock.now
        for (connection, _) in connections.withLock({ Array($0.open.values) }) {
            for request in connection.expire(now: now) {
                var response = Kb_Rpc_V1_Envelope()
                response.id = request.id
                response.status = RPCError(.deadlineExceeded, "deadline exceeded after \(now - request.started)").status
                metrics.record(method: request.method, code: .deadlineExceeded, nanoseconds: RPCClient.nanoseconds(now - request.started))
                guard let bytes = try? Frame.encode(response, allocator: connection.channel.allocator) else { continue }
                Task { await connection.write(bytes) }
            }
        }
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

    private static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<min(x.count, y.count) { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}
