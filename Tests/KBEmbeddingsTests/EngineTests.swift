import Foundation
import KBEmbeddings
import KBEmbeddingKernelsHaswell
import Testing

@Suite("Embedding engine pieces")
struct EngineTests {
    @Test("OpenBLAS's core type follows the CPU: AVX-512+BF16 CooperLake, AVX-512 SkylakeX, AVX2+FMA Haswell, else its own")
    func coreTypeFollowsCPUFeatures() {
        let avx512: Set = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]
        #expect(OpenBLAS.coreType(forCPUFlags: avx512.union(["avx512_bf16"])) == "CooperLake")
        #expect(OpenBLAS.coreType(forCPUFlags: avx512) == "SkylakeX")
        #expect(OpenBLAS.coreType(forCPUFlags: ["avx", "avx2", "fma"]) == "Haswell")
        #expect(OpenBLAS.coreType(forCPUFlags: ["sse2", "avx"]) == nil)
    }

    @Test("the loaded OpenBLAS runs the core type chosen for this CPU")
    func loadedCoreIsTheChosenOne() throws {
        let blas = try SharedEngine.embedder().blas
        print("OpenBLAS: \(blas.libraryPath), core \(blas.coreName), \(blas.coreTypeChoice)")
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let chosen = OpenBLAS.coreType(forCPUFlags: CPUFeatures.flags) {
            #expect(blas.coreName.lowercased() == chosen.lowercased(), "\(blas.coreTypeChoice)")
        }
    }

    @Test("the SIMD exp and erf agree with the C library's (both builds)")
    func simdMathIsAccurate() {
        var builds: [(exp: (SIMD16<Float>) -> SIMD16<Float>, erf: (SIMD16<Float>) -> SIMD16<Float>)] = [(KBEmbeddings.EncoderLoops.exp, KBEmbeddings.EncoderLoops.erf)]
        if CPUFeatures.hasAVX2FMA { builds.append((HaswellEncoderLoops.exp, HaswellEncoderLoops.erf)) }
        for build in builds { checkMath(exp: build.exp, erf: build.erf) }
    }

    func checkMath(exp simdExp: (SIMD16<Float>) -> SIMD16<Float>, erf simdErf: (SIMD16<Float>) -> SIMD16<Float>) {
        var worstExp: Float = 0, worstErf: Float = 0
        var x: Float = -90
        while x < 87.5 {
            let lanes = SIMD16<Float>((0..<16).map { x + Float($0) * 0.0137 })
            let e = simdExp(lanes), r = simdErf(lanes)
            for lane in 0..<16 {
                let reference = Foundation.exp(Double(lanes[lane]))
                if reference > 1e-30 { worstExp = max(worstExp, Float(abs(Double(e[lane]) - reference) / reference)) }
                worstErf = max(worstErf, Float(abs(Double(r[lane]) - Foundation.erf(Double(lanes[lane])))))
            }
            x += 0.219
        }
        #expect(worstExp < 3e-7, "exp relative error \(worstExp)")
        #expect(worstErf < 1e-6, "erf absolute error \(worstErf)")
        #expect(simdExp(SIMD16(repeating: -1000)) == SIMD16(repeating: 0))
    }

    @Test("WordPiece: continuations, [UNK] for an uncoverable or over-long word, truncation at 256 with [SEP] last")
    func wordPieceRules() throws {
        let tokenizer = try SharedEngine.embedder().tokenizer
        let vocabulary = tokenizer.vocabulary
        let ids = tokenizer.tokenIDs("Unaffable!")
        #expect(ids.first == tokenizer.classifierID && ids.last == tokenizer.separatorID)
        #expect(ids.count > 3 && ids.dropFirst().dropLast().allSatisfy { $0 != tokenizer.unknownID })
        #expect(tokenizer.tokenIDs(String(repeating: "a", count: 101)) == [tokenizer.classifierID, tokenizer.unknownID, tokenizer.separatorID])
        #expect(tokenizer.tokenIDs("hello😀") == [tokenizer.classifierID, tokenizer.unknownID, tokenizer.separatorID])
        #expect(tokenizer.tokenIDs("Héllo") == tokenizer.tokenIDs("hello"))
        #expect(tokenizer.tokenIDs("hello") == [tokenizer.classifierID, vocabulary["hello"]!, tokenizer.separatorID])
        let long = tokenizer.tokenIDs(String(repeating: "word ", count: 1000))
        #expect(long.count == 256 && long.last == tokenizer.separatorID)
        #expect(tokenizer.tokenIDs("") == [tokenizer.classifierID, tokenizer.separatorID])
    }

    @Test("texts embed the same alone, in a batch, and in any order")
    func batchingDoesNotChangeVectors() throws {
        let embedder = try SharedEngine.embedder()
        let texts = ["a cat sat on the mat", "", "knowledge graphs store entities and relations", String(repeating: "longer text ", count: 60), "日本語"]
        let batch = embedder.embed(texts)
        let reversed = embedder.embed(Array(texts.reversed()))
        for (index, text) in texts.enumerated() {
            let alone = embedder.embed(text)
            #expect(cosine(alone, batch[index]) > 0.999999)
            #expect(cosine(reversed[texts.count - 1 - index], batch[index]) > 0.999999)
        }
        #expect(cosine(batch[0], batch[2]) < 0.9)
    }
}
