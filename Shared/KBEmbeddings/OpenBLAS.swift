import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Debian's OpenBLAS (`libopenblas-dev`), loaded with `dlopen` at first use rather than linked:
/// OpenBLAS picks its kernels ("core type") in a library constructor from `OPENBLAS_CORETYPE`, so
/// the variable must be set before the library is loaded. Debian's build detects some CPUs
/// badly (a Sapphire Rapids Xeon as "Prescott": 12–19 GFLOPS instead of 75–150), so the core
/// type is chosen here from the CPU's features unless the operator set `OPENBLAS_CORETYPE`.
public final class OpenBLAS: @unchecked Sendable {
    typealias SGEMM = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    typealias SetThreads = @convention(c) (Int32) -> Void
    typealias GetThreads = @convention(c) () -> Int32
    typealias CoreName = @convention(c) () -> UnsafeMutablePointer<CChar>?

    /// The library every engine in the process shares (it is process-wide state anyway).
    public static func shared() throws -> OpenBLAS { try loaded.get() }
    private static let loaded: Result<OpenBLAS, EmbeddingError> = Result { try OpenBLAS() }.mapError {
        $0 as? EmbeddingError ?? EmbeddingError(.blasUnavailable, "\($0)")
    }

    /// The core type OpenBLAS runs (`openblas_get_corename()`), e.g. `Haswell`, `SkylakeX`.
    public let coreName: String
    /// What decided the core type: the operator's `OPENBLAS_CORETYPE`, this CPU's features, or OpenBLAS's own detection.
    public let coreTypeChoice: String
    /// The loaded file.
    public let libraryPath: String
    private let sgemmFunction: SGEMM
    private let setThreadsFunction: SetThreads
    private let getThreadsFunction: GetThreads

    /// The library paths tried, in order.
    static let candidatePaths = [
        "libopenblas.so.0",
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
        "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
        "libopenblas.so",
        "libopenblas.dylib",
    ]

    private init() throws {
        let environment = ProcessInfo.processInfo.environment
        let alreadyLoaded = Self.candidatePaths.contains { dlopen($0, RTLD_NOW | RTLD_NOLOAD) != nil }
        if let configured = environment["OPENBLAS_CORETYPE"], !configured.isEmpty {
            coreTypeChoice = "OPENBLAS_CORETYPE=\(configured) from the environment"
        } else if alreadyLoaded {
            coreTypeChoice = "OpenBLAS's own detection (the library was loaded before the engine could choose)"
        } else if let chosen = Self.coreType(forCPUFlags: CPUFeatures.flags) {
            setenv("OPENBLAS_CORETYPE", chosen, 1)
            coreTypeChoice = "\(chosen), chosen from the CPU's features"
        } else {
            coreTypeChoice = "OpenBLAS's own detection (no AVX2/FMA or AVX-512 on this CPU)"
        }
        var handle: UnsafeMutableRawPointer?
        var errors: [String] = []
        var path = ""
        for candidate in Self.candidatePaths {
            if let opened = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
                handle = opened
                path = candidate
                break
            }
            errors.append(dlerror().map { String(cString: $0) } ?? candidate)
        }
        guard let handle else {
            throw EmbeddingError(.blasUnavailable, "OpenBLAS could not be loaded (\(errors.joined(separator: "; "))); install it with `apt-get install libopenblas-dev` (scripts/setup-system.sh does)")
        }
        func symbol<T>(_ name: String, as type: T.Type) throws -> T {
            guard let address = dlsym(handle, name) else {
                throw EmbeddingError(.blasUnavailable, "\(path) has no \(name); is it OpenBLAS (libopenblas-dev)?")
            }
            return unsafeBitCast(address, to: type)
        }
        sgemmFunction = try symbol("cblas_sgemm", as: SGEMM.self)
        setThreadsFunction = try symbol("openblas_set_num_threads", as: SetThreads.self)
        getThreadsFunction = try symbol("openblas_get_num_threads", as: GetThreads.self)
        let coreNameFunction = try symbol("openblas_get_corename", as: CoreName.self)
        coreName = coreNameFunction().map { String(cString: $0) } ?? "unknown"
        libraryPath = path
    }

    /// The OpenBLAS core type for a CPU with these `/proc/cpuinfo` flags: AVX-512 with BF16 →
    /// CooperLake, AVX-512 → SkylakeX, AVX2 with FMA → Haswell; nil leaves OpenBLAS's own choice.
    public static func coreType(forCPUFlags flags: Set<String>) -> String? {
        let avx512 = ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"].allSatisfy(flags.contains)
        if avx512 && flags.contains("avx512_bf16") { return "CooperLake" }
        if avx512 { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    /// How many threads OpenBLAS uses inside one call.
    public var threads: Int {
        get { Int(getThreadsFunction()) }
        set { setThreadsFunction(Int32(newValue)) }
    }

    /// `C = alpha · A · Bᵀ + beta · C` (row-major; A is m×k with row stride lda, B is n×k with
    /// row stride ldb — a PyTorch Linear weight — and C is m×n with row stride ldc).
    @inline(__always)
    public func multiplyTransposed(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        sgemmFunction(101, 111, 112, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `C = alpha · A · B + beta · C` (row-major; A is m×k, B is k×n).
    @inline(__always)
    public func multiply(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        sgemmFunction(101, 111, 111, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// The CPU's feature flags as the kernel reports them (the `flags` line of /proc/cpuinfo, which is
/// CPUID as the kernel sees it, with features the OS does not enable removed).
public enum CPUFeatures {
    /// The flags; empty where /proc/cpuinfo does not exist.
    public static let flags: Set<String> = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: " ").map(String.init))
    }()

    /// Whether the Haswell build of the encoder's loops may run here (AVX2, FMA and what `-target-cpu haswell` also assumes).
    public static let hasAVX2FMA: Bool = ["avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "popcnt"].allSatisfy(flags.contains)
        && (flags.contains("lzcnt") || flags.contains("abm"))
}
