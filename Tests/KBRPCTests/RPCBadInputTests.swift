import Foundation
import KBProto
import Prometheus
import Testing

@testable import KBRPC

/// Each case sends something broken to a running server, checks the answer, and checks that the
/// server still serves another connection afterwards.
@Suite("Bad input never takes the server down")
struct RPCBadInputTests {
    /// Proves the server still answers on a fresh connection.
    /// A fresh client gets an answer. On a starved machine (the full parallel test run on two
    /// cores) the fresh connection can itself sit past a short idle timeout before its first
    /// request is read, so a dropped connection is retried twice; a server that stopped serving
    /// fails all three.
    private func expectStillServing(port: Int) async throws {
        var lastError: (any Error)?
        for _ in 0..<3 {
            let client = makeClient(port: port)
            do {
                let response = try await client.call(HealthMethods.check, .with { $0.service = "still-here" })
                #expect(response.service == "still-here")
                await client.close()
                return
            } catch let error as RPCError where error.code == .unavailable {
                lastError = error
                await client.close()
            }
        }
        throw lastError!
    }

    @Test("a frame of length 0 gets INVALID_ARGUMENT with id 0, then a close")
    func zeroLengthFrame() async throws {
        let registry = PrometheusCollectorRegistry()
        try await withServer(registry: registry) { _, port in
            let raw = try RawConnection(port: port)
            raw.send([0, 0, 0, 0])
            let reply = try #require(try await offPool { try raw.readEnvelope() })
            #expect(reply.id == 0)
            #expect(reply.status.code == .invalidArgument)
            #expect(try await offPool { raw.readsEndOfFile() })
            try await expectStillServing(port: port)
        }
        #expect(metricValue(registry, "kb_rpc_malformed_frames_total{reason=\"empty_frame\"}") == 1)
    }

    @Test("a length over the limit gets RESOURCE_EXHAUSTED before any of the body is sent")
    func oversizedFrameIsRefusedBeforeItsBody() async throws {
        try await withServer(configure: { $0.maxFrameLength = 1024 }) { _, port in
            let raw = try RawConnection(port: port)
            raw.send(RawConnection.lengthPrefix(4_000_000_000))  // header only: no body follows
            let reply = try #require(try await offPool { try raw.readEnvelope() })
            #expect(reply.id == 0)
            #expect(reply.status.code == .resourceExhausted)
            #expect(reply.status.message.contains("1024"))
            #expect(try await offPool { raw.readsEndOfFile() })
            try await expectStillServing(port: port)
        }
    }

