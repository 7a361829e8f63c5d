import ArgumentParser
import Foundation
import KBProto
import KBRPC
import KBRuntime

/// `kb inference cache stats | clear [TYPE]`.
struct InferenceCache: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache", abstract: "The gateway's caches (completion, semantic, embedding): sizes, hit rates, emptying.",
        subcommands: [InferenceCacheStats.self, InferenceCacheClear.self]
    )
}

struct InferenceCacheStats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Entries, hits, misses, hit rate and evictions of each cache since the gateway started.")
    @OptionGroup var output: JSONFlag

    func run() async throws {
        try await withInferenceGateway { client in
            let response = try await client.call(InferenceGatewayMethods.getCacheStats, .init())
            if output.json { return try printProtoJSON(response) }
            if response.caches.isEmpty { print("no cache is on (KB_INFERENCE_CACHE_MAX_ENTRIES=0)") }
            for cache in response.caches {
                var line = "\(cache.cacheType.padding(toLength: 10, withPad: " ", startingAt: 0)) \(cache.entries)/\(cache.capacity) entries  hits \(cache.hits)  misses \(cache.misses)  hit rate \(String(format: "%.1f%%", cache.hitRate * 100))  evictions \(cache.evictions)"
                if cache.ttlSeconds > 0 { line += "  ttl \(cache.ttlSeconds) s" }
                if cache.threshold > 0 { line += String(format: "  threshold %.3f", cache.threshold) }
                print(line)
            }
        }
    }
}

struct InferenceCacheClear: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clear", abstract: "Empty a cache (completion, semantic or embedding), or all of them.")
    @Argument(help: "completion, semantic or embedding; none: all.")
    var cacheType: String?

    func run() async throws {
        try await withInferenceGateway { client in
            let response = try await client.call(InferenceGatewayMethods.clearCache, .with { $0.cacheType = cacheType ?? "" })
            print("removed \(response.removed) \(response.removed == 1 ? "entry" : "entries") from the \(cacheType.map { "\($0) cache" } ?? "caches")")
        }
    }
}

/// `kb inference warm FILE`: the guide's "Cache Warming" — replays prompts (deterministic, so
/// their answers land in the completion cache and the semantic cache) or, with `--embeddings`,
/// texts (into the embedding cache).
struct InferenceWarm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "warm", abstract: "Warm the caches: replay a file of prompts (one per line) or, with --embeddings, texts.",
        discussion: "Lines are plain text, or JSON objects {\"prompt\": ..., \"system\": ..., \"model\": ...} ({\"text\": ...} with --embeddings). Empty lines and lines starting with # are skipped. Prompts go with temperature 0 so their answers are cached; each line says whether it was already cached. `-` reads standard input."
    )
    @Argument(help: "The file of prompts or texts (`-`: standard input).")
    var file: String
    @Flag(help: "Texts to embed (into the embedding cache) instead of prompts.")
    var embeddings = false
    @Option(help: "The model (`provider/model` or a name); default: the strategy's choice (prompts) or the local model (texts).")
    var model = ""
    @Option(help: "The most tokens per answer (a cached answer only serves requests with the same max_tokens; unset: the provider's default, as requests that name none).")
    var maxTokens: Int?

    struct Line {
        var number: Int
        var text: String
        var system: String?
        var model: String?
    }

    func lines() throws -> [Line] {
        let data: Data
        if file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let read = FileManager.default.contents(atPath: file) else {
                CommandLineClient.fail("kb inference warm", "cannot read \(file)")
            }
            data = read
        }
        var lines: [Line] = []
        for (index, raw) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if trimmed.hasPrefix("{") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any],
                      let text = (object[embeddings ? "text" : "prompt"] as? String) ?? (object["prompt"] as? String) ?? (object["text"] as? String) else {
                    CommandLineClient.fail("kb inference warm", "\(file):\(index + 1): a JSON line needs \(embeddings ? "\"text\"" : "\"prompt\"") as a string")
                }
                lines.append(Line(number: index + 1, text: text, system: object["system"] as? String, model: object["model"] as? String))
            } else {
                lines.append(Line(number: index + 1, text: trimmed))
            }
        }
        return lines
    }

    func run() async throws {
        let lines = try lines()
        guard !lines.isEmpty else { CommandLineClient.fail("kb inference warm", "\(file) holds no prompts") }
        try await withInferenceGateway { client in
            var fresh = 0, cached = 0, failed = 0
            if embeddings {
                // In batches of 64 texts per call.
                for start in stride(from: 0, to: lines.count, by: 64) {
                    let batch = Array(lines[start..<min(lines.count, start + 64)])
                    do {
                        let response = try await client.call(InferenceGatewayMethods.embed, .with {
                            $0.texts = batch.map(\.text)
                            $0.model = model
                        }, options: CallOptions(timeout: .seconds(300)))
                        cached += Int(response.cached)
                        fresh += batch.count - Int(response.cached)
                        print("lines \(batch.first!.number)-\(batch.last!.number): \(batch.count - Int(response.cached)) embedded, \(response.cached) already cached")
                    } catch {
                        failed += batch.count
                        print("lines \(batch.first!.number)-\(batch.last!.number): failed: \(error)")
                    }
                }
            } else {
                for line in lines {
                    do {
                        let response = try await client.call(InferenceGatewayMethods.complete, .with {
                            if let system = line.system { $0.messages.append(.with { $0.role = "system"; $0.content = system }) }
                            $0.messages.append(.with { $0.role = "user"; $0.content = line.text })
                            $0.model = line.model ?? model
                            if let maxTokens { $0.maxTokens = Int32(clamping: maxTokens) }
                            $0.temperature = .with { $0.value = 0 }
                            $0.operation = "warm"
                        }, options: CallOptions(timeout: .seconds(300)))
                        if response.cached { cached += 1 } else { fresh += 1 }
                        print("line \(line.number): \(response.cached ? "already cached (\(response.cacheType))" : "cached now (\(response.provider), $\(String(format: "%.6f", response.costUsd)))")")
                    } catch {
                        failed += 1
                        print("line \(line.number): failed: \(error)")
                    }
                }
            }
            print("warmed \(fresh), already cached \(cached), failed \(failed)")
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
