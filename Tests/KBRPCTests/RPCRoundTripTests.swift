import Foundation
import KBProto
import Testing

@testable import KBRPC

@Suite("RPC calls between a real client and server on loopback")
struct RPCRoundTripTests {
    @Test("a typed call returns the handler's response with nested, repeated and map fields intact")
    func typedCallRoundTrips() async throws {
        try await withServer { _, port in
            let client = makeClient(port: port)
            var entity = Kb_Graph_V1_Entity()
            entity.name = "RetryPattern"
            entity.entityType = "Pattern"
            entity.observations = [.with { $0.content = "use exponential backoff"; $0.tags = ["net", "retry"] }]
            entity.metadata = ["origin": "test"]
            entity.significance = 8
            let response = try await client.call(echoMethod, .with { $0.team = "t"; $0.entities = [entity] })
            #expect(response.entities == [entity])
            #expect(response.created == 1)
            await client.close()
        }
    }

    @Test("responses come back out of order on one connection and each reaches its own caller")
    func outOfOrderResponsesAreMatchedById() async throws {
        try await withServer { _, port in
            let client = makeClient(port: port) { $0.connections = 1 }
            let order = OrderLog()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for delay in [600, 10, 300] {
                    group.addTask {
                        let response = try await client.call(sleepMethod, .with { $0.service = "\(delay)" })
                        #expect(response.service == "\(delay)")
                        order.append(delay)
                    }
                }
                try await group.waitForAll()
            }
            #expect(order.values == [10, 300, 600])
            await client.close()
        }
    }

    @Test("a connection runs at most its limit of requests at once and queues the rest")
    func perConnectionConcurrencyIsBounded() async throws {
        let probe = ConcurrencyProbe()
        try await withServer(configure: { $0.maxConcurrentRequestsPerConnection = 3 }, router: testRouter(concurrency: probe)) { _, port in
            let client = makeClient(port: port) { $0.connections = 1 }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<20 {
                    group.addTask { _ = try await client.call(sleepMethod, .with { $0.service = "50" }) }
                }
                try await group.waitForAll()
            }
            await client.close()
        }
        #expect(probe.peak == 3)
    }

    @Test("a cancelled caller stops waiting at once with CANCELLED")
    func cancellationEndsTheCall() async throws {
        try await withServer { _, port in
            let client = makeClient(port: port)
            let task = Task { try await client.call(sleepMethod, .with { $0.service = "10000" }) }
            try await Task.sleep(for: .milliseconds(100))
            let started = ContinuousClock.now
            task.cancel()
            await expectRPCError(.cancelled) { _ = try await task.value }
            #expect(ContinuousClock.now - started < .seconds(5))
            await client.close()
        }
    }

    @Test("the client reconnects after the server restarts on the same port")
    func clientReconnectsAfterServerRestart() async throws {
        let port = try await withServer { _, port in port }
        let client = makeClient(port: port) { $0.initialBackoff = .milliseconds(20) }
        await expectRPCError(.unavailable) { _ = try await client.call(HealthMethods.check, .init(), options: .init(timeout: .milliseconds(300))) }
        try await withServer(configure: { $0.port = port }) { _, _ in
            let response = try await client.call(HealthMethods.check, .with { $0.service = "again" }, options: .init(timeout: .seconds(5)))
            #expect(response.service == "again")
        }
        await client.close()
    }

    @Test("a request over the server's frame limit fails with RESOURCE_EXHAUSTED and the client recovers")
    func oversizedRequestThenRecovery() async throws {
        try await withServer(configure: { $0.maxFrameLength = 1024 }) { _, port in
            let client = makeClient(port: port) { $0.connections = 1; $0.initialBackoff = .milliseconds(10) }
            var big = Kb_Graph_V1_PutEntitiesRequest()
            big.entities = [.with { $0.name = String(repeating: "x", count: 4096) }]
            await expectRPCError(.resourceExhausted) { _ = try await client.call(echoMethod, big) }
            let response = try await client.call(HealthMethods.check, .with { $0.service = "after" })
            #expect(response.service == "after")
            await client.close()
        }
    }

    @Test("an absurdly long or a negative timeout neither traps nor hangs the call")
    func extremeTimeouts() async throws {
        try await withServer { _, port in
            let client = makeClient(port: port)
            let response = try await client.call(HealthMethods.check, .with { $0.service = "long" }, options: .init(timeout: .seconds(Int64.max)))
            #expect(response.service == "long")
            await expectRPCError(.deadlineExceeded) {
                _ = try await client.call(sleepMethod, .with { $0.service = "5000" }, options: .init(timeout: .seconds(-1)))
            }
            await client.close()
        }
    }

    @Test("many callers on a pool of connections all get their own answers")
    func manyConcurrentCallers() async throws {
        try await withServer { _, port in
            let client = makeClient(port: port) { $0.connections = 4 }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<500 {
                    group.addTask {
                        let response = try await client.call(HealthMethods.check, .with { $0.service = "caller-\(i)" })
                        #expect(response.service == "caller-\(i)")
                    }
                }
                try await group.waitForAll()
            }
            await client.close()
        }
    }

    @Test("shutdown lets an in-flight request finish, then refuses new connections")
    func gracefulShutdownFinishesInFlightRequests() async throws {
        let probe = ConcurrencyProbe()
        try await withServer(router: testRouter(concurrency: probe)) { server, port in
            let client = makeClient(port: port) { $0.connections = 1 }
            let slow = Task { try await client.call(sleepMethod, .with { $0.service = "400" }) }
            while probe.peak == 0 { try await Task.sleep(for: .milliseconds(5)) }
            server.beginShutdown()
            let response = try await slow.value
            #expect(response.service == "400")
            try await Task.sleep(for: .milliseconds(100))
            #expect(throws: (any Error).self) { _ = try RawConnection(port: port) }
            await client.close()
        }
    }
}

final class OrderLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Int] = []
    func append(_ value: Int) { lock.withLock { items.append(value) } }
    var values: [Int] { lock.withLock { items } }
}