    @Test("a truncated frame followed by end-of-file is counted and closed")
    func truncatedFrameThenEOF() async throws {
        let registry = PrometheusCollectorRegistry()
        try await withServer(registry: registry) { _, port in
            let raw = try RawConnection(port: port)
            raw.send(RawConnection.lengthPrefix(100) + [1, 2, 3, 4, 5])
            raw.shutdownWrite()
            #expect(try await offPool { raw.readsEndOfFile() })
            try await expectStillServing(port: port)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(metricValue(registry, "kb_rpc_malformed_frames_total{reason=\"truncated_frame\"}") == 1)
    }

    @Test("bytes that are not an Envelope get INVALID_ARGUMENT and the connection goes on")
    func garbageEnvelope() async throws {
        try await withServer { _, port in
            let raw = try RawConnection(port: port)
            raw.sendFrame([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
            let reply = try #require(try await offPool { try raw.readEnvelope() })
            #expect(reply.id == 0)
            #expect(reply.status.code == .invalidArgument)
            #expect(reply.status.message.contains("not a kb.rpc.v1.Envelope"))
            try raw.sendEnvelope(healthRequestEnvelope(id: 7))
            let next = try #require(try await offPool { try raw.readEnvelope() })
            #expect(next.id == 7)
            #expect(next.status.code == .ok)
        }
    }

    @Test("an unknown method gets UNIMPLEMENTED naming the method")
    func unknownMethod() async throws {
        try await withServer { _, port in
            let client = makeClient(port: port)
            let error = await expectRPCError(.unimplemented) {
                _ = try await client.call(method: "kb.nope.v1.Nope/Nothing", payload: Data())
            }
            #expect(error?.message.contains("kb.nope.v1.Nope/Nothing") == true)
            try await expectStillServing(port: port)
            await client.close()
        }
    }

    @Test("a payload that does not decode as the request type gets INVALID_ARGUMENT")
    func undecodablePayload() async throws {
        try await withServer { _, port in
            let client = makeClient(port: port)
            let error = await expectRPCError(.invalidArgument) {
                _ = try await client.call(method: echoMethod.name, payload: Data([0x12, 0xFF, 0x01]))
            }
            #expect(error?.message.contains("kb.graph.v1.PutEntitiesRequest") == true)
            await client.close()
        }
    }

    @Test("with a token configured, a missing or wrong token gets UNAUTHENTICATED and health stays open")
    func authToken() async throws {
        try await withServer(configure: { $0.authToken = "s3cret" }) { _, port in
            let anonymous = makeClient(port: port)
            await expectRPCError(.unauthenticated) { _ = try await anonymous.call(echoMethod, .init()) }
            _ = try await anonymous.call(HealthMethods.check, .init())

            let wrong = makeClient(port: port) { $0.authToken = "guess" }
            await expectRPCError(.unauthenticated) { _ = try await wrong.call(echoMethod, .init()) }

            let right = makeClient(port: port) { $0.authToken = "s3cret" }
            _ = try await right.call(echoMethod, .init())
            for client in [anonymous, wrong, right] { await client.close() }
        }
    }

    @Test("an expired deadline gets DEADLINE_EXCEEDED from the server at the deadline")
    func deadlineExceeded() async throws {
        try await withServer { _, port in
            // The server enforces the deadline itself: a raw request waits for no client timer.
            let raw = try RawConnection(port: port)
            var envelope = Kb_Rpc_V1_Envelope()
            envelope.id = 42
            envelope.method = sleepMethod.name
            envelope.deadlineMs = 150
            envelope.payload = try Kb_Health_V1_HealthCheckRequest.with { $0.service = "30000" }.serializedData()
            let started = ContinuousClock.now
            try raw.sendEnvelope(envelope)
            let reply = try #require(try await offPool { try raw.readEnvelope() })
            #expect(reply.id == 42)
            #expect(reply.status.code == .deadlineExceeded)
            #expect(ContinuousClock.now - started < .seconds(5))

            let client = makeClient(port: port)
            await expectRPCError(.deadlineExceeded) {
                _ = try await client.call(sleepMethod, .with { $0.service = "30000" }, options: .init(timeout: .milliseconds(150)))
            }
            try await expectStillServing(port: port)
            await client.close()
        }
    }

    @Test("a client that connects and sends nothing is closed after the idle timeout")
    func idleConnectionIsClosed() async throws {
        try await withServer(configure: { $0.idleTimeout = .seconds(1) }) { _, port in
            let raw = try RawConnection(port: port, receiveTimeout: 10)
            let started = ContinuousClock.now
            #expect(try await offPool { raw.readsEndOfFile() })
            #expect(ContinuousClock.now - started < .seconds(8))
            try await expectStillServing(port: port)
        }
    }

    @Test("a thousand connections opened at once are all served")
    func thousandConnections() async throws {
        try await withServer { _, port in
            let connections = try await offPool { try (0..<1000).map { _ in try RawConnection(port: port, receiveTimeout: 20) } }
            for (i, raw) in connections.enumerated() {
                try raw.sendEnvelope(healthRequestEnvelope(id: UInt64(i + 1)))
            }
            let answered = try await offPool {
                var answered = 0
                for (i, raw) in connections.enumerated() {
                    let reply = try raw.readEnvelope()
                    if reply?.id == UInt64(i + 1) && reply?.status.code == .ok { answered += 1 }
                }
                return answered
            }
            #expect(answered == 1000)
            try await expectStillServing(port: port)
        }
    }

    @Test("a connection over the server's limit gets RESOURCE_EXHAUSTED and a close; the others keep working")
    func connectionLimit() async throws {
        try await withServer(configure: { $0.maxConnections = 2 }) { _, port in
            let first = try RawConnection(port: port)
            let second = try RawConnection(port: port)
            try first.sendEnvelope(healthRequestEnvelope(id: 1))
            try second.sendEnvelope(healthRequestEnvelope(id: 2))
            #expect(try await offPool { try first.readEnvelope() }?.id == 1)
            #expect(try await offPool { try second.readEnvelope() }?.id == 2)
            let third = try RawConnection(port: port)
            let refusal = try #require(try await offPool { try third.readEnvelope() })
            #expect(refusal.id == 0)
            #expect(refusal.status.code == .resourceExhausted)
            #expect(try await offPool { third.readsEndOfFile() })
            try first.sendEnvelope(healthRequestEnvelope(id: 3))
            #expect(try await offPool { try first.readEnvelope() }?.id == 3)
        }
    }

    @Test("an envelope without a method gets INVALID_ARGUMENT with its id")
    func missingMethod() async throws {
        try await withServer { _, port in
            let raw = try RawConnection(port: port)
            try raw.sendEnvelope(healthRequestEnvelope(id: 9, method: ""))
            let reply = try #require(try await offPool { try raw.readEnvelope() })
            #expect(reply.id == 9)
            #expect(reply.status.code == .invalidArgument)
        }
    }
}
