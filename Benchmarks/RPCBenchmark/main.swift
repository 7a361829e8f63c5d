// rpc-benchmark: loopback round trips of a small unary RPC, ours beside its floor and beside
// gRPC-swift 2, in one run.
//
//   nice -n 10 swift build -c release --product rpc-benchmark
//   .build/release/rpc-benchmark [--runs 3] [--seconds 3] [--payload 64] [--connections 2]
//                                [--callers 1,16,64] [--no-grpc] [--separate-executor]
//
// Rows, for each caller count (callers are closed loops: each sends one request, awaits its
// answer, repeats; all share the same `--connections` connections):
// - raw NIO echo: a SwiftNIO TCP server that writes back the bytes of our request frame (the
//   physical floor of this machine);
// - async-channel echo (diagnostic): the same echo served as a NIOAsyncChannel with a task per
//   frame, the shape our server had before the RPC kit moved onto the event loop;
// - gRPC-swift 2: the reference in Benchmarks/GRPCReference (its own package, so the main
//   package never builds gRPC): a unary echo of the same BytesValue over HTTP/2, plaintext,
//   loopback, posix transport, one GRPCClient per connection. `--grpc` (on unless `--no-grpc`)
//   builds it with `swift build -c release --package-path Benchmarks/GRPCReference` (minutes the
//   first time) and runs it as a subprocess with the same seconds, payload, connections, callers;
// - kb RPC: our RPCServer and RPCClient, the same BytesValue echoed.
// `--runs N` repeats the whole measurement N times and reports the median of each figure; the
// ratios are those of the medians. The aims (issue 12) are printed beside them.
import BenchmarkSupport
import Foundation
import KBProto
import KBRPC
import Logging
import NIOCore
import NIOPosix
import SwiftProtobuf

let arguments = BenchmarkArguments()
let options = RoundTripOptions(arguments)
// Run Swift concurrency on NIO's event loop threads, as the services do (ServiceRuntime), unless
// asked not to: it removes the thread switches between the two pools.
let sharedExecutor = !options.separateExecutor
    && NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
let (window, payloadSize, connections, callerCounts) = (options.window, options.payloadSize, options.connections, options.callerCounts)
let runs = max(1, arguments.integer("--runs", default: 3))
let withGRPC = !arguments.flag("--no-grpc")
let group = MultiThreadedEventLoopGroup.singleton

// MARK: - Raw echo (the floor)

/// Splits the stream into frames of the RPC's wire format (4-byte big-endian length, then the
/// body) and passes each frame on whole, length included.
struct WholeFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self),
              buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(buffer.readSlice(length: 4 + Int(length))!))
        return .continue
    }
}

/// Writes back every byte it reads, flushed once per read burst.
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

/// The same echo served as a NIOAsyncChannel: a reader task per connection and a task per frame
/// (diagnostic: the cost of that shape alone).
func startAsyncEchoServer() async throws -> (channel: any Channel, task: Task<Void, Never>) {
    let listener = try await ServerBootstrap(group: group)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        .bind(host: "127.0.0.1", port: 0) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WholeFrameDecoder()))
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
                                Task { try? await outbound.write(frame) }
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
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WholeFrameDecoder()))
                try channel.pipeline.syncOperations.addHandler(FIFOClientHandler())
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
}

/// Round trips of the RPC's request frame through an echo server on `port`.
func measureEcho(port: Int, callers: Int, frame: ByteBuffer) async throws -> ClosedLoopFigures {
    var channels: [any Channel] = []
    for _ in 0..<connections { channels.append(try await connectEchoClient(port: port)) }
    let clientChannels = channels
    let figures = try await measureClosedLoop(callers: callers, window: window) { caller, _ in
        let channel = clientChannels[caller % clientChannels.count]
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        channel.writeAndFlush((frame, promise), promise: nil)
        _ = try await promise.futureResult.get()
    }
    for channel in channels { try await channel.close() }
    return figures
}

// MARK: - Our RPC

let echoMethod = RPCMethod<Google_Protobuf_BytesValue, Google_Protobuf_BytesValue>("kb.bench.v1.Bench/Echo")
let request = Google_Protobuf_BytesValue.with { $0.value = options.payload }

