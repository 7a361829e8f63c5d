import Foundation
import KBLearning
import KBSessions
import KBTestSupport
import Testing

@Suite("Session transcripts read as exchanges")
struct SessionReaderTests {
    static let fixtures = packageRoot.appendingPathComponent("Tests/KBSessionsTests/Fixtures")

    func read(_ name: String, final: Bool = true) throws -> (SessionReader.Result, Data, SessionFormat, SessionReader.SessionContext) {
        let url = Self.fixtures.appendingPathComponent(name)
        let data = try Data(contentsOf: url)
        let format = SessionFormat.detect(path: url.path, head: data)
        let context = SessionReader.SessionContext.of(file: url.path, head: data, format: format)
        return (SessionReader.read(data, file: url.path, format: format, context: context, final: final), data, format, context)
    }

    @Test("a Claude Code log: prompts and answers, tool calls summarised (a failed one says so), thinking, meta, slash commands and sub-agents left out; provenance")
    func claudeCode() throws {
        let (result, _, format, _) = try read("claude-code-session.jsonl")
        #expect(format == .claudeCode)
        #expect(result.unreadable.isEmpty)
        try #require(result.exchanges.count == 2, "\(result.exchanges)")
        let first = result.exchanges[0]
        #expect(first.prompt == "The payment webhook test fails about one run in five with a timeout. Can you find out why?")
        #expect(first.tools == [
            "Bash: swift test --filter WebhookTests (failed: error: WebhookTests.testRetry timed out after 30 s)",
            "Read: /home/dev/payments/Sources/Webhooks/RetryPolicy.swift",
        ])
        #expect(first.answer.hasPrefix("Let me run the test a few times") && first.answer.contains("exponential backoff with jitter"))
        #expect(!first.answer.contains("Let me look at the test."), "thinking is not kept")
        #expect(first.provenance.sessionID == "5f0c2a1e-8d4b-4c1e-9a77-3b2f6d1e0a42" && first.provenance.project == "/home/dev/payments")
        #expect(first.provenance.firstLine == 2 && first.provenance.lastLine == 7)
        #expect(first.provenance.timeMs == SessionReader.parseTime("2025-06-03T09:14:02.120Z") && first.provenance.timeMs != nil)
        let second = result.exchanges[1]
        #expect(second.prompt == "Good. Should the backoff live in the HTTP client or in each caller?")
        #expect(second.answer == "In the HTTP client: one retry policy for every outbound call, configured per host, so callers cannot forget it.")
        #expect(second.provenance.firstLine == 10 && second.provenance.lastLine == 12)
        #expect(!second.text.contains("sub-agent") && !second.text.contains("Caveat") && !second.text.contains("/clear"))
    }

    @Test("live-session markdown: front matter gives session, project and start; headings split the exchanges; separators and titles are not text")
    func markdown() throws {
        let (result, _, format, context) = try read("specstory-session.md")
        #expect(format == .markdown)
        #expect(context.sessionID == "specstory-2025-06-04-circuit" && context.project == "payments" && context.headerLines == 5)
        try #require(result.exchanges.count == 2, "\(result.exchanges)")
        #expect(result.exchanges[0].prompt == "Our checkout calls the fraud service, and when fraud is down every checkout hangs for 30 seconds.\nWhat should we do?")
        #expect(result.exchanges[0].answer.hasPrefix("Wrap the fraud client in a circuit breaker") && !result.exchanges[0].answer.contains("---"))
        #expect(result.exchanges[1].prompt == "How do we test it?")
        #expect(result.exchanges[1].answer.contains("fake clock"))
        #expect(result.exchanges[0].provenance.sessionID == "specstory-2025-06-04-circuit")
        #expect(result.exchanges[0].provenance.timeMs == SessionReader.parseTime("2025-06-04T14:00:00Z"))
        #expect(result.exchanges[0].provenance.firstLine == 9 && result.exchanges[1].provenance.firstLine == 21)
        #expect(!result.exchanges.contains { $0.text.contains("Adding a circuit breaker") }, "the title is before any speaker")
    }

    @Test("plain text: User:/Assistant: lines; a file without speakers is one exchange without a prompt")
    func plainText() throws {
        let (result, _, format, _) = try read("plain-session.txt")
        #expect(format == .plainText)
        #expect(result.exchanges.map(\.prompt) == ["how do I make the docker build faster? it reinstalls every dependency on each change", "and for swift?"])
        #expect(result.exchanges[0].answer.hasSuffix("until the manifests change."))
        #expect(result.exchanges[1].provenance.sessionID.hasPrefix("plain-session-"), "the file's name and a tag of its path")
        let (notes, _, _, _) = try read("notes-without-speakers.txt")
        #expect(notes.exchanges.count == 1 && notes.exchanges[0].prompt.isEmpty && notes.exchanges[0].answer.contains("migrations"))
    }

    @Test("read in two parts split anywhere (every line end and the bytes around it), each exchange comes out exactly once and the same as in one read", arguments: ["claude-code-session.jsonl", "specstory-session.md", "plain-session.txt"])
    func resumeAnywhere(_ name: String) throws {
        let (whole, data, format, context) = try read(name)
        let file = Self.fixtures.appendingPathComponent(name).path
        // Every line end and the bytes around it, and every 11th byte between.
        var cuts = Set(stride(from: 0, through: data.count, by: 11))
        for (index, byte) in data.enumerated() where byte == UInt8(ascii: "\n") { cuts.formUnion([index - 1, index, index + 1, index + 2].filter { (0...data.count).contains($0) }) }
        cuts.insert(data.count)
        for cut in cuts.sorted() {
            let first = SessionReader.read(data.prefix(cut), file: file, format: format, context: context, final: false)
            #expect(first.nextOffset <= cut)
            let rest = SessionReader.read(data.subdata(in: first.nextOffset..<data.count), file: file, format: format, context: context, offset: first.nextOffset, line: first.nextLine, final: true)
            let joined = first.exchanges + rest.exchanges
            if joined != whole.exchanges {
                Issue.record("cut at byte \(cut): \(joined.map(\.id)) instead of \(whole.exchanges.map(\.id))")
                return
            }
        }
        // A follower that learned exchange i reads on from its end: the rest, exactly.
        for (index, exchange) in whole.exchanges.enumerated() {
            let end = exchange.provenance.endOffset
            #expect(end > 0 && end <= data.count)
            let rest = SessionReader.read(data.subdata(in: end..<data.count), file: file, format: format, context: context, offset: end, line: exchange.provenance.lastLine + 1, final: true)
            #expect(rest.exchanges == Array(whole.exchanges[(index + 1)...]), "resuming after exchange \(index)")
        }
    }

    @Test("a line that is not JSON is reported and skipped; a huge prompt is cut with a marker; the format is told from the name and first bytes")
    func badInputAndLimits() throws {
        let huge = String(repeating: "x", count: 20_000)
        let log = """
        {"type":"user","sessionId":"s","message":{"role":"user","content":"\(huge)"}}
        not json at all
        {"type":"assistant","sessionId":"s","message":{"role":"assistant","content":[{"type":"text","text":"ok"}]}}

        """
        let result = SessionReader.read(Data(log.utf8), file: "/tmp/s.jsonl", format: .claudeCode, context: .init(sessionID: "s"), final: true)
        #expect(result.unreadable == [2])
        #expect(result.exchanges.count == 1)
        #expect(result.exchanges[0].prompt.count < 8_100 && result.exchanges[0].prompt.hasSuffix("[…12000 more characters left out]"))
        #expect(SessionFormat.detect(path: "/x/session.log", head: Data(#"{"type":"user"}"#.utf8)) == .claudeCode)
        #expect(SessionFormat.detect(path: "/x/history.md", head: Data("## User\nhi".utf8)) == .markdown)
        #expect(SessionFormat.detect(path: "/x/chat.txt", head: Data("User: hi".utf8)) == .plainText)
        // Windows line ends; a log line still being written waits even in a batch.
        let crlf = "---\r\nsession_id: win\r\n---\r\n## User\r\nhello there\r\n## Assistant\r\nhi\r\n"
        let windows = SessionReader.read(Data(crlf.utf8), file: "/x/w.md", format: .markdown, context: .of(file: "/x/w.md", head: Data(crlf.utf8), format: .markdown), final: true)
        #expect(windows.exchanges.map(\.prompt) == ["hello there"] && windows.exchanges.first?.answer == "hi" && windows.exchanges.first?.provenance.sessionID == "win")
        let partial = #"{"type":"user","sessionId":"s","message":{"role":"user","content":"done"}}"# + "\n" + #"{"type":"assistant","sessionId":"s","mess"#
        let cut = SessionReader.read(Data(partial.utf8), file: "/x/p.jsonl", format: .claudeCode, context: .init(sessionID: "s"), final: true)
        #expect(cut.unreadable.isEmpty && cut.nextOffset == partial.utf8.count - #"{"type":"assistant","sessionId":"s","mess"#.utf8.count, "\(cut)")
        // Not front matter without its closing line.
        #expect(SessionReader.SessionContext.of(file: "/x/a.md", head: Data("---\nproject: p\n## User\nhi".utf8), format: .markdown).headerLines == 0)
    }

    @Test("a follower reads at most 32 MB a look: an exchange longer than that is taken as ending there (cut to the limits), and the next look reads on")
    func boundedLooks() throws {
        let file = temporaryDirectory("kb-sessions-big").appendingPathComponent("big.txt")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: file.path, contents: nil)
        let handle = try FileHandle(forWritingTo: file)
        try handle.write(contentsOf: Data("User: why is the build log so long?\nAssistant: here it is\n".utf8))
        let line = Data((String(repeating: "x", count: 1023) + "\n").utf8)
        var chunk = Data()
        for _ in 0..<1024 { chunk.append(line) }
        for _ in 0..<33 { try handle.write(contentsOf: chunk) }  // 33 MB
        try handle.write(contentsOf: Data("User: and now?\nAssistant: done\n".utf8))
        try handle.close()
        let first = try #require(try SessionFiles.readNew(file.path, from: nil, idleMs: 0, nowMs: 0))
        #expect(first.exchanges.count == 1 && first.exchanges[0].prompt == "why is the build log so long?")
        #expect(first.exchanges[0].answer.count < 16_100 && first.exchanges[0].answer.hasSuffix("more characters left out]"))
        #expect(first.position.offset > 0 && first.position.offset <= SessionFiles.readLimit)
        let second = try #require(try SessionFiles.readNew(file.path, from: first.position, idleMs: 0, nowMs: 0))
        #expect(second.exchanges.last?.prompt == "and now?" && second.exchanges.last?.answer == "done", "\(second.exchanges.map(\.prompt))")
        #expect(second.position.offset == second.position.size)
    }
}
