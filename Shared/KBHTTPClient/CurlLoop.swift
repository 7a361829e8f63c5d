import CCurl
import Foundation
import Synchronization

// MARK: - The loop

/// Drives libcurl's multi handle with its socket interface (`curl_multi_socket_action`) over an
/// epoll set of libcurl's sockets.
///
/// Whoever holds the driver lock may call libcurl: the caller of `submit` starts its transfer
/// itself when the lock is free (on a reused connection the request is written before `submit`
/// returns, without waking another thread), and the loop's own thread waits in `epoll_wait` for
/// answers and time limits, taking the lock only while it hands libcurl what became ready.
/// libcurl's next time limit is a timerfd in the same epoll set, so a starter whose transfer
/// brings that limit forward re-arms the timer instead of waking the thread. When the lock is
/// busy, the work is queued for the thread and the thread woken (an eventfd in the set).
final class CurlLoop: @unchecked Sendable {
    enum Command {
        case add(Transfer)
        case cancel(Transfer)
        case resume(Transfer)
    }

    /// What only the holder of the driver lock touches.
    private struct Driver {
        /// Transfers being driven, by easy handle.
        var active: [UnsafeMutableRawPointer: Transfer] = [:]
        /// When the timer wakes the loop's thread, in CLOCK_MONOTONIC nanoseconds (`.max`:
        /// never armed; a time passed: it fired): whoever moves libcurl's next time limit before
        /// that re-arms it. A later limit leaves it: the thread wakes early once, finds nothing
        /// due and arms it again.
        var timerAt: Int64 = .max
        /// Set by the thread's last act: from then on nothing may be added (no thread would
        /// drive it).
        var stopped = false
    }

