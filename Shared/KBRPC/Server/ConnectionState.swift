import NIOCore
import Synchronization

/// One server connection's bookkeeping: requests in flight (bounded, for backpressure) and
/// whether it is draining for shutdown.
final class ConnectionState: Sendable {
    private struct State {
        var inFlight = 0
        var waiter: CheckedContinuation<Void, Never>?
        var draining = false
    }

    let channel: any Channel
    let maxInFlight: Int
    private let state = Mutex(State())

    init(channel: any Channel, maxInFlight: Int) {
        self.channel = channel
        self.maxInFlight = max(1, maxInFlight)
    }

    /// Takes a slot for a new request, waiting while the connection is at its limit. While the
    /// reader waits here it stops pulling frames, so the socket stops being read: backpressure.
    func acquire() async {
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
    }

    /// Gives a slot back; closes the connection if it is draining and this was the last request.
    func release() {
        let (waiter, closeNow) = state.withLock { state -> (CheckedContinuation<Void, Never>?, Bool) in
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, false)  // the slot passes straight to the waiting reader
            }
            state.inFlight -= 1
            return (nil, state.draining && state.inFlight == 0)
        }
        waiter?.resume()
        if closeNow { channel.close(promise: nil) }
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
