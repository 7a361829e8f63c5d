// swift-tools-version:6.0
// The gRPC-swift 2 reference of the RPC benchmark: a unary echo over HTTP/2 (plaintext, loopback,
// posix transport) measured the way rpc-benchmark measures our RPC. A package of its own so that
// the main package never builds gRPC; rpc-benchmark builds and runs it (`--grpc`, on by default):
//
//   swift build -c release --package-path Benchmarks/GRPCReference
//   Benchmarks/GRPCReference/.build/release/grpc-reference --seconds 3 --payload 64 --connections 2 --callers 1,16,64
import PackageDescription

let package = Package(
    name: "GRPCReference",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(path: "../BenchmarkSupport"),
    ],
    targets: [
        .executableTarget(
            name: "grpc-reference",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "BenchmarkSupport", package: "BenchmarkSupport"),
            ]
        ),
    ]
)