    let configuration: HTTPClient.Configuration
    private let multi: UnsafeMutableRawPointer
    private let sockets: OpaquePointer
    private let driver = Mutex(Driver())
    private let commands = Mutex<(queue: [Command], stopping: Bool)>(([], false))

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    init(configuration: HTTPClient.Configuration) {
        _ = Self.globalInit
        self.configuration = configuration
        multi = curl_multi_init()
        guard let sockets = kb_curl_sockets_create(multi) else {
            fatalError("kb-http-client: could not make an epoll set, eventfd or timerfd (\(String(cString: strerror(errno))))")
        }
        self.sockets = sockets
        kb_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, configuration.maximumIdleConnections)
        kb_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, configuration.maximumConnectionsPerHost)
        kb_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, 2 /* CURLPIPE_MULTIPLEX */)
        // The thread keeps the loop alive until `shutdown` ends `run` (HTTPClient's deinit calls it).
        let thread = Thread { [self] in self.run() }
        thread.name = "kb-http-client"
        thread.start()
    }

    func submit(_ transfer: Transfer) { perform(.add(transfer)) }
    func resume(_ transfer: Transfer) { perform(.resume(transfer)) }

    func cancel(_ transfer: Transfer, _ error: HTTPClientError) {
        guard transfer.markAborted(error) else { return }
        perform(.cancel(transfer))
    }

    /// Runs `command` here when the driver lock is free, else queues it for the loop's thread.
    /// Never from inside libcurl's callbacks: the driver lock is held there, and trying a lock
    /// the thread holds is a fatal error on Linux, not a failed try.
    private func perform(_ command: Command) {
        let stopping = commands.withLock { $0.stopping }
        if stopping {
            if case .add(let transfer) = command { transfer.finish(.failure(HTTPClientError(.shutDown, "the HTTP client was shut down"))) }
            return
        }
        let ran: Bool? = driver.withLockIfAvailable { driver in
            // Checked again here: `shutdown` may have let the thread finish since the check above.
            if driver.stopped {
                if case .add(let transfer) = command { transfer.finish(.failure(HTTPClientError(.shutDown, "the HTTP client was shut down"))) }
                return false
            }
            handle(command, &driver)
            pump(&driver)
            armTimer(&driver)
            return true
        }
        if ran == nil { enqueue(command) }
    }

    private func enqueue(_ command: Command) {
        let accepted = commands.withLock { commands in
            guard !commands.stopping else { return false }
            commands.queue.append(command)
            return true
        }
        if accepted {
            kb_curl_sockets_wake(sockets)
        } else if case .add(let transfer) = command {
            transfer.finish(.failure(HTTPClientError(.shutDown, "the HTTP client was shut down")))
        }
    }

    /// Stops the thread: every transfer still running fails with `shutDown`.
    func shutdown() {
        let first = commands.withLock { commands in
            defer { commands.stopping = true }
            return !commands.stopping
        }
        guard first else { return }
        kb_curl_sockets_wake(sockets)
    }

    private func run() {
        var fds = [Int32](repeating: 0, count: 64)
        var flags = [Int32](repeating: 0, count: 64)
        while true {
            // The timer, a socket or a wake-up ends the wait; a minute at most, should the timer
            // ever fail to arm (a syscall whose failure nothing else would notice).
            let ready = kb_curl_sockets_wait(sockets, 60_000, &fds, &flags, 64)
            let stopping = commands.withLock { $0.stopping }
            if stopping { break }
            driver.withLock { driver in
                var running: Int32 = 0
                for index in 0..<max(0, Int(ready)) {
                    kb_curl_multi_socket_action(multi, fds[index], flags[index], &running)
                }
                pump(&driver)
                armTimer(&driver)
            }
        }
        // Shut down, under the driver lock so that no caller adds a transfer after it: fail what
        // was queued and what runs. The multi handle is freed in deinit: a caller may still be
        // about to wake the thread.
        driver.withLock { driver in
            driver.stopped = true
            let queued = commands.withLock { commands in
                defer { commands.queue = [] }
                return commands.queue
            }
            for command in queued {
                if case .add(let transfer) = command { transfer.finish(.failure(HTTPClientError(.shutDown, "the HTTP client was shut down"))) }
            }
            for (_, transfer) in driver.active { remove(transfer, .failure(HTTPClientError(.shutDown, "the HTTP client was shut down")), &driver) }
        }
    }

    deinit {
        curl_multi_cleanup(multi)
        kb_curl_sockets_destroy(sockets)
    }

    /// Under the driver lock: the queued commands, libcurl's due time limits (new transfers are
    /// due at once), and the transfers that ended.
    private func pump(_ driver: inout Driver) {
        let queued = commands.withLock { commands in
            defer { commands.queue = [] }
            return commands.queue
        }
        for command in queued { handle(command, &driver) }
        var running: Int32 = 0
        // A few rounds at most: each can make more work due at once (a connection reused …).
        for _ in 0..<4 {
            var milliseconds = -1
            curl_multi_timeout(multi, &milliseconds)
            guard milliseconds == 0 else { break }
            kb_curl_multi_timeout_action(multi, &running)
        }
        collectFinished(&driver)
    }

    /// Under the driver lock: arms the timer for libcurl's next time limit when that comes
    /// before the timer's setting or the setting has passed (a syscall, where waking the thread
    /// was a context switch).
    private func armTimer(_ driver: inout Driver) {
        var milliseconds = -1
        curl_multi_timeout(multi, &milliseconds)
        guard milliseconds >= 0 else { return }
        // Bounded: a limit centuries away (a huge configured time limit) must not overflow.
        let now = Self.now()
        // libcurl rounds the time left down to whole milliseconds: a limit "1 ms" away may be
        // 1.9 ms away, and a timer set at 1 ms would wake the thread to find nothing due.
        let deadline = now + Int64(min(milliseconds, 86_400_000) + (milliseconds > 0 ? 1 : 0)) * 1_000_000
        // A setting already passed has fired (or is about to wake the thread): replace it.
        guard deadline < driver.timerAt || driver.timerAt <= now else { return }
        driver.timerAt = deadline
        kb_curl_sockets_arm(sockets, deadline)
    }

    private static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    private func handle(_ command: Command, _ driver: inout Driver) {
        switch command {
        case .add(let transfer):
            if let abort = transfer.abortReason {
                transfer.finish(.failure(abort))
                return
            }
            transfer.attach()
            driver.active[transfer.easy] = transfer
            let added = curl_multi_add_handle(multi, transfer.easy)
            if added != CURLM_OK {
                driver.active.removeValue(forKey: transfer.easy)
                transfer.finish(.failure(HTTPClientError(.other, "libcurl refused the transfer: \(String(cString: curl_multi_strerror(added)))")))
                transfer.detach()
            }
        case .cancel(let transfer):
            if driver.active[transfer.easy] != nil {
                remove(transfer, .failure(transfer.abortReason ?? HTTPClientError(.cancelled, "the request was cancelled")), &driver)
            }
        case .resume(let transfer):
            if driver.active[transfer.easy] != nil { curl_easy_pause(transfer.easy, 0 /* CURLPAUSE_CONT */) }
        }
    }

    private func collectFinished(_ driver: inout Driver) {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle, let transfer = driver.active[easy] else { continue }
            let code = message.pointee.data.result
            remove(transfer, code == CURLE_OK ? .success(()) : .failure(Self.error(code, transfer)), &driver)
        }
    }

    private func remove(_ transfer: Transfer, _ result: Result<Void, HTTPClientError>, _ driver: inout Driver) {
        driver.active.removeValue(forKey: transfer.easy)
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
