import Foundation
import KBLevelDB
import KBTestSupport
import Testing

@Suite("The LevelDB wrapper, on real database files")
struct LevelDBTests {
    private func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }
    private func text(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    @Test("a synced put is there after closing and reopening; a delete removes it")
    func putGetDeleteSurviveReopen() throws {
        let path = temporaryDirectory("kb-leveldb").path
        do {
            let db = try LevelDB(path: path)
            try db.put(bytes("team:alpha"), bytes("one"))
            try db.put(bytes("team:beta"), bytes("two"))
            try db.delete(bytes("team:beta"))
            try db.delete(bytes("never-there"))
        }
        let reopened = try LevelDB(path: path)
        #expect(text(try reopened.get(bytes("team:alpha"))) == "one")
        #expect(try reopened.get(bytes("team:beta")) == nil)
    }

    @Test("a batch applies all of its puts and deletes together")
    func batchIsAtomic() throws {
        let db = try LevelDB(path: temporaryDirectory("kb-leveldb").path)
        try db.put(bytes("e:old"), bytes("x"))
        var batch = WriteBatch()
        batch.put(bytes("e:a"), bytes("1"))
        batch.put(bytes("e:b"), bytes("2"))
        batch.delete(bytes("e:old"))
        var more = WriteBatch()
        more.put(bytes("e:c"), bytes("3"))
        batch.append(more)
        #expect(batch.count == 4)
        try db.write(batch)
        #expect(try db.scan(prefix: bytes("e:")).map { text($0.key)! } == ["e:a", "e:b", "e:c"])
    }

    @Test("a prefix scan returns only that prefix, in key order, and pages with after and limit")
    func prefixScanAndPaging() throws {
        let db = try LevelDB(path: temporaryDirectory("kb-leveldb").path)
        for key in ["a:1", "b:3", "b:1", "b:2", "c:1", "b"] { try db.put(bytes(key), bytes(key.uppercased()), sync: false) }
        #expect(try db.scan(prefix: bytes("b:")).map { text($0.key)! } == ["b:1", "b:2", "b:3"])
        #expect(try db.scan(prefix: bytes("b:")).map { text($0.value)! } == ["B:1", "B:2", "B:3"])
        let first = try db.scan(prefix: bytes("b:"), limit: 2)
        #expect(first.map { text($0.key)! } == ["b:1", "b:2"])
        let next = try db.scan(prefix: bytes("b:"), after: first.last!.key, limit: 2)
        #expect(next.map { text($0.key)! } == ["b:3"])
        #expect(try db.scan(prefix: bytes("b:"), after: bytes("a")).count == 3)
        #expect(try db.scan(prefix: bytes("z:")).isEmpty)
    }

    @Test("a snapshot keeps seeing the data as it was when taken")
    func snapshotIsolation() throws {
        let db = try LevelDB(path: temporaryDirectory("kb-leveldb").path)
        try db.put(bytes("k:1"), bytes("before"))
        let snapshot = db.snapshot()
        try db.put(bytes("k:1"), bytes("after"))
        try db.put(bytes("k:2"), bytes("new"))
        #expect(text(try db.get(bytes("k:1"), snapshot: snapshot)) == "before")
        #expect(try db.scan(prefix: bytes("k:"), snapshot: snapshot).count == 1)
        #expect(text(try db.get(bytes("k:1"))) == "after")
    }

    @Test("a second open of the same database fails with LevelDB's lock error")
    func secondOpenFails() throws {
        let path = temporaryDirectory("kb-leveldb").path
        let db = try LevelDB(path: path)
        #expect {
            _ = try LevelDB(path: path)
        } throws: { error in
            "\(error)".lowercased().contains("lock")
        }
        #expect(db.property("leveldb.stats") != nil)
    }
}
