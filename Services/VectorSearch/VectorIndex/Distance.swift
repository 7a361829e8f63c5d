#if arch(x86_64)
import VectorKernelsHaswell
#endif

/// How two vectors are compared. Every metric is turned into a distance (smaller is nearer):
/// cosine stores unit vectors and uses `1 - dot`, dot product uses `-dot`, euclidean the squared
/// L2 distance. `score` turns a distance back into what callers expect (cosine similarity, dot
/// product, euclidean distance).
public enum Metric: String, Sendable, Codable, CaseIterable {
    case cosine, dot, euclidean

    /// The score shown to callers for a distance.
    public func score(distance: Float) -> Float {
        switch self {
        case .cosine: 1 - distance
        case .dot: -distance
        case .euclidean: distance.squareRoot()
        }
    }

    /// Whether a higher score is better.
    public var higherIsBetter: Bool { self != .euclidean }
}

/// The kernels the index calls: the AVX2 build of `SIMDKernels` when this CPU has AVX2 and FMA
/// (read once from /proc/cpuinfo), else the baseline build.
public enum Kernels {
    /// Whether the AVX2 kernels are in use.
    public static let usesAVX2: Bool = {
        #if arch(x86_64) && os(Linux)
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let set = Set(flags.split(separator: " ").map(String.init))
        return ["avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "popcnt", "lzcnt"].allSatisfy { set.contains($0) || ($0 == "lzcnt" && set.contains("abm")) }
        #else
        return false
        #endif
    }()

    /// The dot product of `count` floats.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        #if arch(x86_64)
        if usesAVX2 { return HaswellKernels.dot(a, b, count) }
        #endif
        return SIMDKernels.dot(a, b, count)
    }

    /// The squared euclidean distance of `count` floats.
    @inline(__always)
    public static func squaredL2(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        #if arch(x86_64)
        if usesAVX2 { return HaswellKernels.squaredL2(a, b, count) }
        #endif
        return SIMDKernels.squaredL2(a, b, count)
    }

    /// The kernel for `metric` on this CPU and how its value becomes the distance
    /// (`offset + scale × kernel`): no per-call branching in the walk.
    static func resolved(_ metric: Metric) -> ((UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Float, Float, Float) {
        #if arch(x86_64)
        if usesAVX2 {
            switch metric {
            case .cosine: return (HaswellKernels.dot, -1, 1)
            case .dot: return (HaswellKernels.dot, -1, 0)
            case .euclidean: return (HaswellKernels.squaredL2, 1, 0)
            }
        }
        #endif
        switch metric {
        case .cosine: return (SIMDKernels.dot, -1, 1)
        case .dot: return (SIMDKernels.dot, -1, 0)
        case .euclidean: return (SIMDKernels.squaredL2, 1, 0)
        }
    }

    /// Float × code dot product (int8 quantization), AVX2 when available.
    @inline(__always)
    static func dotCodes(_ a: UnsafePointer<Float>, _ codes: UnsafePointer<UInt8>, _ count: Int) -> Float {
        #if arch(x86_64)
        if usesAVX2 { return HaswellKernels.dotCodes(a, codes, count) }
        #endif
        return SIMDKernels.dotCodes(a, codes, count)
    }

    /// Squared distance of a shifted query to a quantized vector, AVX2 when available.
    @inline(__always)
    static func squaredL2Codes(_ a: UnsafePointer<Float>, _ steps: UnsafePointer<Float>, _ codes: UnsafePointer<UInt8>, _ count: Int) -> Float {
        #if arch(x86_64)
        if usesAVX2 { return HaswellKernels.squaredL2Codes(a, steps, codes, count) }
        #endif
        return SIMDKernels.squaredL2Codes(a, steps, codes, count)
    }

    /// The distance of `metric` between `a` and `b` (both already normalised for cosine).
    @inline(__always)
    static func distance(_ metric: Metric, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        switch metric {
        case .cosine: 1 - dot(a, b, count)
        case .dot: -dot(a, b, count)
        case .euclidean: squaredL2(a, b, count)
        }
    }
}
