import Foundation

/// The ANN-benchmark file formats: `.fvecs` (per vector a little-endian int32 dimension, then
/// that many float32) and `.ivecs` (the same with int32).
public enum VectorFiles {
    /// A file that is not in the format.
    public struct FormatError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The vectors of an `.fvecs` file, all of one dimension.
    public static func readFvecs(_ url: URL, limit: Int = .max) throws -> (dimension: Int, vectors: [[Float]]) {
        let data = try Data(contentsOf: url)
        return try data.withUnsafeBytes { raw -> (Int, [[Float]]) in
            var offset = 0
            var vectors: [[Float]] = []
            var dimension = 0
            while offset + 4 <= raw.count && vectors.count < limit {
                let d = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
                guard d > 0, offset + 4 + d * 4 <= raw.count else { throw FormatError(description: "\(url.path): bad record at byte \(offset)") }
                if dimension == 0 { dimension = d }
                guard d == dimension else { throw FormatError(description: "\(url.path): dimension \(d) after \(dimension)") }
                var vector = [Float](repeating: 0, count: d)
                for index in 0..<d {
                    vector[index] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 + index * 4, as: UInt32.self)))
                }
                vectors.append(vector)
                offset += 4 + d * 4
            }
            return (dimension, vectors)
        }
    }

    /// The rows of an `.ivecs` file.
    public static func readIvecs(_ url: URL) throws -> [[Int32]] {
        let data = try Data(contentsOf: url)
        return try data.withUnsafeBytes { raw -> [[Int32]] in
            var offset = 0
            var rows: [[Int32]] = []
            while offset + 4 <= raw.count {
                let d = Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
                guard d > 0, offset + 4 + d * 4 <= raw.count else { throw FormatError(description: "\(url.path): bad record at byte \(offset)") }
                rows.append((0..<d).map { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 + $0 * 4, as: Int32.self)) })
                offset += 4 + d * 4
            }
            return rows
        }
    }
}
