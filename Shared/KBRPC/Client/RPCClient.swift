import Foundation
import KBProto
import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization

/// A client of one service: a small pool of persistent connections, each carrying many calls at
/// once, with deadlines, cancellation and reconnection with backoff.
///
/// It is `Sendable`: share one per peer service across the whole process.
public final class RPCClient: Sendable {
    /// Where to connect and how to behave.
    public struct Configuration: Sendable {
        /// The service's host.
        public var host: String
        /// The service's RPC port.
        public var port: Int
        /// Connections in the pool; calls are spread over them round-robin.
        public var connections: Int = 2
        /// The deadline of a call that names none.
        public var defaultTimeout: Duration = .seconds(30)
        /// How long a connection attempt may take.
        public var connectTimeout: Duration = .seconds(5)
        /// Sent as `authorization: Bearer <token>` on every call when set.
        public var authToken: String?
        /// The largest frame sent or accepted.
        public var maxFrameLength: Int = Frame.defaultMaxLength
        /// The first wait after a failed connection attempt; it doubles up to `maxBackoff`.
        public var initialBackoff: Duration = .milliseconds(100)
        /// The longest wait between connection attempts.
        public var maxBackoff: Duration = .seconds(5)
        /// When true, a call fails with UNAVAILABLE at once when the connection attempt fails or
        /// the connection is backing off, instead of retrying until its deadline (an HTTP front
        /// such as VKB must say "unavailable" promptly, not hang).
        public var failFast = false

        /// A configuration for `host:port` with defaults for everything else.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// A configuration from a `host:port` address such as `KB_GRAPH_STORE_ADDR`'s value.
        public init(address: String) throws {
            guard let colon = address.lastIndex(of: ":"),
                let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port)
            else { throw RPCError(.invalidArgument, "address '\(address)' is not host:port") }
            var host = String(address[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            self.init(host: host.isEmpty ? "127.0.0.1" : host, port: port)
        }
    }

    /// The client's configuration.
    public let configuration: Configuration
    private let slots: [ConnectionSlot]
    private let nextID = Atomic<UInt64>(1)
    private let nextSlot = Atomic<Int>(0)

    /// Creates a client; connections open on first use.
    public init(configuration: Configuration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        self.slots = (0..<max(1, configuration.connections)).map { _ in
            ConnectionSlot(configuration: configuration, eventLoop: eventLoopGroup.next())
        }
    }

    /// Calls `method` with `request` and returns its response, or throws an `RPCError`.
    public func call<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ request: Request,
        options: CallOptions = CallOptions()
    ) async throws -> Response {
        let payload: Data = try request.serializedBytes()
        let envelope = try await call(method: method.name, payload: payload, options: options)
        do {
            return try Response(serializedBytes: envelope.payload)
        } catch {
            throw RPCError(.internal, "response of \(method.name) does not decode as \(Response.protoMessageName): \(error)")
        }
    }

    /// Sends raw payload bytes to a method by name and returns the response envelope's payload
    /// envelope; throws the response's status when it is not OK.
    public func call(method: String, payload: Data, options: CallOptions = CallOptions()) async throws -> Kb_Rpc_V1_Envelope {
        let timeout = options.timeout ?? configuration.defaultTimeout
        let deadline = ContinuousClock.now + timeout
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue

        var envelope = Kb_Rpc_V1_Envelope()
        envelope.id = id
        envelope.method = method
        envelope.payload = payload
        envelope.deadlineMs = UInt64(max(1, timeout.timeAmount.nanoseconds / 1_000_000))
        envelope.metadata = options.metadata
        if let token = configuration.authToken { envelope.metadata["authorization"] = "Bearer \(token)" }

        let slot = slots[nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue % slots.count]
        let channel = try await slot.channel(before: deadline)
        let frame = try Frame.encode(envelope, allocator: channel.allocator)
        guard frame.readableBytes - Frame.headerLength <= configuration.maxFrameLength else {
            throw RPCError(.resourceExhausted, "request of \(frame.readableBytes - Frame.headerLength) bytes exceeds the frame limit of \(configuration.maxFrameLength) bytes")
        }
        let remaining = deadline - ContinuousClock.now
        let promise = channel.eventLoop.makePromise(of: Kb_Rpc_V1_Envelope.self)
        let call = OutboundCall(id: id, frame: frame, promise: promise, timeout: .nanoseconds(max(1, remaining.timeAmount.nanoseconds)))
        // A write that cannot reach the connection's handler (it closed meanwhile) fails the call
        // at once instead of leaving it waiting on a promise nobody holds.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            promise.fail(RPCError(.unavailable, "could not send the request: \(error)"))
        }
        let response: Kb_Rpc_V1_Envelope = try await withTaskCancellationHandler {
            channel.write(call, promise: written)
            // Cancelled between connecting and writing: the cancel request must follow the write.
            if Task.isCancelled { channel.triggerUserOutboundEvent(CancelCall(id: id), promise: nil) }
            return try await promise.futureResult.get()
        } onCancel: {
            channel.triggerUserOutboundEvent(CancelCall(id: id), promise: nil)
        }
        if let error = RPCError(status: response.status) { throw error }
        return response
    }

    /// Closes every connection; later calls reconnect.
    public func close() async {
        for slot in slots { await slot.close() }
    }
}

