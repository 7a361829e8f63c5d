import CoreMetrics
import Foundation
import KBProto
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The RPC server: accepts connections and serves each on its event loop with an
/// `RPCServerHandler` (decode, check, dispatch, answer; see there), in any order.
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
        /// Connections served at once from one client address, so one client cannot take the
        /// whole table (`maxConnections`) and lock every other client out.
        public var maxConnectionsPerAddress: Int = 1024
        /// How long one frame may take to arrive whole, from its first byte: a client dripping a
        /// frame a byte at a time is closed after this, however often it sends.
        public var frameArrivalTimeout: Duration = .seconds(10)
        /// The bytes the whole server holds in large frames that have not fully arrived (frames
        /// over 64 KiB count); a new large frame past it is refused with RESOURCE_EXHAUSTED.
        public var partialFrameBudget: Int = 256 * 1024 * 1024
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
        /// Where handlers registered `on: .threadPool` run: NIO's shared blocking pool (one
        /// thread per core) unless told otherwise.
        public var blockingPool: NIOThreadPool = .singleton

        /// The defaults.
        public init() {}
    }

    /// The methods that need no token.
    public static let unauthenticatedMethods: Set<String> = [HealthMethods.check.name]

    private let configuration: Configuration
    private let router: RPCRouter
    private let logger: Logger
    private let environment: RPCServerHandler.Environment
    private let group: any EventLoopGroup
    private let bound: EventLoopPromise<SocketAddress>
    private let registry = ConnectionRegistry()
    private let partialFrames: PartialFrameBudget
    private let listener = Mutex<(any Channel)?>(nil)

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
        self.group = eventLoopGroup
        self.bound = eventLoopGroup.any().makePromise(of: SocketAddress.self)
        self.partialFrames = PartialFrameBudget(limit: configuration.partialFrameBudget)
        self.environment = RPCServerHandler.Environment(
            handlers: router.handlers,
            configuration: configuration,
            metrics: RPCServerMetrics(factory: metricsFactory, methods: router.methods),
            logger: logger,
            registry: registry
        )
    }

    /// Connections open now, and the most the server takes: health reports a full table.
    public var connections: (open: Int, limit: Int) {
        (registry.count, configuration.maxConnections)
    }

    /// The bytes held now in large frames that have not fully arrived, and the budget for them.
    public var partialFrameBytes: (held: Int, limit: Int) {
        (partialFrames.bytesHeld, partialFrames.limit)
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
        if registry.isDraining { channel.close(promise: nil) }

        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                try? await channel.closeFuture.get()
                self.registry.startDraining()
                self.registry.drainAll()
                let grace = self.group.any().scheduleTask(in: self.configuration.shutdownGracePeriod.timeAmount) {
                    self.logger.warning("shutdown grace period over: closing connections with requests in flight")
                    self.stopNow()
                }
                await self.registry.allClosed()
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
        registry.startDraining()
        listener.withLock { $0 }?.close(promise: nil)
    }

    /// Stops accepting, closes every connection and cancels every handler.
    private func stopNow() {
        beginShutdown()
        registry.stopAll()
    }

    private func bind() async throws -> any Channel {
        let configuration = configuration
        let environment = environment
        let partialFrames = partialFrames
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: configuration.idleTimeout.timeAmount))
                    let pauses = ReadPauses()
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(
                        maxFrameLength: configuration.maxFrameLength,
                        arrivalDeadline: configuration.frameArrivalTimeout.timeAmount,
                        budget: partialFrames,
                        pauses: pauses
                    )))
                    try sync.addHandler(RPCServerHandler(environment: environment, pauses: pauses))
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
    }
}

extension RPCServer {
    /// The open connections, so shutdown can drain or stop them and wait for none to be left.
    final class ConnectionRegistry: Sendable {
        private struct Connection {
            let channel: any Channel
            let handler: NIOLoopBound<RPCServerHandler>
            let address: String
        }
        private struct State {
            var open: [ObjectIdentifier: Connection] = [:]
            var perAddress: [String: Int] = [:]
            var waiters: [CheckedContinuation<Void, Never>] = []
            var draining = false
        }
        private let state = Mutex(State())

        /// Whether the server is shutting down.
        var isDraining: Bool { state.withLock { $0.draining } }

        /// Why a new connection cannot be admitted.
        enum Refusal: Error {
            case tableFull, addressFull
        }

        /// The connections open now.
        var count: Int { state.withLock { $0.open.count } }

        /// Records a new connection, or says why it is refused: `limit` connections open in all,
        /// or `perAddressLimit` from its client address.
        func open(_ channel: any Channel, handler: NIOLoopBound<RPCServerHandler>, limit: Int, perAddressLimit: Int) -> Refusal? {
            let address = channel.remoteAddress?.ipAddress ?? "unknown"
            return state.withLock { state in
                guard state.open.count < limit else { return .tableFull }
                guard state.perAddress[address, default: 0] < perAddressLimit else { return .addressFull }
                state.open[ObjectIdentifier(channel)] = Connection(channel: channel, handler: handler, address: address)
                state.perAddress[address, default: 0] += 1
                return nil
            }
        }

        /// Forgets a closed connection; wakes `allClosed()` when it was the last.
        func closed(_ channel: any Channel) {
            let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                if let connection = state.open.removeValue(forKey: ObjectIdentifier(channel)) {
                    let left = state.perAddress[connection.address, default: 1] - 1
                    state.perAddress[connection.address] = left > 0 ? left : nil
                }
                guard state.open.isEmpty else { return [] }
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }

        /// Marks the server as shutting down; connections that open later drain at once.
        func startDraining() {
            state.withLock { $0.draining = true }
        }

        /// Asks every connection to answer what runs, refuse the rest, and close.
        func drainAll() {
            for connection in state.withLock({ Array($0.open.values) }) {
                let handler = connection.handler
                connection.channel.eventLoop.execute { handler.value.drain() }
            }
        }

        /// Cancels every request and closes every connection now.
        func stopAll() {
            for connection in state.withLock({ Array($0.open.values) }) {
                let handler = connection.handler
                connection.channel.eventLoop.execute { handler.value.stopNow() }
            }
        }

        /// Returns once no connection is open.
        func allClosed() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let none = state.withLock { state in
                    if state.open.isEmpty { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if none { continuation.resume() }
            }
        }
    }
}
