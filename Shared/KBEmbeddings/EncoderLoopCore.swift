// Shared, through a symbolic link, by KBEmbeddings (compiled for the baseline x86-64 or arm64) and
// KBEmbeddingKernelsHaswell (the same code compiled with -target-cpu haswell: AVX2 and FMA). Keep
// it free of other dependencies.

/// The encoder's element-wise work in SIMD16 loops, each fused into as few passes over memory as
/// it can: bias + GELU, bias + residual + LayerNorm, softmax, the embedding sum, mean pooling with
/// L2 normalisation. Rows are `width` floats, `width` a multiple of 16.
public enum EncoderLoops {
    /// `x = x + bias` on `rows` rows.
    public static func addBias(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, width: Int) {
        let raw = UnsafeMutableRawPointer(x), rawBias = UnsafeRawPointer(bias)
        for row in 0..<rows {
            let rowOffset = row &* width &* 4
            var column = 0
            while column < width {
                let offset = column &* 4
                let v = raw.loadUnaligned(fromByteOffset: rowOffset &+ offset, as: SIMD16<Float>.self) + rawBias.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                raw.storeBytes(of: v, toByteOffset: rowOffset &+ offset, as: SIMD16<Float>.self)
                column &+= 16
            }
        }
    }

    /// `x = GELU(x + bias)` on `rows` rows (GELU with erf, as BERT's "gelu").
    public static func addBiasGELU(_ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, width: Int) {
        let raw = UnsafeMutableRawPointer(x), rawBias = UnsafeRawPointer(bias)
        let half = SIMD16<Float>(repeating: 0.5), inverseRoot2 = SIMD16<Float>(repeating: 0.70710678118654752)
        for row in 0..<rows {
            let rowOffset = row &* width &* 4
            var column = 0
            while column < width {
                let offset = column &* 4
                let v = raw.loadUnaligned(fromByteOffset: rowOffset &+ offset, as: SIMD16<Float>.self) + rawBias.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                let g = half * v * (1 + erf(v * inverseRoot2))
                raw.storeBytes(of: g, toByteOffset: rowOffset &+ offset, as: SIMD16<Float>.self)
                column &+= 16
            }
        }
    }

    /// `residual = LayerNorm(sublayer + bias + residual) · gamma + beta`, row by row.
    public static func addBiasResidualLayerNorm(
        _ sublayer: UnsafePointer<Float>, bias: UnsafePointer<Float>, residual: UnsafeMutablePointer<Float>,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, rows: Int, width: Int, epsilon: Float
    ) {
        let rawSub = UnsafeRawPointer(sublayer), rawBias = UnsafeRawPointer(bias), rawResidual = UnsafeMutableRawPointer(residual)
        for row in 0..<rows {
            let rowOffset = row &* width &* 4
            var sum = SIMD16<Float>()
            var column = 0
            while column < width {
                let offset = column &* 4
                let v = rawSub.loadUnaligned(fromByteOffset: rowOffset &+ offset, as: SIMD16<Float>.self)
                    + rawBias.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                    + rawResidual.loadUnaligned(fromByteOffset: rowOffset &+ offset, as: SIMD16<Float>.self)
                rawResidual.storeBytes(of: v, toByteOffset: rowOffset &+ offset, as: SIMD16<Float>.self)
                sum += v
                column &+= 16
            }
            normalizeRow(residual + row &* width, mean: sum.sum() / Float(width), gamma: gamma, beta: beta, width: width, epsilon: epsilon)
        }
    }

    /// `x = LayerNorm(x) · gamma + beta`, row by row.
    public static func layerNorm(_ x: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, rows: Int, width: Int, epsilon: Float) {
        for row in 0..<rows {
            let rowPointer = x + row &* width
            let raw = UnsafeRawPointer(rowPointer)
            var sum = SIMD16<Float>()
            var column = 0
            while column < width {
                sum += raw.loadUnaligned(fromByteOffset: column &* 4, as: SIMD16<Float>.self)
                column &+= 16
            }
            normalizeRow(rowPointer, mean: sum.sum() / Float(width), gamma: gamma, beta: beta, width: width, epsilon: epsilon)
        }
    }

