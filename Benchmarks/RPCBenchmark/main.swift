// Loopback round-trip latency and throughput of a small RPC, beside a raw SwiftNIO TCP echo of
// the same bytes measured in the same run (the physical floor on this machine), and beside the
// same echo served in our server's shape (NIOAsyncChannel, a task per frame), which separates
// the cost of that shape from the cost of the RPC's own work.
//
//   swift run -c release rpc-benchmark [--seconds 3] [--payload 64]
//
// Both sides use the same number of connections, the same framing on the client side, and the
// same callers: each caller sends one request, waits for its answer, and repeats.
import Foundation
import KBProto
import KBRPC
import Logging
import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization

// Run Swift concurrency on NIO's event loop threads, as the services do (ServiceRuntime), unless
// asked not to: it removes the thread switches between the two pools.
let sharedExecutor = !CommandLine.arguments.contains("--separate-executor")
    && NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()

let arguments = CommandLine.arguments
func option(_ name: String, _ fallback: Int) -> Int {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return fallback }
    return Int(arguments[index + 1]) ?? fallback
}
let seconds = option("--seconds", 3)
let payloadSize = option("--payload", 64)
let connections = option("--connections", 2)
let group = MultiThreadedEventLoopGroup.singleton

// MARK: - Raw echo (the floor)

/// Writes back every byte it reads.
final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }
    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

/// Matches echoed frames to callers in order (an echo has no ids, so replies come back FIFO).
final class FIFOClientHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = (ByteBuffer, EventLoopPromise<ByteBuffer>)
    typealias OutboundOut = ByteBuffer
    private var waiting = CircularBuffer<EventLoopPromise<ByteBuffer>>()
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let (frame, reply) = unwrapOutboundIn(data)
        waiting.append(reply)
        context.writeAndFlush(wrapOutboundOut(frame), promise: promise)
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        waiting.removeFirst().succeed(unwrapInboundIn(data))
    }
}

func startEchoServer() async throws -> any Channel {
    try await ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoHandler()) }
        }
        .bind(host: "127.0.0.1", port: 0).get()
}

