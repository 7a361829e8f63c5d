import BudgetKit
import Foundation
import GRDB
import KBProto
import KBRPC
import KBRuntime
import KBSQLite
import KBTestSupport
import Logging
import Testing

/// Issue 18, finding 3, on real SQLite files: a ledger file truncated to half is refused when it
/// is opened, with the reason and the restore command, instead of answering GetStatus while
/// ListEvents and Verify fail "database disk image is malformed".
@Suite("The budget ledger on a damaged database file")
struct DamagedLedgerFileTests {
    @Test("a checkpointed database truncated to half: opening fails as damage naming the restore command; the service serves no ledger")
    func truncatedDatabaseIsRefusedAtOpen() async throws {
        let path = temporaryDirectory("budget-truncated").appendingPathComponent("knowledge.db").path
        try await withLedger(path: path) { ledger, _ in
            for call in 0..<5 {
                _ = try await ledger.recordCosts(.with { $0.events = (0..<2000).map { costEvent("t\(call)-\($0)", usd: 0.001) } })
            }
        }
        // Move every page into the database file, as SQLite's automatic checkpoints do.
        let queue = try DatabaseQueue(path: path)
        try await queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try queue.close()
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(size > 500_000, "\(size)")
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()

        do {
            let ledger = try BudgetLedger(path: path, options: BudgetLedger.Options())
            let status = ledger.status()
            ledger.close()
            Issue.record("a truncated ledger opened and answered spend \(status.spendUsd)")
        } catch let failure as SQLiteDatabase.Failure {
            #expect(failure.isDamaged, "\(failure)")
            #expect(failure.message.contains("To recover") && failure.message.contains("budget restore"), "\(failure)")
        }

        let service = BudgetService(path: path, options: BudgetLedger.Options(), backupRoot: BackupRoot(directory: URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("backups")), logger: Logger(label: "test"))
        do {
            _ = try service.current()
            Issue.record("the service served a truncated ledger")
        } catch let error as RPCError {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("budget restore"), "\(error.message)")
        }
    }
}
