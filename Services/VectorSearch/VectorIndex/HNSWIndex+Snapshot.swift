import Foundation

/// The snapshot file: the whole graph, so a restart loads instead of rebuilding.
///
///     "KBHNSW02" · u32 dimension · u8 metric · u32 m · u32 efConstruction · u64 seed
///     · u64 nodeCount · u32 entryPoint · i32 maxLevel · u64 deletedCount · u64 random
///     · u8 quantized [· f32[dimension] code minimums · f32[dimension] code steps]
///     · f32[nodeCount × dimension] vectors · i8[nodeCount] levels · u8[nodeCount] deleted
///     · u32[nodeCount × (1 + 2m)] level-0 links
///     · for each node with level > 0: u32[level × (1 + m)] upper links
///     · u64 freeCount · u32[freeCount] free slots · u64 checksum (FNV-1a of everything before)
///
/// Little-endian (the machines we run on). Written to `<path>.tmp`, synced, then renamed.
extension HNSWIndex {
    static let magic = Array("KBHNSW02".utf8)

    /// Why a snapshot could not be read.
    public struct SnapshotError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Writes the index to `url` atomically. Concurrent inserts and searches wait.
    public func write(to url: URL) throws {
        var data = Data()
        try storage.withWriteLock {
            state.lock()
            defer { state.unlock() }
            data.reserveCapacity(nodeCount * (dimension * 4 + linkWords0 * 4 + 2) + 128)
            data.append(contentsOf: Self.magic)
            append(&data, UInt32(dimension))
            append(&data, UInt8(Metric.allCases.firstIndex(of: metric)!))
            append(&data, UInt32(parameters.m))
            append(&data, UInt32(parameters.efConstruction))
            append(&data, parameters.seed)
            append(&data, UInt64(nodeCount))
            append(&data, entryPoint)
            append(&data, Int32(maxLevel))
            append(&data, UInt64(deletedCount))
            append(&data, random)
            append(&data, UInt8(codes == nil ? 0 : 1))
            if codes != nil {
                codeMinimum.withUnsafeBufferPointer { data.append($0) }
                codeStep.withUnsafeBufferPointer { data.append($0) }
            }
            data.append(UnsafeBufferPointer(start: vectors, count: nodeCount * dimension))
            data.append(UnsafeBufferPointer(start: levels, count: nodeCount))
            data.append(UnsafeBufferPointer(start: deleted, count: nodeCount))
            data.append(UnsafeBufferPointer(start: links0, count: nodeCount * linkWords0))
            for node in 0..<nodeCount where levels[node] > 0 {
                data.append(UnsafeBufferPointer(start: upper[node]!, count: Int(levels[node]) * linkWords))
            }
            append(&data, UInt64(freeSlots.count))
            for slot in freeSlots { append(&data, slot) }
        }
        append(&data, Self.checksum(data))
        let temporary = URL(fileURLWithPath: url.path + ".tmp")
        try data.write(to: temporary)
        let handle = try FileHandle(forUpdating: temporary)
        try handle.synchronize()
        try handle.close()
        if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
        try FileManager.default.moveItem(at: temporary, to: url)
    }

