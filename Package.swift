// swift-tools-version:6.0
// The knowledge system: five services, their shared kit, and the operator tools.
import PackageDescription

let package = Package(
    name: "KnowledgeBase",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kb", targets: ["kb"]),
        .executable(name: "graph-store", targets: ["graph-store"]),
        .executable(name: "ukb", targets: ["ukb"]),
        .executable(name: "budget-service", targets: ["budget-service"]),
        .executable(name: "vector-search", targets: ["vector-search"]),
        .executable(name: "vkb", targets: ["vkb"]),
        .executable(name: "inference-gateway", targets: ["inference-gateway"]),
        .library(name: "KBRPC", targets: ["KBRPC"]),
        .library(name: "KBRuntime", targets: ["KBRuntime"]),
        .library(name: "KBProto", targets: ["KBProto"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        // The Model Context Protocol (`ukb mcp`, a stdio server for coding agents).
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk.git", from: "0.12.1"),
        // What the benchmarks share; its own package so the gRPC reference uses it too.
        .package(path: "Benchmarks/BenchmarkSupport"),
    ],
    targets: [
        // MARK: Shared libraries

        /// Code generated from Protos/ by protoc-gen-swift (scripts/generate-protos.sh), plus typed method descriptors.
        .target(
            name: "KBProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Shared/KBProto"
        ),
        /// The RPC kit: framing, server, client, status codes, auth and per-method metrics.
        .target(
            name: "KBRPC",
            dependencies: [
                "KBTime",
                "KBProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/KBRPC"
        ),
        /// Time in the system's units, once: UTC civil dates (budget periods, ISO timestamps) and
        /// `Duration` in nanoseconds, milliseconds and seconds. No dependencies, so every target may use it.
        .target(name: "KBTime", path: "Shared/KBTime"),
        /// The service runtime: config, logging, metrics registry, admin HTTP, lifecycle, data-directory lock.
        .target(
            name: "KBRuntime",
            dependencies: [
                "KBRPC",
                "KBProto",
                "KBTime",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            path: "Shared/KBRuntime"
        ),

        /// libcurl's C API with typed wrappers of its variadic calls (Debian's libcurl4-openssl-dev).
        .target(
            name: "CCurl",
            path: "Shared/CCurl",
            linkerSettings: [.linkedLibrary("curl")]
        ),
        /// The one HTTP client: an async wrapper of libcurl's multi interface (keep-alive reuse,
        /// HTTP/2, time limits, streaming bodies with SSE and NDJSON parsing, cancellation).
        .target(
            name: "KBHTTPClient",
            dependencies: ["CCurl", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            path: "Shared/KBHTTPClient"
        ),

        /// LevelDB's C API (Debian's libleveldb-dev).
        .systemLibrary(name: "CLevelDB", path: "Shared/CLevelDB"),
        /// The one Swift wrapper of LevelDB: open, get, atomic synced batches, prefix scans, snapshots.
        .target(
            name: "KBLevelDB",
            dependencies: ["CLevelDB"],
            path: "Shared/KBLevelDB"
        ),

        /// The one way we open SQLite (through GRDB): WAL, synced commits, busy timeout, online
        /// backup, integrity check and offline restore of a database file.
        .target(
            name: "KBSQLite",
            dependencies: ["KBTime", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Shared/KBSQLite"
        ),

        /// The knowledge model shared by services and clients: the rules of names and fields and
        /// the shared-memory JSON format. No networking (it uses only KBRPC's error reasons).
        .target(
            name: "KBKnowledge",
            dependencies: ["KBProto", "KBRPC", "KBTime"],
            path: "Shared/KBKnowledge"
        ),
        /// Coding-session transcripts read as exchanges (Claude Code logs, live-session markdown,
        /// plain text), from the start or from where a follower stopped. No networking.
        .target(name: "KBSessions", path: "Shared/KBSessions"),
        /// Learning from sessions: extraction through the gateway, deduplication by meaning, writes
        /// to the graph store, the keyword fallback, the follower's durable state.
        .target(
            name: "KBLearning",
            dependencies: ["KBSessions", "KBKnowledge", "KBProto", "KBRPC"],
            path: "Shared/KBLearning"
        ),
        /// The transfer client: import and export of shared-memory JSON over the graph store's RPC
        /// (`ukb import/export`, VKB's drag-and-drop).
        .target(
            name: "KBKnowledgeTransfer",
            dependencies: ["KBKnowledge", "KBProto", "KBRPC"],
            path: "Shared/KBKnowledgeTransfer"
        ),

        /// Local sentence embeddings (all-MiniLM-L6-v2, the same vectors as sentence-transformers):
        /// the safetensors file memory-mapped, BERT's WordPiece tokenizer, the encoder on OpenBLAS's
        /// sgemm (dlopen'ed after choosing its core type) and SIMD loops. A shared library because
        /// the gateway's `local` provider serves Embed from it and `kb embed` tries it.
        .target(
            name: "KBEmbeddings",
            dependencies: [
                "KBRuntime",
                .target(name: "KBEmbeddingKernelsHaswell", condition: .when(platforms: [.linux, .macOS])),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Shared/KBEmbeddings",
            // Optimized in debug builds too: the tests run the model on a thousand texts.
            swiftSettings: [
                .unsafeFlags(["-Ounchecked"], .when(configuration: .release)),
                .unsafeFlags(["-O"], .when(configuration: .debug)),
            ]
        ),
        /// The encoder's SIMD loops compiled for AVX2 (`-target-cpu haswell`); KBEmbeddings picks
        /// them at run time when the CPU has AVX2 and FMA. The source is KBEmbeddings/EncoderLoopCore.swift.
        .target(
            name: "KBEmbeddingKernelsHaswell",
            path: "Shared/KBEmbeddingKernelsHaswell",
            swiftSettings: [.unsafeFlags(["-target-cpu", "haswell", "-Ounchecked"], .when(configuration: .release)), .unsafeFlags(["-target-cpu", "haswell", "-O"], .when(configuration: .debug))]
        ),

        // MARK: Services

        /// The graph store's logic: key layout, group commit, queries, traversals, backup, verify.
        .target(
            name: "GraphStoreKit",
            dependencies: [
                "KBKnowledge", "KBLevelDB", "KBProto", "KBRPC", "KBRuntime", "KBTime",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/GraphStore/GraphStoreKit"
        ),
        /// `graph-store`: serves kb.graph.v1.GraphStore; `graph-store restore DIR` offline.
        .executableTarget(
            name: "graph-store",
            dependencies: ["GraphStoreKit", "KBRPC", "KBRuntime"],
            path: "Services/GraphStore/graph-store"
        ),

        /// The inference gateway's logic: provider wire formats over the HTTP client, error
        /// classification, circuit breakers, routing, budget gate, caches, the OpenAI front.
        .target(
            name: "InferenceKit",
            dependencies: [
                "KBEmbeddings", "KBHTTPClient", "KBKnowledge", "KBProto", "KBRPC", "KBRuntime", "KBSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/InferenceGateway/InferenceKit"
        ),
        /// `inference-gateway`: serves kb.inference.v1.InferenceGateway.
        .executableTarget(
            name: "inference-gateway",
            dependencies: ["InferenceKit", "KBRuntime"],
            path: "Services/InferenceGateway/inference-gateway"
        ),

        /// The budget service's logic: price table, ledger with group commit, admission with
        /// reservations, reports, period management, admin runbook endpoints.
        .target(
            name: "BudgetKit",
            dependencies: [
                "KBSQLite", "KBProto", "KBRPC", "KBRuntime", "KBTime",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/BudgetService/BudgetKit"
        ),
        /// `budget-service`: serves kb.budget.v1.Budget; `budget-service restore FILE` offline.
        .executableTarget(
            name: "budget-service",
            dependencies: ["BudgetKit", "KBRPC", "KBRuntime"],
            path: "Services/BudgetService/budget-service"
        ),

        /// The vector engine: HNSW over contiguous storage with SIMD kernels, filters during the
        /// walk, tombstone deletes with repair, snapshots. Usable in-process.
        /// The CPU's cache prefetch hint (`__builtin_prefetch`), header only.
        .systemLibrary(name: "CPrefetch", path: "Shared/CPrefetch"),
        /// The distance kernels compiled for AVX2 (`-target-cpu haswell`); VectorIndex picks them
        /// at run time when the CPU has AVX2 and FMA. The source is VectorIndex/KernelCore.swift.
        .target(
            name: "VectorKernelsHaswell",
            path: "Services/VectorSearch/VectorKernelsHaswell",
            swiftSettings: [.unsafeFlags(["-target-cpu", "haswell"]), .unsafeFlags(["-O"], .when(configuration: .debug))]
        ),
        .target(
            name: "VectorIndex",
            dependencies: ["CPrefetch", .target(name: "VectorKernelsHaswell", condition: .when(platforms: [.linux, .macOS]))],
            path: "Services/VectorSearch/VectorIndex",
            // Optimized in debug builds too: the tests build 40k-node graphs.
            swiftSettings: [
                .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
                .unsafeFlags(["-O", "-enforce-exclusivity=unchecked"], .when(configuration: .debug)),
            ]
        ),

        /// The vector service's logic: collections, durable points (LevelDB + write log), graph
        /// snapshots and replay, payload filters, BM25 hybrid scoring, degraded mode.
        .target(
            name: "VectorSearchKit",
            dependencies: [
                "VectorIndex", "KBLevelDB", "KBProto", "KBRPC", "KBRuntime", "KBTime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/VectorSearch/VectorSearchKit"
        ),
        /// `vector-search`: serves kb.vector.v1.VectorSearch.
        .executableTarget(
            name: "vector-search",
            dependencies: ["VectorSearchKit", "KBRPC", "KBRuntime"],
            path: "Services/VectorSearch/vector-search"
        ),

        /// VKB's logic: the HTTP API over the graph store's RPC, the page and its assets, the
        /// OpenAPI document, security (token, rate limit, size limit, CSP).
        .target(
            name: "VKBKit",
            dependencies: [
                "KBKnowledge", "KBKnowledgeTransfer", "KBProto", "KBRPC", "KBRuntime", "KBTime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/VKB/VKBKit",
            resources: [.copy("Web")]
        ),
        /// `vkb`: serves the API and the page; `vkb start|stop|restart|status|logs` manage it.
        .executableTarget(
            name: "vkb",
            dependencies: [
                "VKBKit", "LauncherKit", "KBProto", "KBRPC", "KBRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/VKB/vkb"
        ),

        // MARK: Operator tools

        /// The logic of `ukb`: import and export over RPC, text output, the progress bar.
        .target(
            name: "UKBKit",
            dependencies: [
                "KBKnowledge", "KBProto", "KBRPC", "KBRuntime",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MCP", package: "swift-sdk"),
            ],
            path: "Tools/UKB/UKBKit"
        ),
        /// `ukb`: the knowledge CLI, a client of graph-store.
        .executableTarget(
            name: "ukb",
            dependencies: [
                "UKBKit", "KBKnowledge", "KBKnowledgeTransfer", "KBLearning", "KBSessions", "KBProto", "KBRPC", "KBRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tools/UKB/ukb"
        ),

        /// The launcher's logic: the service catalog, process supervision, health polling.
        .target(
            name: "LauncherKit",
            dependencies: ["KBRuntime", "KBRPC", "KBProto"],
            path: "Tools/Launcher/LauncherKit"
        ),
        /// `kb`: start, watch and stop the whole system on one machine.
        .executableTarget(
            name: "kb",
            dependencies: [
                "LauncherKit", "KBEmbeddings", "KBHTTPClient", "KBProto", "KBRPC", "KBRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tools/Launcher/kb"
        ),

        // MARK: Benchmarks (run on demand: swift run -c release rpc-benchmark)
        // Their shared helpers are the package Benchmarks/BenchmarkSupport; the gRPC reference is
        // the package Benchmarks/GRPCReference, which this package never builds.

        .executableTarget(
            name: "rpc-benchmark",
            dependencies: [
                .product(name: "BenchmarkSupport", package: "BenchmarkSupport"),
                "KBRPC",
                "KBProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/RPCBenchmark"
        ),

        .executableTarget(
            name: "graph-benchmark",
            dependencies: [.product(name: "BenchmarkSupport", package: "BenchmarkSupport"), "KBLevelDB", "KBProto", "KBRPC", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            path: "Benchmarks/GraphBenchmark",
            exclude: ["kuzu_reference.py"]
        ),

        .executableTarget(
            name: "budget-benchmark",
            dependencies: [.product(name: "BenchmarkSupport", package: "BenchmarkSupport"), "BudgetKit", "KBProto", "KBRPC", "KBRuntime", "KBSQLite", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")],
            path: "Benchmarks/BudgetBenchmark"
        ),

        .executableTarget(
            name: "vector-benchmark",
            dependencies: [.product(name: "BenchmarkSupport", package: "BenchmarkSupport"), "VectorIndex", "KBProto", "KBRPC"],
            path: "Benchmarks/VectorBenchmark",
            exclude: ["references.py"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),

        .executableTarget(
            name: "embedding-benchmark",
            dependencies: [.product(name: "BenchmarkSupport", package: "BenchmarkSupport"), "KBEmbeddings", "VectorIndex"],
            path: "Benchmarks/EmbeddingBenchmark",
            exclude: ["references.py"]
        ),

        .executableTarget(
            name: "vkb-benchmark",
            dependencies: [.product(name: "BenchmarkSupport", package: "BenchmarkSupport"), "KBKnowledge", "KBProto", "KBRPC"],
            path: "Benchmarks/VKBBenchmark",
            exclude: ["browser_bench.py", "reference_server.js"]
        ),

        .executableTarget(
            name: "inference-benchmark",
            dependencies: [
                .product(name: "BenchmarkSupport", package: "BenchmarkSupport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Benchmarks/InferenceBenchmark"
        ),

        // MARK: Tests

        /// A service process made of the runtime alone, for integration, fault and interop tests.
        .executableTarget(
            name: "kb-fixture-service",
            dependencies: ["KBRuntime", "KBRPC", "KBProto"],
            path: "Tests/Fixtures/FixtureService"
        ),
        /// Helpers the test targets share: free ports, service processes, HTTP GETs.
        .target(
            name: "KBTestSupport",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/Support"
        ),
        .testTarget(
            name: "KBRPCTests",
            dependencies: [
                "KBRPC",
                "KBProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Tests/KBRPCTests"
        ),
        .testTarget(
            name: "KBHTTPClientTests",
            dependencies: [
                "KBHTTPClient", "KBTestSupport",
            ],
            path: "Tests/KBHTTPClientTests"
        ),
        .testTarget(
            name: "InferenceKitTests",
            dependencies: [
                "InferenceKit", "KBEmbeddings", "KBHTTPClient", "KBKnowledge", "KBProto", "KBRPC", "KBRuntime", "KBSQLite", "KBTestSupport", "UKBKit",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/InferenceKitTests"
        ),
        .testTarget(
            name: "KBLevelDBTests",
            dependencies: ["KBLevelDB", "KBTestSupport"],
            path: "Tests/KBLevelDBTests"
        ),
        .testTarget(
            name: "GraphStoreTests",
            dependencies: ["GraphStoreKit", "KBKnowledge", "KBProto", "KBRPC", "KBLevelDB", "KBTestSupport"],
            path: "Tests/GraphStoreTests"
        ),
        .testTarget(
            name: "GraphServiceTests",
            dependencies: ["KBKnowledge", "KBProto", "KBRPC", "KBTestSupport"],
            path: "Tests/GraphServiceTests"
        ),
        .testTarget(
            name: "BudgetTests",
            dependencies: ["BudgetKit", "KBSQLite", "KBProto", "KBRPC", "KBRuntime", "KBTestSupport", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log")],
            path: "Tests/BudgetTests"
        ),
        .testTarget(
            name: "BudgetServiceTests",
            dependencies: ["KBProto", "KBRPC", "KBTestSupport"],
            path: "Tests/BudgetServiceTests"
        ),
        .testTarget(
            name: "VectorIndexTests",
            dependencies: ["VectorIndex", "KBTestSupport"],
            path: "Tests/VectorIndexTests"
        ),
        .testTarget(
            name: "VectorServiceTests",
            dependencies: ["VectorIndex", "VectorSearchKit", "KBProto", "KBRPC", "KBTestSupport"],
            path: "Tests/VectorServiceTests"
        ),
        .testTarget(
            name: "KBKnowledgeTests",
            dependencies: ["KBKnowledge", "KBProto"],
            path: "Tests/KBKnowledgeTests"
        ),
        .testTarget(
            name: "KBRuntimeTests",
            dependencies: [
                "KBRuntime", "KBRPC", "KBProto", "KBTime", "KBTestSupport",
                // The configuration declarations of every service, checked against the README.
                "BudgetKit", "GraphStoreKit", "InferenceKit", "KBEmbeddings", "UKBKit", "VKBKit", "VectorSearchKit",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            path: "Tests/KBRuntimeTests"
        ),
        .testTarget(
            name: "InteropTests",
            dependencies: ["KBRPC", "KBProto", "KBTestSupport"],
            path: "Tests/InteropTests",
            exclude: ["c"]
        ),
        .testTarget(
            name: "VKBTests",
            dependencies: [
                "VKBKit", "KBKnowledge", "KBProto", "KBRPC", "KBRuntime", "KBTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            path: "Tests/VKBTests",
            exclude: ["browser"]
        ),
        .testTarget(
            name: "KBSessionsTests",
            dependencies: ["KBSessions", "KBLearning", "KBTestSupport"],
            path: "Tests/KBSessionsTests",
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "KBEmbeddingsTests",
            dependencies: ["KBEmbeddings", "KBEmbeddingKernelsHaswell", "KBTestSupport"],
            path: "Tests/KBEmbeddingsTests",
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "LauncherTests",
            dependencies: ["LauncherKit", "KBTestSupport"],
            path: "Tests/LauncherTests"
        ),
        .testTarget(name: "DeployTests", dependencies: ["KBRuntime", "KBTestSupport"], path: "Tests/DeployTests"),
    ]
)
