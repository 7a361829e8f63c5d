import Foundation
import KBProto
import Testing

@testable import KBRPC

/// Clients that try to hold the server's connections or memory without ever finishing a request.
@Suite("Slow and hostile clients cannot lock others out or grow memory")
struct RPCHostileClientTests {
    @Test("a frame dripped a byte at a time is refused at the arrival deadline although bytes keep coming")
    func drippedFrameIsClosed() async throws {
        try await withServer(configure: { $0.frameArrivalTimeout = .milliseconds(800); $0.idleTimeout = .seconds(60) }) { _, port in
            let raw = try RawConnection(port: port, receiveTimeout: 10)
            let started = ContinuousClock.now
            // Announces a 1,000-byte frame, then sends a byte every 100 ms: each byte would reset
            // an idle timer, but not the arrival deadline.
            raw.send(RawConnection.lengthPrefix(1000))
            let dripper = Task.detached {
                for _ in 0..<100 {
                    raw.send([0x0A])
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            let reply = try #require(try await offPool { try raw.readEnvelope() })
            dripper.cancel()
            #expect(reply.id == 0)
            #expect(reply.status.code == .deadlineExceeded)
            #expect(ContinuousClock.now - started < .seconds(8))
            let closed = try await offPool { raw.readsEndOfFile() }
            #expect(closed)
            let client = makeClient(port: port)
            let answer = try await client.call(HealthMethods.check, .with { $0.service = "ok" }).service
            #expect(answer == "ok")
            await client.close()
        }
    }

    @Test("time the server itself held reading back (backpressure) does not count against the frame arrival deadline")
    func backpressureIsNotSlowness() async throws {
        try await withServer(configure: { $0.maxConcurrentRequestsPerConnection = 1; $0.frameArrivalTimeout = .seconds(1) }) { _, port in
            let raw = try RawConnection(port: port, receiveTimeout: 10)
            var slow = Kb_Rpc_V1_Envelope()
            slow.id = 1
            slow.method = sleepMethod.name
            slow.payload = try Kb_Health_V1_HealthCheckRequest.with { $0.service = "2500" }.serializedData()
            let first: [UInt8] = try slow.serializedBytes()
            let second: [UInt8] = try healthRequestEnvelope(id: 2).serializedBytes()
            let secondFrame = RawConnection.lengthPrefix(UInt32(second.count)) + second
            // The slow request and half of the next frame in one write: the server starts the
            // slow one (its only slot), holds the half frame, and stops reading for 2.5 s.
            raw.send(RawConnection.lengthPrefix(UInt32(first.count)) + first + Array(secondFrame.prefix(6)))
            // Two more bytes while reading is held: read together when the slot frees, they
            // leave the frame still unfinished, so the deadline is checked then.
            try await Task.sleep(for: .milliseconds(100))
            raw.send(Array(secondFrame[6..<8]))
            // The rest soon after the slow request ends (2.5 s): within 1 s of reading again,
            // though 2.6 s after the frame's first byte.
            try await Task.sleep(for: .milliseconds(2500))
            raw.send(Array(secondFrame.dropFirst(8)))
            var answered: [UInt64: Kb_Rpc_V1_Code] = [:]
            for _ in 0..<2 {
                let reply = try #require(try await offPool { try raw.readEnvelope() })
                answered[reply.id] = reply.status.code
            }
            #expect(answered == [1: .ok, 2: .ok])
        }
    }

    @Test("one client address cannot take every connection: past its share it is refused, other addresses are served")
    func perAddressLimit() async throws {
        try await withServer(configure: { $0.maxConnectionsPerAddress = 3 }) { server, port in
            let held = try (0..<3).map { _ in try RawConnection(port: port) }
            for (index, connection) in held.enumerated() {  // each is served
                try connection.sendEnvelope(healthRequestEnvelope(id: UInt64(index + 1)))
                let code = try await offPool { try connection.readEnvelope() }?.status.code
                #expect(code == .ok)
            }
            let fourth = try RawConnection(port: port)
            let refusal = try #require(try await offPool { try fourth.readEnvelope() })
            #expect(refusal.status.code == .resourceExhausted)
            #expect(refusal.status.message.contains("from one address"))
            // Another loopback address still gets in.
            let other = try RawConnection(port: port, from: "127.0.0.2")
            try other.sendEnvelope(healthRequestEnvelope(id: 9))
            let otherCode = try await offPool { try other.readEnvelope() }?.status.code
            #expect(otherCode == .ok)
            #expect(server.connections.open == 4)
        }
    }

    @Test("large unfinished frames are bounded by the server's byte budget and the budget comes back on close")
    func partialFrameBudget() async throws {
        try await withServer(configure: { $0.partialFrameBudget = 1_000_000; $0.idleTimeout = .seconds(60) }) { server, port in
            let body = [UInt8](repeating: 7, count: 400_000)
            var stalled: [RawConnection] = []
            for _ in 0..<2 {  // 2 × 400 KB held: within the budget
                let raw = try RawConnection(port: port)
                raw.send(RawConnection.lengthPrefix(500_000) + body)
                stalled.append(raw)
            }
            for _ in 0..<200 where server.partialFrameBytes.held < 800_000 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(server.partialFrameBytes.held <= 1_000_000)
            let third = try RawConnection(port: port)
            third.send(RawConnection.lengthPrefix(500_000) + body)
            let refusal = try #require(try await offPool { try third.readEnvelope() })
            #expect(refusal.status.code == .resourceExhausted)
            #expect(server.partialFrameBytes.held <= 1_000_000)
            // Small requests are not held up meanwhile.
            let client = makeClient(port: port)
            let small = try await client.call(HealthMethods.check, .with { $0.service = "small" }).service
            #expect(small == "small")
            // Closing the stalled connections gives their bytes back.
            stalled.removeAll()
            for _ in 0..<300 where server.partialFrameBytes.held > 0 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(server.partialFrameBytes.held == 0)
            await client.close()
        }
    }
}