    /// Reads an index written by `write(to:)`; a truncated or corrupted file is an error.
    public static func read(from url: URL) throws -> HNSWIndex {
        let data = try Data(contentsOf: url)
        guard data.count > magic.count + 8, Array(data.prefix(magic.count)) == magic else {
            throw SnapshotError(description: "\(url.path) is not an HNSW snapshot")
        }
        let stored: UInt64 = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: data.count - 8, as: UInt64.self) }
        guard checksum(data.prefix(data.count - 8)) == stored else {
            throw SnapshotError(description: "\(url.path) is damaged (checksum mismatch)")
        }
        var reader = Reader(data: data, offset: magic.count, end: data.count - 8, path: url.path)
        let dimension = Int(try reader.read(UInt32.self))
        let metricIndex = Int(try reader.read(UInt8.self))
        guard metricIndex < Metric.allCases.count, dimension > 0 else { throw SnapshotError(description: "\(url.path) has a bad header") }
        let m = Int(try reader.read(UInt32.self))
        let efConstruction = Int(try reader.read(UInt32.self))
        let seed = try reader.read(UInt64.self)
        let nodeCount = Int(try reader.read(UInt64.self))
        let index = HNSWIndex(dimension: dimension, metric: Metric.allCases[metricIndex], parameters: HNSWParameters(m: m, efConstruction: efConstruction, seed: seed), capacity: max(nodeCount, 16))
        index.entryPoint = try reader.read(UInt32.self)
        index.maxLevel = Int(try reader.read(Int32.self))
        index.deletedCount = Int(try reader.read(UInt64.self))
        index.random = try reader.read(UInt64.self)
        var quantization: ([Float], [Float])?
        if try reader.read(UInt8.self) == 1 {
            var minimum = [Float](repeating: 0, count: dimension), step = [Float](repeating: 0, count: dimension)
            try minimum.withUnsafeMutableBufferPointer { try reader.copy(into: $0.baseAddress!, count: dimension) }
            try step.withUnsafeMutableBufferPointer { try reader.copy(into: $0.baseAddress!, count: dimension) }
            guard minimum.allSatisfy(\.isFinite), step.allSatisfy({ $0.isFinite && $0 > 0 }) else { throw SnapshotError(description: "\(url.path) has bad quantization ranges") }
            quantization = (minimum, step)
        }
        try reader.copy(into: index.vectors, count: nodeCount * dimension)
        try reader.copy(into: index.levels, count: nodeCount)
        try reader.copy(into: index.deleted, count: nodeCount)
        try reader.copy(into: index.links0, count: nodeCount * index.linkWords0)
        index.nodeCount = nodeCount
        for node in 0..<nodeCount where index.levels[node] > 0 {
            let words = Int(index.levels[node]) * index.linkWords
            let block = UnsafeMutablePointer<UInt32>.allocate(capacity: words)
            index.upper[node] = block
            try reader.copy(into: block, count: words)
        }
        let free = Int(try reader.read(UInt64.self))
        for _ in 0..<free { index.freeSlots.append(try reader.read(UInt32.self)) }
        guard reader.offset == reader.end else { throw SnapshotError(description: "\(url.path) has \(reader.end - reader.offset) unexpected bytes") }
        // Every link must name a node: a damaged file must not send a search out of bounds.
        for node in 0..<nodeCount {
            for level in 0...Int(index.levels[node]) {
                let list = index.links(UInt32(node), level: level)
                guard Int(list[0]) <= (level == 0 ? index.maxLinks0 : index.maxLinks) else { throw SnapshotError(description: "\(url.path): node \(node) has too many links") }
                for slot in 0..<Int(list[0]) where Int(list[1 + slot]) >= nodeCount {
                    throw SnapshotError(description: "\(url.path): node \(node) links to a missing node")
                }
            }
        }
        guard nodeCount == 0 || Int(index.entryPoint) < nodeCount || index.entryPoint == none else {
            throw SnapshotError(description: "\(url.path): bad entry point")
        }
        if let (minimum, step) = quantization { index.setQuantization(minimum: minimum, step: step) }
        return index
    }

    private func append<T: FixedWidthInteger>(_ data: inout Data, _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    static func checksum<D: DataProtocol>(_ data: D) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for region in data.regions {
            region.withUnsafeBytes { bytes in
                for byte in bytes {
                    hash ^= UInt64(byte)
                    hash &*= 0x0000_0100_0000_01B3
                }
            }
        }
        return hash
    }

    struct Reader {
        let data: Data
        var offset: Int
        let end: Int
        let path: String

        mutating func read<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
            let size = MemoryLayout<T>.size
            guard offset + size <= end else { throw SnapshotError(description: "\(path) is truncated") }
            let value = data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
            offset += size
            return T(littleEndian: value)
        }

        mutating func copy<T>(into target: UnsafeMutablePointer<T>, count: Int) throws {
            let bytes = count * MemoryLayout<T>.stride
            guard offset + bytes <= end else { throw SnapshotError(description: "\(path) is truncated") }
            data.withUnsafeBytes { raw in
                UnsafeMutableRawPointer(target).copyMemory(from: raw.baseAddress! + offset, byteCount: bytes)
            }
            offset += bytes
        }
    }
}
