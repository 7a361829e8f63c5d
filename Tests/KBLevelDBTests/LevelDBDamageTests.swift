import Foundation
import KBLevelDB
import KBTestSupport
import Testing

/// The wrapper never turns damaged files into an empty or shortened database (issue 18,
/// findings 1, 2 and 4), on real database files.
@Suite("The LevelDB wrapper on damaged files")
struct LevelDBDamageTests {
    private func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

    private func options() -> LevelDB.Options {
        var options = LevelDB.Options()
        options.restoreAdvice = "run `store restore BACKUP`"
        return options
    }

    /// A database of `count` records, each written by its own synced write, then closed.
    private func filled(_ count: Int, valueBytes: Int = 64) throws -> String {
        let path = temporaryDirectory("kb-leveldb-damage").appendingPathComponent("db").path
        let db = try LevelDB(path: path, options: options())
        for index in 0..<count {
            try db.put(bytes("record \(index)"), Array(repeating: UInt8(index % 251), count: valueBytes))
        }
        return path
    }

    private func largest(_ path: String, suffix: String) throws -> URL {
        let folder = URL(fileURLWithPath: path)
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: [.fileSizeKey]).filter { $0.lastPathComponent.hasSuffix(suffix) }
        return try #require(files.max { (try $0.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0) < (try $1.resourceValues(forKeys: [.fileSizeKey]).fileSize ?? 0) })
    }

    private func damaged(_ body: () throws -> Void) -> LevelDB.Error? {
        do {
            try body()
            return nil
        } catch let error as LevelDB.Error {
            return error
        } catch {
            return nil
        }
    }

    @Test("a new folder gets a database and its marker; a store from before markers is adopted")
    func markerOnCreationAndAdoption() throws {
        let path = try filled(10)
        let marker = URL(fileURLWithPath: path).appendingPathComponent(LevelDB.markerFile).path
        #expect(FileManager.default.fileExists(atPath: marker))
        try FileManager.default.removeItem(atPath: marker)
        let adopted = try LevelDB(path: path, options: options())
        #expect(try adopted.get(bytes("record 9")) != nil)
        #expect(FileManager.default.fileExists(atPath: marker), "the existing store was adopted")
        #expect(try adopted.scan(prefix: []).count == 10, "the commit number is not a record")
    }

    @Test("CURRENT removed: the open is refused naming the file and the restore advice; nothing is created")
    func missingCurrentIsRefused() throws {
        let path = try filled(100)
        try FileManager.default.removeItem(atPath: path + "/CURRENT")
        let error = try #require(damaged { _ = try LevelDB(path: path, options: options()) })
        #expect(error.code == .damaged)
        #expect(error.message.contains("\(path)/CURRENT is missing"), "\(error)")
        #expect(error.message.contains("store restore BACKUP"), "\(error)")
        #expect(!FileManager.default.fileExists(atPath: path + "/CURRENT"))
    }

    @Test("CURRENT and the marker removed but table or log files remain: still refused")
    func leftoverFilesAreRefused() throws {
        let path = try filled(100)
        for file in ["CURRENT", LevelDB.markerFile, LevelDB.commitsFile] { try FileManager.default.removeItem(atPath: path + "/" + file) }
        let error = try #require(damaged { _ = try LevelDB(path: path, options: options()) })
        #expect(error.code == .damaged, "\(error)")
    }

    @Test("the log truncated to half: the open is refused, saying acknowledged writes were lost")
    func truncatedLogIsRefused() throws {
        let path = try filled(500)
        let log = try largest(path, suffix: ".log")
        let size = try #require(try log.resourceValues(forKeys: [.fileSizeKey]).fileSize)
        let handle = try FileHandle(forUpdating: log)
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()
        let error = try #require(damaged { _ = try LevelDB(path: path, options: options()) })
        #expect(error.code == .damaged)
        #expect(error.message.contains("lost acknowledged writes"), "\(error)")
        #expect(error.message.contains("store restore BACKUP"), "\(error)")
    }

    @Test("512 garbage bytes in the middle of the log: the open is refused with LevelDB's reason")
    func garbageInLogIsRefused() throws {
        let path = try filled(500)
        let log = try largest(path, suffix: ".log")
        let size = try #require(try log.resourceValues(forKeys: [.fileSizeKey]).fileSize)
        var generator = SeededGenerator(state: 2)
        let handle = try FileHandle(forUpdating: log)
        try handle.seek(toOffset: UInt64(size / 2))
        try handle.write(contentsOf: Data((0..<512).map { _ in UInt8.random(in: 0...255, using: &generator) }))
        try handle.close()
        let error = try #require(damaged { _ = try LevelDB(path: path, options: options()) })
        #expect(error.code == .damaged)
        #expect(error.message.contains("Corruption"), "\(error)")
    }

    @Test("garbage in a table file: reads fail as damage with LevelDB's reason, and the database keeps it as `damage`")
    func garbageInTableIsReported() throws {
        let path = try filled(3000, valueBytes: 400)
        // Reopening turns the log into a table file.
        _ = try LevelDB(path: path, options: options())
        let table = try largest(path, suffix: ".ldb")
        let size = try #require(try table.resourceValues(forKeys: [.fileSizeKey]).fileSize)
        var generator = SeededGenerator(state: 4)
        let handle = try FileHandle(forUpdating: table)
        try handle.seek(toOffset: UInt64(size / 2))
        try handle.write(contentsOf: Data((0..<512).map { _ in UInt8.random(in: 0...255, using: &generator) }))
        try handle.close()
        let db = try LevelDB(path: path, options: options())
        #expect(db.damage == nil)
        let error = try #require(damaged { _ = try db.scan(prefix: bytes("record")) })
        #expect(error.code == .damaged)
        #expect(error.message.contains("Corruption"), "\(error)")
        let damage = try #require(db.damage)
        #expect(damage.contains("Corruption") && damage.contains("store restore BACKUP"), "\(damage)")
    }
}