/// The same echo served the way our RPC server reads and writes: NIOAsyncChannel, a reader task
/// per connection and a task per frame. It separates the cost of that shape from the RPC's own.
func startAsyncEchoServer() async throws -> (channel: any Channel, task: Task<Void, Never>) {
    let listener = try await ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        .bind(host: "127.0.0.1", port: 0) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    let task = Task<Void, Never> {
        _ = try? await withThrowingDiscardingTaskGroup { connections in
            try await listener.executeThenClose { inbound in
                for try await connection in inbound {
                    connections.addTask {
                        try? await connection.executeThenClose { frames, outbound in
                            for try await frame in frames {
                                Task {
                                    var reply = ByteBuffer()
                                    reply.writeInteger(UInt32(frame.readableBytes))
                                    reply.writeImmutableBuffer(frame)
                                    try? await outbound.write(reply)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return (listener.channel, task)
}

func connectEchoClient(port: Int) async throws -> any Channel {
    try await ClientBootstrap(group: group)
        .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                try channel.pipeline.syncOperations.addHandler(FIFOClientHandler())
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
}

// MARK: - RPC

let echoMethod = RPCMethod<Google_Protobuf_BytesValue, Google_Protobuf_BytesValue>("kb.bench.v1.Bench/Echo")

// MARK: - Measurement

struct Figures {
    let operations: Int
    let seconds: Double
    let latenciesMicros: [Double]
    var throughput: Double { Double(operations) / seconds }
    func percentile(_ p: Double) -> Double {
        guard !latenciesMicros.isEmpty else { return .nan }
        return latenciesMicros[min(latenciesMicros.count - 1, Int(Double(latenciesMicros.count) * p))]
    }
}

/// Runs `callers` loops of `operation` for the measurement window (after a short warm-up).
func measure(callers: Int, _ operation: @escaping @Sendable (Int) async throws -> Void) async throws -> Figures {
    let warmUpEnd = ContinuousClock.now + .milliseconds(500)
    let end = warmUpEnd + .seconds(seconds)
    let perCaller = try await withThrowingTaskGroup(of: [Double].self) { tasks in
        for caller in 0..<callers {
            tasks.addTask {
                var samples: [Double] = []
                samples.reserveCapacity(200_000)
                while true {
                    let start = ContinuousClock.now
                    if start >= end { break }
                    try await operation(caller)
                    if start >= warmUpEnd {
                        let elapsed = ContinuousClock.now - start
                        samples.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
                    }
                }
                return samples
            }
        }
        var all: [[Double]] = []
        for try await samples in tasks { all.append(samples) }
        return all
    }
    let latencies = perCaller.flatMap { $0 }.sorted()
    return Figures(operations: latencies.count, seconds: Double(seconds), latenciesMicros: latencies)
}

/// Round trips of the RPC's request frame through an echo server on `port`.
func measureEcho(port: Int, callers: Int) async throws -> Figures {
    let channels = try await (0..<connections).asyncMap { _ in try await connectEchoClient(port: port) }
    let figures = try await measure(callers: callers) { caller in
        let channel = channels[caller % channels.count]
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        channel.writeAndFlush((echoFrame, promise), promise: nil)
        _ = try await promise.futureResult.get()
    }
    for channel in channels { try await channel.close() }
    return figures
}

// MARK: - Run

var logger = Logger(label: "bench")
logger.logLevel = .warning
var router = RPCRouter()
router.register(echoMethod) { request, _ in request }
var serverConfiguration = RPCServer.Configuration()
serverConfiguration.port = 0
let rpcServer = RPCServer(configuration: serverConfiguration, router: router, logger: logger)
let serverTask = Task { try await rpcServer.run() }
let rpcPort = try await rpcServer.localAddress.port!
let echoServer = try await startEchoServer()
let asyncEcho = try await startAsyncEchoServer()

var request = Google_Protobuf_BytesValue()
request.value = Data((0..<payloadSize).map { UInt8($0 & 0xFF) })
// The echo carries exactly the bytes of the RPC's request frame.
var sample = Kb_Rpc_V1_Envelope()
sample.id = 1
sample.method = echoMethod.name
sample.payload = try request.serializedData()
sample.deadlineMs = 30_000
let echoFrame = try Frame.encode(sample, allocator: ByteBufferAllocator())

print("RPC round trip on loopback: payload \(payloadSize) B (frame \(echoFrame.readableBytes) B), \(connections) connections, \(seconds) s per run, \(ProcessInfo.processInfo.activeProcessorCount) cores, Swift concurrency on \(sharedExecutor ? "NIO's event loops" : "its own pool")")
print("system              callers   req/s        p50 µs    p99 µs")
var summary: [(callers: Int, throughputRatio: Double, p50Ratio: Double)] = []
for callers in [1, 64] {
    let echo = try await measureEcho(port: echoServer.localAddress!.port!, callers: callers)
    let asyncFigures = try await measureEcho(port: asyncEcho.channel.localAddress!.port!, callers: callers)

    var clientConfiguration = RPCClient.Configuration(host: "127.0.0.1", port: rpcPort)
    clientConfiguration.connections = connections
    let client = RPCClient(configuration: clientConfiguration)
    let rpc = try await measure(callers: callers) { _ in
        _ = try await client.call(echoMethod, request)
    }
    await client.close()

    for (name, figures) in [("raw NIO echo", echo), ("async-channel echo", asyncFigures), ("kb RPC", rpc)] {
        print(name.padding(toLength: 19, withPad: " ", startingAt: 0) + String(format: "%7d %9.0f %12.1f %9.1f", callers, figures.throughput, figures.percentile(0.5), figures.percentile(0.99)))
    }
    summary.append((callers, rpc.throughput / echo.throughput, rpc.percentile(0.5) / echo.percentile(0.5)))
}
for line in summary {
    print(String(format: "%d callers: RPC throughput = %.2f × echo's, RPC p50 = %.2f × echo's", line.callers, line.throughputRatio, line.p50Ratio))
}
rpcServer.beginShutdown()
serverTask.cancel()
try await echoServer.close()

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
