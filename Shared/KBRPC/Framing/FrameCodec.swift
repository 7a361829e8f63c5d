import KBProto
import NIOCore
import SwiftProtobuf

/// The wire framing: a 4-byte unsigned big-endian length N, then N bytes of one `Envelope`.
///
/// NIOExtras' `LengthFieldBasedFrameDecoder` has no upper bound, so it would buffer a 4 GiB body
/// before anyone could refuse it; this decoder refuses an oversized length as soon as the four
/// length bytes have arrived.
public enum Frame {
    /// The default largest frame body: 16 MiB.
    public static let defaultMaxLength = 16 * 1024 * 1024
    /// The size of the length prefix.
    public static let headerLength = 4

    /// Why a byte stream is not a valid sequence of frames. Every case ends the connection.
    public struct Error: Swift.Error, Hashable, Sendable, CustomStringConvertible {
        /// What is wrong with the stream.
        public enum Code: Hashable, Sendable {
            /// A frame announced a length of zero.
            case emptyFrame
            /// A frame announced a length above the limit.
            case frameTooLarge
            /// The stream ended in the middle of a frame.
            case truncatedFrame
        }

        public let code: Code
        public let message: String

        /// The status the server answers with before it closes.
        public var rpcError: RPCError {
            switch code {
            case .frameTooLarge: RPCError(.resourceExhausted, message)
            case .emptyFrame, .truncatedFrame: RPCError(.invalidArgument, message)
            }
        }

        /// A short label for metrics and logs.
        public var reason: String {
            switch code {
            case .emptyFrame: "empty_frame"
            case .frameTooLarge: "frame_too_large"
            case .truncatedFrame: "truncated_frame"
            }
        }

        public var description: String { message }
    }

    /// Serializes an envelope into one buffer, length prefix included.
    public static func encode(_ envelope: Kb_Rpc_V1_Envelope, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let body: [UInt8] = try envelope.serializedBytes()
        var buffer = allocator.buffer(capacity: headerLength + body.count)
        buffer.writeInteger(UInt32(body.count), endianness: .big)
        buffer.writeBytes(body)
        return buffer
    }

    /// Decodes one frame body into an envelope.
    public static func decodeEnvelope(_ body: ByteBuffer) throws -> Kb_Rpc_V1_Envelope {
        try Kb_Rpc_V1_Envelope(serializedBytes: Array(body.readableBytesView))
    }
}

/// Splits an inbound byte stream into frame bodies, refusing empty, oversized and truncated frames.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    /// The largest body accepted.
    public let maxFrameLength: Int

    /// Creates a decoder that refuses bodies longer than `maxFrameLength` bytes.
    public init(maxFrameLength: Int = Frame.defaultMaxLength) {
        self.maxFrameLength = maxFrameLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return .needMoreData
        }
        if length == 0 {
            throw Frame.Error(code: .emptyFrame, message: "frame length 0 is invalid")
        }
        if length > maxFrameLength {
            throw Frame.Error(code: .frameTooLarge, message: "frame of \(length) bytes exceeds the limit of \(maxFrameLength) bytes")
        }
        guard buffer.readableBytes >= Frame.headerLength + Int(length) else {
            return .needMoreData
        }
        buffer.moveReaderIndex(forwardBy: Frame.headerLength)
        let body = buffer.readSlice(length: Int(length))!
        context.fireChannelRead(Self.wrapInboundOut(body))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 {
            let have = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: have)
            throw Frame.Error(code: .truncatedFrame, message: "connection ended inside a frame (\(have) bytes of an incomplete frame)")
        }
        return .needMoreData
    }
}