    /// One row's variance pass and the scale-and-shift pass (the row is in L1 by now).
    @inline(__always)
    static func normalizeRow(_ row: UnsafeMutablePointer<Float>, mean: Float, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, width: Int, epsilon: Float) {
        let raw = UnsafeMutableRawPointer(row), rawGamma = UnsafeRawPointer(gamma), rawBeta = UnsafeRawPointer(beta)
        let meanVector = SIMD16<Float>(repeating: mean)
        var squares = SIMD16<Float>()
        var column = 0
        while column < width {
            let d = raw.loadUnaligned(fromByteOffset: column &* 4, as: SIMD16<Float>.self) - meanVector
            squares += d * d
            column &+= 16
        }
        let inverse = SIMD16<Float>(repeating: 1 / (squares.sum() / Float(width) + epsilon).squareRoot())
        column = 0
        while column < width {
            let offset = column &* 4
            let d = raw.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self) - meanVector
            let y = d * inverse * rawGamma.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self) + rawBeta.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
            raw.storeBytes(of: y, toByteOffset: offset, as: SIMD16<Float>.self)
            column &+= 16
        }
    }

    /// Softmax of each of `rows` rows of `count` scores (row stride `stride`), in place.
    public static func softmaxRows(_ scores: UnsafeMutablePointer<Float>, rows: Int, count: Int, stride: Int) {
        for row in 0..<rows {
            let p = scores + row &* stride
            let raw = UnsafeMutableRawPointer(p)
            var maximumVector = SIMD16<Float>(repeating: -.infinity)
            var column = 0
            while column &+ 16 <= count {
                maximumVector = pointwiseMax(maximumVector, raw.loadUnaligned(fromByteOffset: column &* 4, as: SIMD16<Float>.self))
                column &+= 16
            }
            var maximum = maximumVector.max()
            while column < count {
                maximum = Swift.max(maximum, p[column])
                column &+= 1
            }
            let m = SIMD16<Float>(repeating: maximum)
            var sumVector = SIMD16<Float>()
            column = 0
            while column &+ 16 <= count {
                let e = exp(raw.loadUnaligned(fromByteOffset: column &* 4, as: SIMD16<Float>.self) - m)
                raw.storeBytes(of: e, toByteOffset: column &* 4, as: SIMD16<Float>.self)
                sumVector += e
                column &+= 16
            }
            var sum = sumVector.sum()
            if column < count {
                var tail = SIMD16<Float>(repeating: -.infinity)
                for lane in 0..<(count &- column) { tail[lane] = p[column &+ lane] }
                let e = exp(tail - m)
                for lane in 0..<(count &- column) {
                    p[column &+ lane] = e[lane]
                    sum += e[lane]
                }
            }
            let inverse = SIMD16<Float>(repeating: 1 / sum)
            column = 0
            while column &+ 16 <= count {
                raw.storeBytes(of: raw.loadUnaligned(fromByteOffset: column &* 4, as: SIMD16<Float>.self) * inverse, toByteOffset: column &* 4, as: SIMD16<Float>.self)
                column &+= 16
            }
            while column < count {
                p[column] *= inverse[0]
                column &+= 1
            }
        }
    }

    /// `out = words[id] + positions[i] + tokenType` for each token, then LayerNorm.
    public static func embed(
        _ ids: UnsafePointer<Int32>, count: Int, words: UnsafePointer<Float>, positions: UnsafePointer<Float>, tokenType: UnsafePointer<Float>,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, width: Int, epsilon: Float
    ) {
        let rawType = UnsafeRawPointer(tokenType)
        for token in 0..<count {
            let rawWord = UnsafeRawPointer(words + Int(ids[token]) &* width), rawPosition = UnsafeRawPointer(positions + token &* width)
            let rawOut = UnsafeMutableRawPointer(out + token &* width)
            var column = 0
            while column < width {
                let offset = column &* 4
                let v = rawWord.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self) + rawPosition.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self) + rawType.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                rawOut.storeBytes(of: v, toByteOffset: offset, as: SIMD16<Float>.self)
                column &+= 16
            }
        }
        layerNorm(out, gamma: gamma, beta: beta, rows: count, width: width, epsilon: epsilon)
    }

    /// The mean of `rows` rows, scaled to unit length, written to `out`.
    public static func meanPoolNormalize(_ x: UnsafePointer<Float>, rows: Int, width: Int, into out: UnsafeMutablePointer<Float>) {
        let rawOut = UnsafeMutableRawPointer(out)
        var column = 0
        while column < width {
            var sum = SIMD16<Float>()
            for row in 0..<rows { sum += UnsafeRawPointer(x + row &* width).loadUnaligned(fromByteOffset: column &* 4, as: SIMD16<Float>.self) }
            rawOut.storeBytes(of: sum / Float(Swift.max(rows, 1)), toByteOffset: column &* 4, as: SIMD16<Float>.self)
            column &+= 16
        }
        var squares = SIMD16<Float>()
        column = 0
        while column < width {
            let v = rawOut.loadUnaligned(fromByteOffset: column &* 4, as: SIMD16<Float>.self)
            squares += v * v
            column &+= 16
        }
        let scale = SIMD16<Float>(repeating: 1 / Swift.max(squares.sum().squareRoot(), 1e-12))
        column = 0
        while column < width {
            rawOut.storeBytes(of: rawOut.loadUnaligned(fromByteOffset: column &* 4, as: SIMD16<Float>.self) * scale, toByteOffset: column &* 4, as: SIMD16<Float>.self)
            column &+= 16
        }
    }

    /// eˣ lane by lane (Cephes' expf: range reduction by ln 2, a degree-5 polynomial, the exponent
    /// set through the bits); relative error about 1e-7 on [-87, 88], 0 below -87.
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let clamped = pointwiseMin(pointwiseMax(x, SIMD16(repeating: -87.33654)), SIMD16(repeating: 88))
        // Round x·log2(e) to the nearest integer by adding 1.5·2²³: the sum's low mantissa bits
        // then hold that integer (the generic `rounded` and Int32 conversions would go lane by lane).
        let magic = SIMD16<Float>(repeating: 12_582_912)
        let shifted = clamped * 1.44269504088896341 + magic
        let n = shifted - magic
        var r = clamped - n * 0.693359375
        r = r + n * 2.12194440e-4
        var p = SIMD16<Float>(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * r * r + r + 1
        let bits = (unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        let scale = unsafeBitCast(bits, to: SIMD16<Float>.self)
        let result = y * scale
        return result.replacing(with: 0, where: x .< -87.33654)
    }

    /// erf(x) lane by lane: the rational approximation Eigen and XLA use (odd degree-13 numerator,
    /// even degree-8 denominator on [-4, 4]); absolute error below 5e-7.
    @inline(__always)
    public static func erf(_ a: SIMD16<Float>) -> SIMD16<Float> {
        let x = pointwiseMin(pointwiseMax(a, SIMD16(repeating: -4)), SIMD16(repeating: 4))
        let x2 = x * x
        var p = x2 * -2.72614225801306e-10 + 2.77068142495902e-08
        p = x2 * p + -2.10102402082508e-06
        p = x2 * p + -5.69250639462346e-05
        p = x2 * p + -7.34990630326855e-04
        p = x2 * p + -2.95459980854025e-03
        p = x2 * p + -1.60960333262415e-02
        p = x * p
        var q = x2 * -1.45660718464996e-05 + -2.13374055278905e-04
        q = x2 * q + -1.68282697438203e-03
        q = x2 * q + -7.37332916720468e-03
        q = x2 * q + -1.42647390514189e-02
        return p / q
    }
}
