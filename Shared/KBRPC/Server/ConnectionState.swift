import NIOCore
import Synchronization

/// One server connection's bookkeeping: the requests in flight (bounded, for backpressure), each
/// with its task and deadline, and whether the connection is draining for shutdown.
final class ConnectionState: Sendable {
    /// A request being handled.
    struct Request {
        var task: Task<Void, Never>?
        var id: UInt64 = 0
        var method = ""
        var deadline: ContinuousClock.Instant?
        var started = ContinuousClock.now
        let claim: ResponseClaim
    }

    private struct State {
        var inFlight = 0
        var waiter: CheckedContinuation<Void, Never>?
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        var draining = false
        var nextKey: UInt64 = 0
        var requests: [UInt64: Request] = [:]
    }

    let channel: any Channel
    let maxInFlight: Int
    private let state = Mutex(State())
    private let writer = Mutex<NIOAsyncChannelOutboundWriter<ByteBuffer>?>(nil)

    init(channel: any Channel, maxInFlight: Int) {
        self.channel = channel
        self.maxInFlight = max(1, maxInFlight)
    }

    /// Sets where responses go, once the connection is being served.
    func setWriter(_ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) {
        writer.withLock { $0 = outbound }
    }

    /// Writes one response frame; a closed connection drops it.
    func write(_ frame: ByteBuffer) async {
        try? await writer.withLock { $0 }?.write(frame)
    }

    // MARK: Slots

    /// Takes a slot for a new request, waiting while the connection is at its limit. While the
    /// reader waits here it stops pulling frames, so the socket stops being read: backpressure.
    /// Returns the request's key and its response claim.
    func acquire() async -> (key: UInt64, claim: ResponseClaim) {
        let claim = ResponseClaim()
        // Fast path: a free slot is taken without suspending the reader.
        let taken = state.withLock { state -> UInt64? in
            guard state.inFlight < maxInFlight else { return nil }
            state.inFlight += 1
            state.nextKey += 1
            state.requests[state.nextKey] = Request(claim: claim)
            return state.nextKey
        }
        if let taken { return (taken, claim) }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.inFlight < maxInFlight {
                    state.inFlight += 1
                    return true
                }
                state.waiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
        let key = state.withLock { state -> UInt64 in
            state.nextKey += 1
            state.requests[state.nextKey] = Request(claim: claim)
            return state.nextKey
        }
        return (key, claim)
    }

    /// Records the task serving request `key`, so a deadline or a shutdown can cancel it.
    func attach(_ task: Task<Void, Never>, to key: UInt64) {
        state.withLock { state in
            if state.requests[key] != nil { state.requests[key]!.task = task }
        }
    }

    /// Records what request `key` is and when its caller stops waiting.
    func setDeadline(_ deadline: ContinuousClock.Instant, id: UInt64, method: String, for key: UInt64) {
        state.withLock { state in
            state.requests[key]?.deadline = deadline
            state.requests[key]?.id = id
            state.requests[key]?.method = method
        }
    }

    /// Ends request `key` and gives its slot back; closes the connection if it is draining and
    /// this was the last request.
    func finish(_ key: UInt64) {
        let (waiter, idle, closeNow) = state.withLock { state -> (CheckedContinuation<Void, Never>?, [CheckedContinuation<Void, Never>], Bool) in
            state.requests.removeValue(forKey: key)
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, [], false)  // the slot passes straight to the waiting reader
            }
            state.inFlight -= 1
            guard state.inFlight == 0 else { return (nil, [], false) }
            defer { state.idleWaiters = [] }
            return (nil, state.idleWaiters, state.draining)
        }
        waiter?.resume()
        idle.forEach { $0.resume() }
        if closeNow { channel.close(promise: nil) }
    }

    /// Returns once no request is in flight.
    func waitUntilIdle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                if state.inFlight == 0 { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    // MARK: Deadlines and shutdown

    /// Takes the response of every request past its deadline away from its handler and cancels
    /// the handler; returns those requests so the caller can answer `DEADLINE_EXCEEDED`.
    func expire(now: ContinuousClock.Instant) -> [Request] {
        let overdue = state.withLock { state in
            state.requests.values.filter { request in request.deadline.map { $0 <= now } ?? false }
        }
        return overdue.filter { request in
            guard request.claim.claim() else { return false }
            request.task?.cancel()
            return true
        }
    }

    /// Cancels every request's handler (the server is stopping now, not draining).
    func cancelAll() {
        for request in state.withLock({ Array($0.requests.values) }) { request.task?.cancel() }
    }

    /// Whether no request is in flight.
    var isIdle: Bool { state.withLock { $0.inFlight == 0 } }

    /// Whether the connection answers new requests with `UNAVAILABLE` until it closes.
    var isDraining: Bool { state.withLock { $0.draining } }

    /// Starts draining: closes now if idle, else when the last in-flight request finishes.
    func drain() {
        let closeNow = state.withLock { state -> Bool in
            state.draining = true
            return state.inFlight == 0
        }
        if closeNow { channel.close(promise: nil) }
    }
}

/// Decides who answers a request: its handler or its deadline, whichever comes first.
final class ResponseClaim: Sendable {
    private let taken = Atomic<Bool>(false)

    /// True for the first caller only.
    func claim() -> Bool {
        !taken.exchange(true, ordering: .acquiringAndReleasing)
    }
}

/// Watches one connection from inside its pipeline: closes it when it has been silent for the
/// idle timeout with nothing in flight, and counts and logs frames that break the protocol
/// (whether or not the connection is still open to be told).
final class ConnectionGuard: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let connection: ConnectionState
    private let onMalformedFrame: @Sendable (Frame.Error) -> Void

    init(connection: ConnectionState, onMalformedFrame: @escaping @Sendable (Frame.Error) -> Void) {
        self.connection = connection
        self.onMalformedFrame = onMalformedFrame
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let frameError = error as? Frame.Error { onMalformedFrame(frameError) }
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if connection.isIdle { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
