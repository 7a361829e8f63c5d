import Foundation
import KBProto
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import KBRPC

/// Handlers declare where they run; the server answers each wherever it finished, keeps
/// deadlines for work off the loop, and answers what it received before a half-close.
@Suite("Where handlers run, and how their answers leave")
struct RPCExecutionTests {
    private static let onLoop = RPCMethod<Kb_Health_V1_HealthCheckRequest, Kb_Health_V1_HealthCheckResponse>("test.v1.Test/OnLoop")
    private static let onPool = RPCMethod<Kb_Health_V1_HealthCheckRequest, Kb_Health_V1_HealthCheckResponse>("test.v1.Test/OnPool")
    private static let spin = RPCMethod<Kb_Health_V1_HealthCheckRequest, Kb_Health_V1_HealthCheckResponse>("test.v1.Test/Spin")

    /// Says in its answer whether it ran on an event loop thread.
    private static func whereAmI() -> Kb_Health_V1_HealthCheckResponse {
        .with { $0.service = MultiThreadedEventLoopGroup.currentEventLoop == nil ? "pool" : "loop" }
    }

    @Test("an event-loop handler runs on the loop, a thread-pool handler off it, and both answer")
    func placements() async throws {
        var router = testRouter()
        router.register(Self.onLoop, on: .eventLoop) { _, _ in Self.whereAmI() }
        router.register(Self.onPool, on: .threadPool) { _, _ in Self.whereAmI() }
        try await withServer(router: router) { _, port in
            let client = makeClient(port: port)
            let onLoop = try await client.call(Self.onLoop, .init()).service
            let onPool = try await client.call(Self.onPool, .init()).service
            #expect(onLoop == "loop")
            #expect(onPool == "pool")
            await client.close()
        }
    }

    @Test("a thread-pool handler past its deadline is answered DEADLINE_EXCEEDED and sees it is cancelled")
    func poolWorkStopsAtTheDeadline() async throws {
        let stoppedEarly = Flag()
        var router = testRouter()
        router.register(Self.spin, on: .threadPool) { _, context in
            // Spins up to 20 s unless told to stop: a server that only answers the deadline
            // but lets the work run on would leave this loop running.
            let give = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < give {
                if context.isCancelled {
                    stoppedEarly.set()
                    throw CancellationError()
                }
                usleep(1000)
            }
            return .init()
        }
        try await withServer(router: router) { _, port in
            let client = makeClient(port: port)
            let started = ContinuousClock.now
            await expectRPCError(.deadlineExceeded) {
                _ = try await client.call(Self.spin, .init(), options: CallOptions(timeout: .milliseconds(100)))
            }
            #expect(ContinuousClock.now - started < .seconds(10))
            // The work notices within a few of its 1 ms steps; allow a slow machine 5 s.
            for _ in 0..<500 where !stoppedEarly.isSet { try await Task.sleep(for: .milliseconds(10)) }
            let stopped = stoppedEarly.isSet
            #expect(stopped)
            // The connection still serves.
            let after = try await client.call(HealthMethods.check, .with { $0.service = "after" }).service
            #expect(after == "after")
            await client.close()
        }
    }

    @Test("an answer over the frame limit is refused with its id, and the connection goes on")
    func oversizedAnswer() async throws {
        var router = testRouter()
        router.register(Self.onLoop, on: .eventLoop) { request, _ in
            .with { $0.service = String(repeating: "x", count: Int(request.service) ?? 0) }
        }
        try await withServer(configure: { $0.maxFrameLength = 4096 }, router: router) { _, port in
            let client = makeClient(port: port)
            let error = await expectRPCError(.resourceExhausted) {
                _ = try await client.call(Self.onLoop, .with { $0.service = "10000" })
            }
            #expect(error?.message.contains("4096") == true)
            let small = try await client.call(Self.onLoop, .with { $0.service = "10" }).service
            #expect(small.count == 10)
            await client.close()
        }
    }

    @Test("requests followed by the client's write-side shutdown are all answered, then the server closes")
    func halfCloseIsAnswered() async throws {
        try await withServer { _, port in
            for round in 0..<5 {
                let raw = try RawConnection(port: port)
                var frames: [UInt8] = []
                for id in 1...10 {
                    var envelope = Kb_Rpc_V1_Envelope()
                    envelope.id = UInt64(id)
                    envelope.method = sleepMethod.name
                    envelope.payload = try Kb_Health_V1_HealthCheckRequest.with { $0.service = "\(id * 5)" }.serializedData()
                    let body: [UInt8] = try envelope.serializedBytes()
                    frames += RawConnection.lengthPrefix(UInt32(body.count)) + body
                }
                raw.send(frames)
                raw.shutdownWrite()
                var answered: Set<UInt64> = []
                for _ in 1...10 {
                    let reply = try #require(try await offPool { try raw.readEnvelope() }, "round \(round): missing answer after \(answered.count)")
                    #expect(reply.status.code == .ok)
                    answered.insert(reply.id)
                }
                #expect(answered == Set(1...10))
                let closed = try await offPool { raw.readsEndOfFile() }
                #expect(closed)
            }
        }
    }

    @Test("a burst of pipelined requests in one write gets every answer")
    func pipelinedBurst() async throws {
        try await withServer { _, port in
            let raw = try RawConnection(port: port)
            var bytes: [UInt8] = []
            for id in 1...500 {
                let body: [UInt8] = try healthRequestEnvelope(id: UInt64(id)).serializedBytes()
                bytes += RawConnection.lengthPrefix(UInt32(body.count)) + body
            }
            raw.send(bytes)
            var seen: Set<UInt64> = []
            for _ in 1...500 {
                let reply = try #require(try await offPool { try raw.readEnvelope() })
                #expect(reply.status.code == .ok)
                seen.insert(reply.id)
            }
            #expect(seen.count == 500)
        }
    }
}

/// A flag set once from any thread.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
