// grpc-reference: the gRPC-swift 2 side of rpc-benchmark. A unary echo of a bytes message
// (google.protobuf.BytesValue, the message our RPC benchmark echoes) served over HTTP/2,
// plaintext, on 127.0.0.1 by the posix transport, called by closed-loop callers (each sends,
// awaits the answer, repeats) spread over a fixed number of connections (one GRPCClient each).
//
//   grpc-reference [--seconds 3] [--payload 64] [--connections 2] [--callers 1,16,64] [--separate-executor]
//
// Prints one JSON line per caller count (BenchmarkSupport.RoundTripLine: qps, p50 and p99 in µs).
// The service is registered by hand with GRPCCore's generic router API and SwiftProtobuf's
// well-known BytesValue, so no code generation is needed.
import BenchmarkSupport
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import NIOCore
import NIOPosix
import SwiftProtobuf

let options = RoundTripOptions(BenchmarkArguments())
// As in rpc-benchmark and our services: Swift concurrency on NIO's event loop threads, unless
// asked not to, so that both sides run on the same threads.
let sharedExecutor = !options.separateExecutor
    && NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
let (window, payloadSize, connections) = (options.window, options.payloadSize, options.connections)

typealias Bytes = Google_Protobuf_BytesValue

/// kb.bench.v1.Bench/Echo: answers with the request's message.
struct EchoService: RegistrableRPCService {
    static let echo = MethodDescriptor(fullyQualifiedService: "kb.bench.v1.Bench", method: "Echo")

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Self.echo,
            deserializer: ProtobufDeserializer<Bytes>(),
            serializer: ProtobufSerializer<Bytes>()
        ) { request, _ in
            let single = try await ServerRequest(stream: request)
            return StreamingServerResponse(single: ServerResponse(message: single.message))
        }
    }
}

let request = Bytes.with { $0.value = options.payload }

let server = GRPCServer(
    transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
    services: [EchoService()]
)

try await withThrowingDiscardingTaskGroup { group in
    group.addTask { try await server.serve() }
    guard let port = try await server.listeningAddress?.ipv4?.port else {
        throw BenchmarkFailure("the gRPC server did not report an IPv4 listening address")
    }
    FileHandle.standardError.write(Data("grpc-reference: listening on 127.0.0.1:\(port), \(connections) connections, Swift concurrency on \(sharedExecutor ? "NIO's event loops" : "its own pool")\n".utf8))

    for callers in options.callerCounts {
        // Fresh connections for each caller count, as rpc-benchmark makes a fresh RPCClient.
        let clients = try (0..<connections).map { _ in
            GRPCClient(transport: try .http2NIOPosix(target: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext))
        }
        let figures = try await withThrowingTaskGroup(of: ClosedLoopFigures?.self) { running in
            for client in clients { running.addTask { try await client.runConnections(); return nil } }
            let figures = try await measureClosedLoop(callers: callers, window: window) { caller, _ in
                let reply = try await clients[caller % clients.count].unary(
                    request: ClientRequest(message: request),
                    descriptor: EchoService.echo,
                    serializer: ProtobufSerializer<Bytes>(),
                    deserializer: ProtobufDeserializer<Bytes>(),
                    options: .defaults
                ) { try $0.message }
                if reply.value.count != payloadSize {
                    throw BenchmarkFailure("the echo answered \(reply.value.count) bytes, not \(payloadSize)")
                }
            }
            for client in clients { client.beginGracefulShutdown() }
            try await running.waitForAll()
            return figures
        }
        // Written unbuffered: the parent reads each line as the rows finish.
        FileHandle.standardOutput.write(Data((RoundTripLine(system: "grpc-swift-2", callers: callers, connections: connections, figures: figures).encoded + "\n").utf8))
    }
    server.beginGracefulShutdown()
}
