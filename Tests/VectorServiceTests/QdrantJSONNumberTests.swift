import Foundation
import Testing
import VectorSearchKit

/// The Qdrant port reads vector components without strtod's slow path for long decimals
/// (`QdrantDecimal.float`); every value must come out exactly as `Float(Double(text))`, the
/// reading it replaces, and every number as the exact `Double`.
@Suite("Qdrant JSON numbers")
struct QdrantJSONNumberTests {
    /// Numbers as JSON texts: float32 values as Python prints them (the shortest text of the
    /// double: `0.10000000149011612`), random doubles, exponents, and the points halfway
    /// between two floats with their neighbouring doubles, where a sloppy reading rounds wrong.
    static func texts() -> [String] {
        var random = SystemRandomNumberGenerator()
        var texts: [String] = []
        for _ in 0..<20_000 {
            let float = Float.random(in: -1...1, using: &random)
            texts.append("\(Double(float))")
            texts.append("\(Double.random(in: -1000...1000, using: &random))")
            texts.append(String(format: "%.9e", Double.random(in: 1e-30...1e30, using: &random)))
        }
        for _ in 0..<5_000 {
            let float = Float.random(in: 1e-20...1e20, using: &random)
            let halfway = (Double(float) + Double(float.nextUp)) / 2
            for value in [halfway, halfway.nextUp, halfway.nextDown, halfway.nextUp.nextUp, halfway.nextDown.nextDown] {
                texts.append("\(value)")
                texts.append(String(format: "%.17e", value))
            }
        }
        texts += ["0.0", "-0.0", "1e-400", "1.5e-45", "1e-38", "3.4028234663852886e38", "3.4028235677973366e38", "1.7976931348623157e308", "1234567890123456789.0", "0.1234567890123456789012", "1E+2", "-2.5e-3"]
        return texts
    }

    @Test("float32 values as Python prints them, random doubles, halfway points between floats and their neighbours, extremes: Float and Double exactly as strtod reads them")
    func numbersAsStrtodReadsThem() throws {
        let texts = Self.texts()
        let parsed = try QdrantJSON.parse(Array("[\(texts.joined(separator: ","))]".utf8))
        guard case .array(let values) = parsed else { Issue.record("not a list: \(parsed)"); return }
        #expect(values.count == texts.count)
        var wrong: [String] = []
        for (text, value) in zip(texts, values) {
            let exact = Double(text)!
            guard let number = value.number, let float = value.float else { wrong.append("\(text): not a number"); continue }
            if number.bitPattern != exact.bitPattern { wrong.append("\(text): Double \(number), strtod \(exact)") }
            if float.bitPattern != Float(exact).bitPattern { wrong.append("\(text): Float \(float), Float(strtod) \(Float(exact))") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) of \(texts.count) read wrong: \(wrong.prefix(10))")
    }

    @Test("a number beyond Double's range is refused, as before")
    func outOfRange() {
        #expect(throws: QdrantJSON.SyntaxError.self) { try QdrantJSON.parse(Array("[1.5e400]".utf8)) }
        #expect(throws: QdrantJSON.SyntaxError.self) { try QdrantJSON.parse(Array("[-12345678901234567.0e300]".utf8)) }
        #expect((try? QdrantJSON.parse(Array("[1.5e-400]".utf8)))?.serialized == "[0.0]")
    }
}
