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
final class ResponseRouter: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = OutboundCall
    typealias OutboundOut = ByteBuffer

    private var pending: [UInt64: (promise: EventLoopPromise<Kb_Rpc_V1_Envelope>, timer: Scheduled<Void>)] = [:]
    /// Set when the server said why it is closing (an envelope with id 0).
    private var closeReason: RPCError?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        if let closeReason {
            call.promise.fail(closeReason)
            promise?.fail(closeReason)
            return
        }
        let id = call.id
        let this = NIOLoopBound(self, eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: call.timeout) {
            this.value.fail(id: id, with: RPCError(.deadlineExceeded, "no response within \(call.timeout.nanoseconds / 1_000_000) ms"))
        }
        pending[id] = (call.promise, timer)
        context.writeAndFlush(wrapOutboundOut(call.frame)).whenFailure { error in
            this.value.fail(id: id, with: RPCError(.unavailable, "could not send the request: \(error)"))
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
        guard let entry = pending.removeValue(forKey: envelope.id) else { return }  // late or cancelled
        entry.timer.cancel()
        entry.promise.succeed(envelope)
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
        context.fireChannelInactive()
    }

    private func fail(id: UInt64, with error: RPCError) {
        guard let entry = pending.removeValue(forKey: id) else { return }
        entry.timer.cancel()
        entry.promise.fail(error)
    }

    private func failAll(with error: RPCError) {
        let calls = pending
        pending.removeAll()
        for (_, entry) in calls {
            entry.timer.cancel()
            entry.promise.fail(error)
        }
    }
}
