import Foundation
import KBEmbeddings
import KBTestSupport

/// The committed reference (Fixtures/minilm-reference.json, written by
/// scripts/generate-embedding-fixture.py from sentence-transformers): texts, HuggingFace's token
/// ids and the float16-rounded embeddings.
struct ReferenceFixture: Sendable {
    let texts: [String]
    let tokenIDs: [[Int32]]
    let embeddings: [[Float]]

    static let url = packageRoot.appendingPathComponent("Tests/KBEmbeddingsTests/Fixtures/minilm-reference.json")

    static func load() throws -> ReferenceFixture {
        let data = try Data(contentsOf: url)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let texts = object["texts"] as? [String], let ids = object["token_ids"] as? [[NSNumber]],
              let blob = object["embeddings_float16_base64"] as? String, let bytes = Data(base64Encoded: blob),
              bytes.count == texts.count * TextEmbedder.dimension * 2, ids.count == texts.count
        else { throw FixtureError(message: "\(url.path) is not a reference fixture; regenerate it with scripts/generate-embedding-fixture.py") }
        var halves = [UInt16](repeating: 0, count: bytes.count / 2)
        _ = halves.withUnsafeMutableBytes { bytes.copyBytes(to: $0) }
        let floats = halves.map { halfToFloat(UInt16(littleEndian: $0)) }
        let dimension = TextEmbedder.dimension
        return ReferenceFixture(
            texts: texts,
            tokenIDs: ids.map { $0.map(\.int32Value) },
            embeddings: (0..<texts.count).map { Array(floats[$0 * dimension..<($0 + 1) * dimension]) }
        )
    }

    struct FixtureError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}

/// IEEE 754 half precision to single (portable: no Float16 type needed).
func halfToFloat(_ half: UInt16) -> Float {
    let sign = UInt32(half >> 15) << 31
    let exponent = Int((half >> 10) & 0x1F)
    let mantissa = UInt32(half & 0x3FF)
    if exponent == 0 {
        let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign == 0 ? magnitude : -magnitude
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
}

/// The cosine of two vectors (the reference is rounded, so not exactly unit length).
func cosine(_ a: [Float], _ b: [Float]) -> Double {
    var dot = 0.0, aa = 0.0, bb = 0.0
    for index in a.indices {
        dot += Double(a[index]) * Double(b[index])
        aa += Double(a[index]) * Double(a[index])
        bb += Double(b[index]) * Double(b[index])
    }
    return dot / max((aa * bb).squareRoot(), 1e-30)
}

/// One engine for every test in the process (loading maps 90 MB and copies the QKV weights).
enum SharedEngine {
    static let result: Result<TextEmbedder, Error> = Result { try TextEmbedder(threads: 2) }
    static func embedder() throws -> TextEmbedder { try result.get() }
}
