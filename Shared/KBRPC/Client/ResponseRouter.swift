import KBProto
import NIOCore

/// A request on its way out: the encoded frame and where its response goes.
struct OutboundCall {
    let id: UInt64
    let frame: ByteBuffer
    let promise: EventLoopPromise<Kb_Rpc_V1_Envelope>
    let timeout: TimeAmount
}

/// Asks the connection to give up on a call (its caller was cancelled).
struct CancelCall {
    let id: UInt64
}

/// The client side of one connection: remembers the calls in flight, matches responses to them by
/// id whatever their order, fails calls at their deadline, and fails all of them when the
/// connection goes away. Runs on the channel's event loop only.
///
/// Requests written in one loop tick go out with one flush; one timer, armed for the earliest
/// deadline, serves every call's deadline (no timer per call).
final class ResponseRouter: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = OutboundCall
    typealias OutboundOut = ByteBuffer

    private struct Waiting {
        let promise: EventLoopPromise<Kb_Rpc_V1_Envelope>
        let deadline: NIODeadline
        let timeout: TimeAmount
    }

    private var pending: [UInt64: Waiting] = [:]
    /// Set when the server said why it is closing (an envelope with id 0).
    private var closeReason: RPCError?
    private var flushScheduled = false
    private var deadlineTimer = DeadlineTimer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        if let closeReason {
            call.promise.fail(closeReason)
            promise?.fail(closeReason)
            return
        }
        guard context.channel.isActive else {
            let error = RPCError(.unavailable, "connection closed")
            call.promise.fail(error)
            promise?.fail(error)
            return
        }
        let deadline = NIODeadline.now() + call.timeout
        pending[call.id] = Waiting(promise: call.promise, deadline: deadline, timeout: call.timeout)
        coverDeadline(deadline, context: context)
        // A failed write closes the channel, and channelInactive fails every pending call.
        context.write(wrapOutboundOut(call.frame), promise: nil)
        if !flushScheduled {
            flushScheduled = true
            context.eventLoop.assumeIsolated().execute {
                self.flushScheduled = false
                context.flush()
            }
        }
        promise?.succeed(())
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if let cancel = event as? CancelCall {
            fail(id: cancel.id, with: RPCError(.cancelled, "call cancelled by the caller"))
            promise?.succeed(())
        } else {
            context.triggerUserOutboundEvent(event, promise: promise)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let envelope = try? Frame.decodeEnvelope(frame) else {
            failAll(with: RPCError(.internal, "server sent a frame that is not an Envelope"))
            context.close(promise: nil)
            return
        }
        if envelope.id == 0 {
            // A connection-level error: fail what is pending and drop the connection (the
            // server closes it too), so the pool reconnects rather than reuse a broken one.
            let reason = RPCError(status: envelope.status) ?? RPCError(.unavailable, "server closed the connection")
            closeReason = reason
            context.close(promise: nil)
            failAll(with: reason)
            return
        }
        pending.removeValue(forKey: envelope.id)?.promise.succeed(envelope)  // nil: late or cancelled
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let reason = (error as? Frame.Error)?.rpcError ?? RPCError(.unavailable, "connection failed: \(error)")
        closeReason = closeReason ?? reason
        failAll(with: reason)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let reason = closeReason ?? RPCError(.unavailable, "connection closed")
        closeReason = reason
        failAll(with: reason)
        deadlineTimer.cancel()
        context.fireChannelInactive()
    }

    private func coverDeadline(_ deadline: NIODeadline, context: ChannelHandlerContext) {
        deadlineTimer.cover(deadline, on: context.eventLoop) { self.expireDeadlines(context: context) }
    }

    /// Fails every call past its deadline with `DEADLINE_EXCEEDED`; covers the next one.
    private func expireDeadlines(context: ChannelHandlerContext) {
        deadlineTimer.fired()
        let (overdue, next) = DeadlineTimer.overdue(pending, at: .now()) { $0.deadline }
        for id in overdue {
            guard let call = pending[id] else { continue }
            fail(id: id, with: RPCError(.deadlineExceeded, "no response within \(call.timeout.nanoseconds / 1_000_000) ms"))
        }
        if let next { coverDeadline(next, context: context) }
    }

    private func fail(id: UInt64, with error: RPCError) {
        pending.removeValue(forKey: id)?.promise.fail(error)
    }

    private func failAll(with error: RPCError) {
        let calls = pending
        pending.removeAll()
        for (_, call) in calls { call.promise.fail(error) }
    }
}
