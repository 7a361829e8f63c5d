import Foundation

/// A reader of SQLite's write-ahead log file (<https://www.sqlite.org/fileformat2.html#walformat>)
/// that finds the damage SQLite itself would pass over in silence.
///
/// When SQLite opens a database it replays the WAL's frames up to the first one whose salts or
/// cumulative checksum do not match, and drops everything after it — so a few garbage bytes in
/// the middle of the log lose every transaction committed after them, without an error. A torn
/// tail after a crash is normal (the transaction being written was never acknowledged); a commit
/// frame of the current log generation *after* an invalid frame is not: it was acknowledged, and
/// SQLite would drop it.
enum WriteAheadLog {
    static let headerSize = 32
    static let frameHeaderSize = 24

    /// What is wrong with the log at `path`, or nil when SQLite would replay every committed
    /// transaction in it (or it cannot be read: SQLite will say so itself).
    static func damage(at path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return damage(in: [UInt8](data), path: path)
    }

    static func damage(in bytes: [UInt8], path: String) -> String? {
        guard bytes.count >= headerSize else { return nil }
        let magic = word(bytes, 0, bigEndian: true)
        guard magic == 0x377f_0682 || magic == 0x377f_0683 else {
            return "the write-ahead log \(path) has a damaged header (\(bytes.count) bytes that SQLite would ignore)"
        }
        let bigEndian = magic & 1 == 1
        let pageSize = Int(word(bytes, 8, bigEndian: true))
        let salts = (word(bytes, 16, bigEndian: true), word(bytes, 20, bigEndian: true))
        var sum = checksum(bytes, 0..<24, bigEndian: bigEndian, seed: (0, 0))
        guard sum == (word(bytes, 24, bigEndian: true), word(bytes, 28, bigEndian: true)) else {
            return bytes.count > headerSize ? "the write-ahead log \(path) has a damaged header: SQLite would ignore its \(bytes.count - headerSize) bytes of frames" : nil
        }
        guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else {
            return "the write-ahead log \(path) names an impossible page size \(pageSize)"
        }
        let frameSize = frameHeaderSize + pageSize
        let frames = (bytes.count - headerSize) / frameSize
        var lastCommit = 0
        var firstInvalid: Int?
        for index in 0..<frames {
            let start = headerSize + index * frameSize
            let frameSalts = (word(bytes, start + 8, bigEndian: true), word(bytes, start + 12, bigEndian: true))
            let current = frameSalts == salts
            if firstInvalid == nil {
                let next = checksum(bytes, start..<start + 8, bigEndian: bigEndian, seed: sum)
                let full = checksum(bytes, start + frameHeaderSize..<start + frameSize, bigEndian: bigEndian, seed: next)
                let stored = (word(bytes, start + 16, bigEndian: true), word(bytes, start + 20, bigEndian: true))
                if current && full == stored && word(bytes, start, bigEndian: true) != 0 {
                    sum = full
                    if word(bytes, start + 4, bigEndian: true) != 0 { lastCommit = index + 1 }
                    continue
                }
                firstInvalid = index + 1
                continue
            }
            // Past the end SQLite will replay: only stale frames may follow (an older
            // generation's, or a rolled-back transaction's, which never carry a commit mark).
            if current && word(bytes, start + 4, bigEndian: true) != 0, let bad = firstInvalid {
                return "the write-ahead log \(path) is damaged at frame \(bad) of \(frames): SQLite would keep the transactions up to frame \(lastCommit) and silently drop committed ones after it (the next at frame \(index + 1))"
            }
        }
        return nil
    }

    /// SQLite's WAL checksum: pairs of 32-bit words in the log's byte order, accumulated.
    static func checksum(_ bytes: [UInt8], _ range: Range<Int>, bigEndian: Bool, seed: (UInt32, UInt32)) -> (UInt32, UInt32) {
        var (s0, s1) = seed
        var offset = range.lowerBound
        while offset + 8 <= range.upperBound {
            s0 = s0 &+ word(bytes, offset, bigEndian: bigEndian) &+ s1
            s1 = s1 &+ word(bytes, offset + 4, bigEndian: bigEndian) &+ s0
            offset += 8
        }
        return (s0, s1)
    }

    static func word(_ bytes: [UInt8], _ offset: Int, bigEndian: Bool) -> UInt32 {
        let b = (UInt32(bytes[offset]), UInt32(bytes[offset + 1]), UInt32(bytes[offset + 2]), UInt32(bytes[offset + 3]))
        return bigEndian ? b.0 << 24 | b.1 << 16 | b.2 << 8 | b.3 : b.3 << 24 | b.2 << 16 | b.1 << 8 | b.0
    }
}