/// The bytes our client sends for one call (length prefix and envelope), which the echoes carry.
func requestFrame() throws -> ByteBuffer {
    let envelope = try Kb_Rpc_V1_Envelope.with {
        $0.id = 1
        $0.method = echoMethod.name
        $0.payload = try request.serializedData()
        $0.deadlineMs = 30_000
    }
    let body: [UInt8] = try envelope.serializedBytes()
    var frame = ByteBuffer()
    frame.writeInteger(UInt32(body.count), endianness: .big)
    frame.writeBytes(body)
    return frame
}

func measureRPC(port: Int, callers: Int) async throws -> ClosedLoopFigures {
    var configuration = RPCClient.Configuration(host: "127.0.0.1", port: port)
    configuration.connections = connections
    let client = RPCClient(configuration: configuration)
    let figures = try await measureClosedLoop(callers: callers, window: window) { _, _ in
        let reply = try await client.call(echoMethod, request)
        if reply.value.count != payloadSize { throw BenchmarkFailure("our RPC answered \(reply.value.count) bytes, not \(payloadSize)") }
    }
    await client.close()
    return figures
}

// MARK: - gRPC-swift 2 (its own package, a subprocess)

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let referencePackage = packageRoot.appendingPathComponent("Benchmarks/GRPCReference")

/// Builds the reference (release) and returns its executable.
func buildGRPCReference() throws -> String {
    print("building the gRPC-swift 2 reference (swift build -c release --package-path Benchmarks/GRPCReference)…")
    // Its progress and errors go to this terminal: the first build takes minutes.
    let build = try startProcess(URL(fileURLWithPath: "/usr/bin/env"), arguments: ["swift", "build", "-c", "release", "--package-path", referencePackage.path, "--product", "grpc-reference"])
    build.waitUntilExit()
    guard build.terminationStatus == 0 else {
        throw BenchmarkFailure("building Benchmarks/GRPCReference failed (exit \(build.terminationStatus), its output is above); --no-grpc measures without the reference")
    }
    let binPath = try runToEnd("swift", ["build", "-c", "release", "--package-path", referencePackage.path, "--show-bin-path"])
    return binPath.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) + "/grpc-reference"
}

func measureGRPC(executable: String) throws -> [Int: RoundTripLine] {
    let output = try runToEnd(executable, options.commandLine)
    guard output.status == 0 else { throw BenchmarkFailure("grpc-reference failed (exit \(output.status)): \(output.lastErrorLine)") }
    let lines = RoundTripLine.parse(output.standardOutput)
    guard lines.count == callerCounts.count else {
        throw BenchmarkFailure("grpc-reference printed \(lines.count) result lines for \(callerCounts.count) caller counts: \(output.standardOutput)")
    }
    return Dictionary(lines.map { ($0.callers, $0) }, uniquingKeysWith: { $1 })
}

// MARK: - Run

/// One row of figures: requests per second, p50 and p99 in µs.
struct Row {
    var qps: Double
    var p50: Double
    var p99: Double
    init(_ figures: ClosedLoopFigures) { (qps, p50, p99) = (figures.throughput, figures.p50, figures.p99) }
    init(_ line: RoundTripLine) { (qps, p50, p99) = (line.qps, line.p50Micros, line.p99Micros) }
    init(qps: Double, p50: Double, p99: Double) { (self.qps, self.p50, self.p99) = (qps, p50, p99) }
    /// The median of each figure separately.
    static func median(_ rows: [Row]) -> Row {
        Row(qps: BenchmarkSupport.median(rows.map(\.qps)), p50: BenchmarkSupport.median(rows.map(\.p50)), p99: BenchmarkSupport.median(rows.map(\.p99)))
    }
}

enum System: String, CaseIterable {
    case echo = "raw NIO echo"
    case asyncEcho = "async-channel echo"
    case grpc = "gRPC-swift 2"
    case ours = "kb RPC"
}

/// Every run's rows, by system and caller count.
struct Measurements {
    private var rows: [System: [Int: [Row]]] = [:]
    mutating func record(_ system: System, _ callers: Int, _ row: Row) { rows[system, default: [:]][callers, default: []].append(row) }
    /// The median of each figure over the runs.
    func median(_ system: System, _ callers: Int) -> Row? { rows[system]?[callers].map(Row.median) }
}

