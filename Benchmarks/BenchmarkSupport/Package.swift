// swift-tools-version:6.0
// What the benchmarks share: free ports, options, seeded data, processes, closed-loop measurement,
// percentiles, the pinned clock. Its own package so that the benchmarks of the main package and
// the gRPC reference (Benchmarks/GRPCReference, built only when the RPC benchmark runs) measure
// with the same code. Foundation only.
import PackageDescription

let package = Package(
    name: "BenchmarkSupport",
    platforms: [.macOS(.v15)],
    products: [.library(name: "BenchmarkSupport", targets: ["BenchmarkSupport"])],
    targets: [.target(name: "BenchmarkSupport")]
)
