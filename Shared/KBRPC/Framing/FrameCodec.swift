import KBProto
import NIOCore
import SwiftProtobuf
import Synchronization

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
            /// A frame took longer than the arrival deadline to arrive whole.
            case frameTooSlow
            /// The server's budget for bytes held in unfinished frames is spent.
            case partialFramesBudgetSpent
        }

        public let code: Code
        public let message: String

        /// The status the server answers with before it closes.
        public var rpcError: RPCError {
            switch code {
            case .frameTooLarge, .partialFramesBudgetSpent: RPCError(.resourceExhausted, message)
            case .emptyFrame, .truncatedFrame: RPCError(.invalidArgument, message)
            case .frameTooSlow: RPCError(.deadlineExceeded, message)
            }
        }

        /// A short label for metrics and logs.
        public var reason: String {
            switch code {
            case .emptyFrame: "empty_frame"
            case .frameTooLarge: "frame_too_large"
            case .truncatedFrame: "truncated_frame"
            case .frameTooSlow: "frame_too_slow"
            case .partialFramesBudgetSpent: "partial_frames_budget_spent"
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

/// The bytes a whole process may hold in frames that have not fully arrived, shared by every
/// connection of a server: however many clients announce large frames and stall, memory stays
/// bounded. Frames up to `smallFrameLength` are not counted (their memory is bounded by the
/// connection limit already).
public final class PartialFrameBudget: Sendable {
    /// The most bytes held at once.
    public let limit: Int
    /// Frames up to this size are not counted.
    public let smallFrameLength: Int
    private let held = Atomic<Int>(0)

    /// A budget of `limit` bytes.
    public init(limit: Int, smallFrameLength: Int = 64 * 1024) {
        self.limit = limit
        self.smallFrameLength = smallFrameLength
    }

    /// The bytes held now.
    public var bytesHeld: Int { held.load(ordering: .relaxed) }

    /// Takes `count` more bytes; false (and nothing taken) when that would pass the limit.
    func take(_ count: Int) -> Bool {
        let after = held.wrappingAdd(count, ordering: .relaxed).newValue
        if after > limit {
            held.wrappingSubtract(count, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Gives back `count` bytes.
    func give(_ count: Int) {
        if count > 0 { held.wrappingSubtract(count, ordering: .relaxed) }
    }
}

/// Splits an inbound byte stream into frame bodies, refusing empty, oversized and truncated
/// frames; on a server also frames that arrive too slowly (a whole frame must arrive within
/// `arrivalDeadline` of its first byte, however it is dripped) and large frames once the
/// process-wide `PartialFrameBudget` is spent.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    /// The largest body accepted.
    public let maxFrameLength: Int
    /// How long one frame may take to arrive whole; nil for no limit.
    public let arrivalDeadline: TimeAmount?
    /// The budget large unfinished frames are charged to; nil for none.
    public let budget: PartialFrameBudget?
    /// Time the server held reading back; not counted against the arrival deadline.
    let pauses: ReadPauses?
    /// `pauses` when the unfinished frame started.
    private var pausedAtStart: TimeAmount = .zero
    /// When the first byte of the unfinished frame arrived.
    private var frameStarted: NIODeadline?
    /// The bytes of the unfinished frame charged to the budget.
    private var charged = 0

    /// Creates a decoder that refuses bodies longer than `maxFrameLength` bytes.
    public init(maxFrameLength: Int = Frame.defaultMaxLength, arrivalDeadline: TimeAmount? = nil, budget: PartialFrameBudget? = nil) {
        self.init(maxFrameLength: maxFrameLength, arrivalDeadline: arrivalDeadline, budget: budget, pauses: nil)
    }

    init(maxFrameLength: Int, arrivalDeadline: TimeAmount?, budget: PartialFrameBudget?, pauses: ReadPauses?) {
        self.maxFrameLength = maxFrameLength
        self.arrivalDeadline = arrivalDeadline
        self.budget = budget
        self.pauses = pauses
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard buffer.readableBytes > 0 else { return .needMoreData }
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            try unfinished(have: buffer.readableBytes, announced: nil)
            return .needMoreData
        }
        if length == 0 {
            throw Frame.Error(code: .emptyFrame, message: "frame length 0 is invalid")
        }
        if length > maxFrameLength {
            throw Frame.Error(code: .frameTooLarge, message: "frame of \(length) bytes exceeds the limit of \(maxFrameLength) bytes")
        }
        guard buffer.readableBytes >= Frame.headerLength + Int(length) else {
            try unfinished(have: buffer.readableBytes, announced: Int(length))
            return .needMoreData
        }
        buffer.moveReaderIndex(forwardBy: Frame.headerLength)
        let body = buffer.readSlice(length: Int(length))!
        frameStarted = nil
        budget?.give(charged)
        charged = 0
        context.fireChannelRead(Self.wrapInboundOut(body))
        return .continue
    }

    /// Checks an unfinished frame against the arrival deadline and the budget.
    private mutating func unfinished(have: Int, announced: Int?) throws {
        let now = NIODeadline.now()
        let paused = pauses?.paused(upTo: now) ?? .zero
        if let started = frameStarted, let deadline = arrivalDeadline, (now - started) - (paused - pausedAtStart) > deadline {
            throw Frame.Error(code: .frameTooSlow, message: "a frame took longer than \(deadline.nanoseconds / 1_000_000_000) s to arrive (\(have) bytes of \(announced.map(String.init) ?? "?") arrived)")
        }
        if frameStarted == nil {
            frameStarted = now
            pausedAtStart = paused
        }
        guard let budget, let announced, announced > budget.smallFrameLength, have > charged else { return }
        guard budget.take(have - charged) else {
            throw Frame.Error(code: .partialFramesBudgetSpent, message: "the server holds its limit of \(budget.limit) bytes in unfinished frames: retry later")
        }
        charged = have
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

    public mutating func decoderRemoved(context: ChannelHandlerContext) {
        budget?.give(charged)
        charged = 0
    }
}