var logger = Logger(label: "rpc-benchmark")
logger.logLevel = .warning
var router = RPCRouter()
// Answered on the event loop: the placement of a cheap handler (as budget Admit/GetStatus).
router.register(echoMethod, on: .eventLoop) { request, _ in request }
var serverConfiguration = RPCServer.Configuration()
serverConfiguration.port = 0
let rpcServer = RPCServer(configuration: serverConfiguration, router: router, logger: logger)
let serverTask = Task { try await rpcServer.run() }
let rpcPort = try await rpcServer.localAddress.port!
let echoServer = try await startEchoServer()
let asyncEcho = try await startAsyncEchoServer()
let frame = try requestFrame()

let grpcExecutable: String?
do {
    grpcExecutable = withGRPC ? try buildGRPCReference() : nil
} catch {
    print("\(error)")
    exit(1)
}

print("RPC round trip on loopback: payload \(payloadSize) B (our frame \(frame.readableBytes) B), \(connections) connections, \(Int(seconds(window))) s per row after 0.5 s warm-up, \(runs) run\(runs == 1 ? "" : "s"), \(ProcessInfo.processInfo.activeProcessorCount) cores, Swift concurrency on \(sharedExecutor ? "NIO's event loops" : "its own pool")")
var measured = Measurements()
do {
    for run in 1...runs {
        print("run \(run)/\(runs)…")
        for callers in callerCounts {
            measured.record(.echo, callers, Row(try await measureEcho(port: echoServer.localAddress!.port!, callers: callers, frame: frame)))
            measured.record(.asyncEcho, callers, Row(try await measureEcho(port: asyncEcho.channel.localAddress!.port!, callers: callers, frame: frame)))
            measured.record(.ours, callers, Row(try await measureRPC(port: rpcPort, callers: callers)))
        }
        if let grpcExecutable {
            for (callers, line) in try measureGRPC(executable: grpcExecutable) { measured.record(.grpc, callers, Row(line)) }
        }
    }
} catch {
    print("\(error)")
    exit(1)
}

func ratio(_ a: Double?, _ b: Double?) -> String {
    guard let a, let b, b > 0 else { return "     -" }
    return String(format: "%5.2f×", a / b)
}

print("")
print(runs == 1 ? "figures of one run" : "median of \(runs) runs, each figure separately")
print("callers  system                  req/s     p50 µs     p99 µs")
for callers in callerCounts {
    for system in System.allCases {
        guard let row = measured.median(system, callers) else { continue }
        print(String(format: "%7d  ", callers) + system.rawValue.padding(toLength: 20, withPad: " ", startingAt: 0) + String(format: "%9.0f %10.1f %10.1f", row.qps, row.p50, row.p99))
    }
}

print("")
print("ratios of the medians: ours / raw echo, ours / gRPC-swift 2")
print("callers   req/s÷echo  p50÷echo  p99÷echo   req/s÷gRPC  p50÷gRPC  p99÷gRPC   aim")
for callers in callerCounts {
    guard let ours = measured.median(.ours, callers), let echo = measured.median(.echo, callers) else { continue }
    let grpc = measured.median(.grpc, callers)
    var aim = ""
    if callers == 1 {
        aim = "p50 ≤ 1.30× echo: " + (ours.p50 <= 1.3 * echo.p50 ? "met" : "not met")
    } else if callers == 64 {
        let echoMet = ours.qps >= 0.6 * echo.qps
        let grpcMet = grpc.map { ours.qps >= 1.5 * $0.qps }
        aim = "req/s ≥ 0.6× echo: \(echoMet ? "met" : "not met"); ≥ 1.5× gRPC: " + (grpcMet.map { $0 ? "met" : "not met" } ?? "not measured")
    }
    print(String(format: "%7d  ", callers)
        + "    \(ratio(ours.qps, echo.qps))    \(ratio(ours.p50, echo.p50))    \(ratio(ours.p99, echo.p99))"
        + "      \(ratio(ours.qps, grpc?.qps))    \(ratio(ours.p50, grpc?.p50))    \(ratio(ours.p99, grpc?.p99))   \(aim)")
}

rpcServer.beginShutdown()
serverTask.cancel()
asyncEcho.task.cancel()
try await echoServer.close().get()
try? await asyncEcho.channel.close().get()
