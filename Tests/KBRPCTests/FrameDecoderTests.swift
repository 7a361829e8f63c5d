import NIOCore
import NIOEmbedded
import Testing

@testable import KBRPC

@Suite("Frame decoding")
struct FrameDecoderTests {
    @Test("frames split across reads and several frames in one read both decode")
    func splitAndCoalescedFrames() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: 64)))
        var first = ByteBuffer(bytes: [0, 0, 0, 3, 1, 2])
        try channel.writeInbound(first)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        first = ByteBuffer(bytes: [3, 0, 0, 0, 1, 9, 0, 0, 0, 2, 7, 7])
        try channel.writeInbound(first)
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(bytes: [1, 2, 3]))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(bytes: [9]))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(bytes: [7, 7]))
        _ = try channel.finish()
    }

    @Test("an oversized length is refused from the four header bytes alone")
    func oversizedHeader() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maxFrameLength: 64)))
        #expect(throws: Frame.Error.self) { try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 65])) }
    }
}
