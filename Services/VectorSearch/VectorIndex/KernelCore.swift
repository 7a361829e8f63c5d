// Shared, through a symbolic link, by VectorIndex (compiled for the baseline x86-64 or arm64) and
// VectorKernelsHaswell (the same code compiled with -target-cpu haswell: AVX2 registers). Keep it
// free of other dependencies.
/// SIMD distance kernels over contiguous `Float` storage: 32 lanes per step in two `SIMD16`
/// accumulators (the compiler maps them onto the widest vector registers the target has), a
/// scalar tail for dimensions that are not a multiple of 32.
public enum SIMDKernels {
    /// The dot product of `count` floats at `a` and `b`.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        var sum0 = SIMD16<Float>(), sum1 = SIMD16<Float>()
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var index = 0
        while index + 32 <= count {
            let offset = index &* 4
            sum0 += ra.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
            sum1 += ra.loadUnaligned(fromByteOffset: offset &+ 64, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: offset &+ 64, as: SIMD16<Float>.self)
            index &+= 32
        }
        if index + 16 <= count {
            let offset = index &* 4
            sum0 += ra.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
            index &+= 16
        }
        var total = (sum0 + sum1).sum()
        while index < count {
            total += a[index] * b[index]
            index &+= 1
        }
        return total
    }

    /// The squared euclidean distance of `count` floats at `a` and `b`.
    @inline(__always)
    public static func squaredL2(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        var sum0 = SIMD16<Float>(), sum1 = SIMD16<Float>()
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var index = 0
        while index + 32 <= count {
            let offset = index &* 4
            let d0 = ra.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self) - rb.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
            let d1 = ra.loadUnaligned(fromByteOffset: offset &+ 64, as: SIMD16<Float>.self) - rb.loadUnaligned(fromByteOffset: offset &+ 64, as: SIMD16<Float>.self)
            sum0 += d0 * d0
            sum1 += d1 * d1
            index &+= 32
        }
        if index + 16 <= count {
            let offset = index &* 4
            let d0 = ra.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self) - rb.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
            sum0 += d0 * d0
            index &+= 16
        }
        var total = (sum0 + sum1).sum()
        while index < count {
            let d = a[index] - b[index]
            total += d * d
            index &+= 1
        }
        return total
    }

    /// The dot product of `count` floats with `count` unsigned 8-bit codes (int8 scalar quantization).
    @inline(__always)
    public static func dotCodes(_ a: UnsafePointer<Float>, _ codes: UnsafePointer<UInt8>, _ count: Int) -> Float {
        var sum0 = SIMD16<Float>(), sum1 = SIMD16<Float>()
        let ra = UnsafeRawPointer(a), rc = UnsafeRawPointer(codes)
        var index = 0
        while index + 32 <= count {
            let c0 = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: rc.loadUnaligned(fromByteOffset: index, as: SIMD16<UInt8>.self)))
            let c1 = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: rc.loadUnaligned(fromByteOffset: index &+ 16, as: SIMD16<UInt8>.self)))
            sum0 += ra.loadUnaligned(fromByteOffset: index &* 4, as: SIMD16<Float>.self) * c0
            sum1 += ra.loadUnaligned(fromByteOffset: (index &+ 16) &* 4, as: SIMD16<Float>.self) * c1
            index &+= 32
        }
        var total = (sum0 + sum1).sum()
        while index < count {
            total += a[index] * Float(codes[index])
            index &+= 1
        }
        return total
    }

    /// Σ (a_i − step_i × code_i)²: the squared distance of a shifted query to a quantized vector.
    @inline(__always)
    public static func squaredL2Codes(_ a: UnsafePointer<Float>, _ steps: UnsafePointer<Float>, _ codes: UnsafePointer<UInt8>, _ count: Int) -> Float {
        var sum = SIMD16<Float>()
        let ra = UnsafeRawPointer(a), rs = UnsafeRawPointer(steps), rc = UnsafeRawPointer(codes)
        var index = 0
        while index + 16 <= count {
            let c = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: rc.loadUnaligned(fromByteOffset: index, as: SIMD16<UInt8>.self)))
            let d = ra.loadUnaligned(fromByteOffset: index &* 4, as: SIMD16<Float>.self) - rs.loadUnaligned(fromByteOffset: index &* 4, as: SIMD16<Float>.self) * c
            sum += d * d
            index &+= 16
        }
        var total = sum.sum()
        while index < count {
            let d = a[index] - steps[index] * Float(codes[index])
            total += d * d
            index &+= 1
        }
        return total
    }
}
