import Foundation
import Hummingbird
import KBRuntime
import Logging
import NIOCore

/// The page and its files: `/` (index.html), `/static/app.js`, `/static/trajectory.js`, `/static/app.css`,
/// `/api/openapi.json`, and `/vendor/d3.min.js` from Debian's node-d3 (never committed).
///
/// The files come from the copy built into VKB (`Web/`), or from `KB_VKB_WEB_DIR`, read on
/// every request then, so the page can be edited without a rebuild.
struct WebAssets: Sendable {
    let configuration: VKBConfiguration
    let logger: Logger

    static let files: [(path: String, file: String, type: String)] = [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/index.html", "index.html", "text/html; charset=utf-8"),
        ("/static/app.js", "app.js", "text/javascript; charset=utf-8"),
        ("/static/graph-view.js", "graph-view.js", "text/javascript; charset=utf-8"),
        ("/static/trajectory.js", "trajectory.js", "text/javascript; charset=utf-8"),
        ("/static/app.css", "app.css", "text/css; charset=utf-8"),
        ("/api/openapi.json", "openapi.json", "application/json; charset=utf-8"),
    ]

    /// The built-in copy of `Web/`.
    static var builtInDirectory: URL? { Bundle.module.url(forResource: "Web", withExtension: nil) }

    func addRoutes(to router: Router<VKBRequestContext>) {
        let directory = configuration.webDirectory ?? Self.builtInDirectory
        let live = configuration.webDirectory != nil
        var loaded: [String: Data] = [:]
        if !live, let directory {
            for entry in Self.files {
                loaded[entry.file] = try? Data(contentsOf: directory.appendingPathComponent(entry.file))
            }
        }
        let cache = loaded
        for entry in Self.files {
            router.get(RouterPath(stringLiteral: entry.path)) { _, _ -> Response in
                let data = live ? directory.flatMap { try? Data(contentsOf: $0.appendingPathComponent(entry.file)) } : cache[entry.file]
                guard let data else {
                    throw APIError(.internalServerError, "missing_file", "VKB's file \(entry.file) is missing (looked in \(directory?.path ?? "the built-in copy"))")
                }
                return Response(
                    status: .ok,
                    headers: [.contentType: entry.type, .cacheControl: entry.file == "index.html" ? "no-cache" : "max-age=60"],
                    body: .init(byteBuffer: ByteBuffer(bytes: data))
                )
            }
        }
        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }
        let d3Path = configuration.d3Path
        let d3 = FileManager.default.contents(atPath: d3Path)
        if d3 == nil {
            logger.warning("the drawing library is missing; the page will say so", metadata: ["path": "\(d3Path)", "fix": "apt-get install node-d3, or set KB_VKB_D3_PATH"])
        }
        router.get("/vendor/d3.min.js") { _, _ -> Response in
            guard let data = d3 ?? FileManager.default.contents(atPath: d3Path) else {
                throw APIError(.notFound, "missing_library", "the d3 bundle is not at \(d3Path): install Debian's node-d3 (scripts/setup-system.sh) or set KB_VKB_D3_PATH")
            }
            return Response(
                status: .ok,
                headers: [.contentType: "text/javascript; charset=utf-8", .cacheControl: "max-age=3600"],
                body: .init(byteBuffer: ByteBuffer(bytes: data))
            )
        }
    }
}
