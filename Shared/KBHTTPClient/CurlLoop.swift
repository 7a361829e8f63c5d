import CCurl
import Foundation
import Synchronization

// MARK: - The loop

/// The thread that drives libcurl's multi handle: it adds, resumes and removes transfers on
/// request, and waits in `curl_multi_poll` (woken by `curl_multi_wakeup`).
final class CurlLoop: @unchecked Sendable {
    enum Command {
        case add(Transfer)
        case cancel(Transfer)
        case resume(Transfer)
    }

    let configuration: HTTPClient.Configuration
    private let multi: UnsafeMutableRawPointer
    private let commands = Mutex<(queue: [Command], stopping: Bool)>(([], false))
    private let stopped = Mutex<Bool>(false)
    /// Transfers being driven, by easy handle (loop thread only).
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    init(configuration: HTTPClient.Configuration) {
        _ = Self.globalInit
        self.configuration = configuration
        multi = curl_multi_init()
        kb_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, configuration.maximumIdleConnections)
        kb_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, configuration.maximumConnectionsPerHost)
        kb_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, 2 /* CURLPIPE_MULTIPLEX */)
        // The thread keeps the loop alive until `shutdown` ends `run` (HTTPClient's deinit calls it).
        let thread = Thread { [self] in self.run() }
        thread.name = "kb-http-client"
        thread.start()
    }

    func submit(_ transfer: Transfer) { enqueue(.add(transfer), otherwise: HTTPClientError(.shutDown, "the HTTP client was shut down")) }
    func resume(_ transfer: Transfer) { enqueue(.resume(transfer), otherwise: nil) }

    func cancel(_ transfer: Transfer, _ error: HTTPClientError) {
        guard transfer.markAborted(error) else { return }
        enqueue(.cancel(transfer), otherwise: nil)
    }

    private func enqueue(_ command: Command, otherwise error: HTTPClientError?) {
        let accepted = commands.withLock { commands in
            guard !commands.stopping else { return false }
            commands.queue.append(command)
            return true
        }
        if accepted {
            curl_multi_wakeup(multi)
        } else if let error, case .add(let transfer) = command {
            transfer.finish(.failure(error))
        }
    }

    /// Stops the thread: every transfer still running fails with `shutDown`.
    func shutdown() {
        let first = commands.withLock { commands in
            defer { commands.stopping = true }
            return !commands.stopping
        }
        guard first else { return }
        curl_multi_wakeup(multi)
    }

    private func run() {
        var running: Int32 = 0
        while true {
            let (queue, stopping) = commands.withLock { commands in
                defer { commands.queue = [] }
                return (commands.queue, commands.stopping)
            }
            for command in queue { handle(command) }
            if stopping { break }
            curl_multi_perform(multi, &running)
            collectFinished()
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
        // Shut down: fail what runs, then free the multi handle.
        for command in commands.withLock({ $0.queue }) {
            if case .add(let transfer) = command { transfer.finish(.failure(HTTPClientError(.shutDown, "the HTTP client was shut down"))) }
        }
        for (_, transfer) in active { remove(transfer, .failure(HTTPClientError(.shutDown, "the HTTP client was shut down"))) }
        // The multi handle is freed in deinit: a caller may still be about to wake it.
    }

    deinit { curl_multi_cleanup(multi) }

    private func handle(_ command: Command) {
        switch command {
        case .add(let transfer):
            if let abort = transfer.abortReason {
                transfer.finish(.failure(abort))
                return
            }
            transfer.attach()
            active[transfer.easy] = transfer
            let added = curl_multi_add_handle(multi, transfer.easy)
            if added != CURLM_OK {
                active.removeValue(forKey: transfer.easy)
                transfer.finish(.failure(HTTPClientError(.other, "libcurl refused the transfer: \(String(cString: curl_multi_strerror(added)))")))
                transfer.detach()
            }
        case .cancel(let transfer):
            if active[transfer.easy] != nil {
                remove(transfer, .failure(transfer.abortReason ?? HTTPClientError(.cancelled, "the request was cancelled")))
            }
        case .resume(let transfer):
            if active[transfer.easy] != nil { curl_easy_pause(transfer.easy, 0 /* CURLPAUSE_CONT */) }
        }
    }

    private func collectFinished() {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle, let transfer = active[easy] else { continue }
            let code = message.pointee.data.result
            remove(transfer, code == CURLE_OK ? .success(()) : .failure(Self.error(code, transfer)))
        }
    }

    private func remove(_ transfer: Transfer, _ result: Result<Void, HTTPClientError>) {
        active.removeValue(forKey: transfer.easy)
        curl_multi_remove_handle(multi, transfer.easy)
        transfer.finish(result)
        transfer.detach()
    }

    /// libcurl's result as an error a caller can act on.
    static func error(_ code: CURLcode, _ transfer: Transfer) -> HTTPClientError {
        let detail = String(cString: transfer.errorBuffer)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT, CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION:
            return HTTPClientError(.connect, message)
        case CURLE_OPERATION_TIMEDOUT:
            if message.hasPrefix("Operation too slow") { return HTTPClientError(.tooSlow, message) }
            if message.contains("Connection timed out") || message.contains("Resolving timed out") || message.contains("Failed to connect") {
                return HTTPClientError(.connect, message)
            }
            return HTTPClientError(.timedOut, message)
        case CURLE_PARTIAL_FILE, CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_HTTP2, CURLE_HTTP2_STREAM:
            return HTTPClientError(.connectionLost, message)
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT:
            return HTTPClientError(.invalidRequest, message)
        case CURLE_WRITE_ERROR, CURLE_ABORTED_BY_CALLBACK:
            return transfer.abortReason ?? HTTPClientError(.cancelled, message)
        default:
            return HTTPClientError(.other, message)
        }
    }
}

extension Duration {
    /// Whole milliseconds (rounded down, at least 0).
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
