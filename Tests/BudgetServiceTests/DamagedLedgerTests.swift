import Foundation
import KBProto
import KBRPC
import KBTestSupport
import Testing

/// Issue 18, findings 3 and 4: a ledger that cannot be read whole is an unhealthy service with a
/// clear reason (and the restore command), never a fresh empty ledger with spend $0.
@Suite("budget-service on damaged files, as processes", .serialized)
struct DamagedLedgerTests {
    /// Records `calls` × `perCall` events of $0.001, one transaction per call.
    static func record(_ budget: BudgetServiceUnderTest, calls: Int, perCall: Int) async throws {
        let client = budget.client()
        for call in 0..<calls {
            _ = try await client.call(BudgetMethods.recordCosts, .with { $0.events = (0..<perCall).map { event("c\(call)-\($0)", usd: 0.001) } })
        }
        await client.close()
    }

    static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil) ?? -1
    }

    /// Starts the service on the damaged data and checks it serves no ledger: `/health` is 503 and
    /// names `reason` with the restore command, GetStatus is refused with the reason, the process
    /// stays up.
    static func expectRefusedLedger(_ data: URL, reason: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let broken = try await BudgetServiceUnderTest.start(dataDirectory: data, waitForReady: false)
        defer { Task { await broken.service.stop() } }
        let health = try #require(await httpGet("http://127.0.0.1:\(broken.service.adminPort)/health"), sourceLocation: sourceLocation)
        #expect(health.status == 503, "\(health.body)", sourceLocation: sourceLocation)
        #expect(health.body.contains(reason), "\(health.body)", sourceLocation: sourceLocation)
        #expect(health.body.contains("budget restore"), "the reason names the restore command: \(health.body)", sourceLocation: sourceLocation)
        let client = broken.client()
        do {
            let status = try await client.call(BudgetMethods.getStatus, .init())
            Issue.record("a damaged ledger answered GetStatus with spend \(status.spendUsd)", sourceLocation: sourceLocation)
        } catch let error as RPCError {
            #expect(error.code == .unavailable, "\(error)", sourceLocation: sourceLocation)
            #expect(error.message.contains(reason), "\(error.message)", sourceLocation: sourceLocation)
        }
        await client.close()
        #expect(broken.service.process.isRunning, "damage never kills the service", sourceLocation: sourceLocation)
    }

    @Test("finding 3: a zero-length database file after a clean stop is refused, not started as an empty ledger")
    func zeroLengthDatabase() async throws {
        let budget = try await BudgetServiceUnderTest.start()
        try await Self.record(budget, calls: 10, perCall: 100)
        #expect(await budget.service.stop() == 0)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: budget.databasePath))
        try handle.truncate(atOffset: 0)
        try handle.close()
        try await Self.expectRefusedLedger(budget.service.dataDirectory, reason: "is empty (0 bytes)")
    }

    @Test("finding 3: the database deleted after kill -9 while its write-ahead log stays is refused")
    func deletedDatabaseWithWAL() async throws {
        let budget = try await BudgetServiceUnderTest.start()
        try await Self.record(budget, calls: 10, perCall: 100)
        await budget.service.stop(signal: SIGKILL)
        #expect(Self.size(budget.databasePath + "-wal") > 0, "kill -9 left the log")
        try FileManager.default.removeItem(atPath: budget.databasePath)
        try await Self.expectRefusedLedger(budget.service.dataDirectory, reason: "write-ahead log")
        #expect(!FileManager.default.fileExists(atPath: budget.databasePath), "no new database was created")
    }

    @Test("finding 3: 512 random bytes in the middle of the write-ahead log after kill -9 are refused, not dropped silently")
    func garbageInWAL() async throws {
        let budget = try await BudgetServiceUnderTest.start()
        try await Self.record(budget, calls: 60, perCall: 10)
        await budget.service.stop(signal: SIGKILL)
        let wal = budget.databasePath + "-wal"
        let size = Self.size(wal)
        #expect(size > 100_000, "the 60 transactions are in the log (\(size) bytes)")
        var generator = SeededGenerator(state: 3)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: wal))
        try handle.seek(toOffset: UInt64(size / 2))
        try handle.write(contentsOf: Data((0..<512).map { _ in UInt8.random(in: 0...255, using: &generator) }))
        try handle.close()
        try await Self.expectRefusedLedger(budget.service.dataDirectory, reason: "write-ahead log")
    }

    @Test("normal paths: a first start creates the ledger and its marker; a restart after kill -9 is healthy with every event")
    func firstStartAndRestart() async throws {
        let budget = try await BudgetServiceUnderTest.start()
        #expect(FileManager.default.fileExists(atPath: budget.databasePath + ".kbstore"))
        try await Self.record(budget, calls: 20, perCall: 10)
        await budget.service.stop(signal: SIGKILL)
        let again = try await BudgetServiceUnderTest.start(dataDirectory: budget.service.dataDirectory)
        let client = again.client()
        let status = try await client.call(BudgetMethods.getStatus, .init())
        #expect(abs(status.spendUsd - 0.2) < 1e-9)
        await client.close()
        let health = try #require(await httpGet("http://127.0.0.1:\(again.service.adminPort)/health"))
        #expect(health.status == 200, "\(health.body)")
        await again.service.stop()
    }
}