/// One pooled connection: connects on demand, reconnects after failures with exponential backoff.
final class ConnectionSlot: Sendable {
    private enum State {
        case idle(failures: Int)
        case connecting(EventLoopFuture<any Channel>)
        case ready(any Channel)
        case backingOff(until: ContinuousClock.Instant, failures: Int, lastError: String)
    }

    private let configuration: RPCClient.Configuration
    private let eventLoop: any EventLoop
    private let state = Mutex(State.idle(failures: 0))

    init(configuration: RPCClient.Configuration, eventLoop: any EventLoop) {
        self.configuration = configuration
        self.eventLoop = eventLoop
    }

    /// A live connection, connecting or waiting out a backoff first if needed (never past `deadline`).
    func channel(before deadline: ContinuousClock.Instant) async throws -> any Channel {
        while true {
            enum Next { case use(any Channel), wait(EventLoopFuture<any Channel>), sleep(ContinuousClock.Instant) }
            let next: Next = try state.withLock { state in
                switch state {
                case .ready(let channel) where channel.isActive:
                    return .use(channel)
                case .ready:
                    state = .idle(failures: 0)
                    return .wait(connect(&state, failures: 0))
                case .idle(let failures):
                    return .wait(connect(&state, failures: failures))
                case .connecting(let future):
                    return .wait(future)
                case .backingOff(let until, let failures, let lastError):
                    if ContinuousClock.now >= until { return .wait(connect(&state, failures: failures)) }
                    if until > deadline || configuration.failFast {
                        throw RPCError(.unavailable, "cannot reach \(configuration.host):\(configuration.port): \(lastError)")
                    }
                    return .sleep(until)
                }
            }
            switch next {
            case .use(let channel):
                return channel
            case .wait(let future):
                do {
                    return try await future.get()
                } catch {
                    if ContinuousClock.now >= deadline || configuration.failFast {
                        throw RPCError(.unavailable, "cannot reach \(configuration.host):\(configuration.port): \(error)")
                    }
                }
            case .sleep(let until):
                try await Task.sleep(until: until, clock: .continuous)
            }
        }
    }

    /// Starts a connection attempt; the state moves to `.ready` or `.backingOff` when it ends.
    private func connect(_ state: inout State, failures: Int) -> EventLoopFuture<any Channel> {
        let configuration = configuration
        let future = ClientBootstrap(group: eventLoop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(configuration.connectTimeout.timeAmount)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(maxFrameLength: configuration.maxFrameLength)))
                    try sync.addHandler(ResponseRouter())
                }
            }
            .connect(host: configuration.host, port: configuration.port)
        state = .connecting(future)
        future.whenComplete { result in
            self.state.withLock { state in
                switch result {
                case .success(let channel):
                    state = .ready(channel)
                    channel.closeFuture.whenComplete { _ in
                        self.state.withLock { state in
                            if case .ready(let current) = state, current === channel { state = .idle(failures: 0) }
                        }
                    }
                case .failure(let error):
                    let exponent = min(failures, 16)
                    let backoff = min(configuration.initialBackoff * (1 << exponent), configuration.maxBackoff)
                    let jittered = backoff * Double.random(in: 0.8...1.2)
                    state = .backingOff(until: .now + jittered, failures: failures + 1, lastError: "\(error)")
                }
            }
        }
        return future
    }

    func close() async {
        let channel: (any Channel)? = state.withLock { state in
            defer { state = .idle(failures: 0) }
            if case .ready(let channel) = state { return channel }
            return nil
        }
        try? await channel?.close()
    }
}
