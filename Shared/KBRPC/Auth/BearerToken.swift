/// The one check of the shared token (`KB_AUTH_TOKEN`), for every surface that asks for it: the
/// RPC server's `authorization` metadata, VKB's writes and the budget service's admin routes
/// (`Authorization` header). The comparison takes the same time wherever the first difference is,
/// so a caller cannot learn the token a byte at a time from response times.
public enum BearerToken {
    /// Whether `presented` (an `Authorization` value, nil when absent) is `Bearer <token>`.
    /// The scheme is matched as written (`Bearer`, one space), like the RPC server always has.
    public static func matches(_ presented: String?, token: String) -> Bool {
        guard let presented else { return false }
        return constantTimeEquals(presented, "Bearer \(token)")
    }

    /// Whether `a` and `b` hold the same UTF-8 bytes, in time that depends on their lengths only,
    /// never on where they differ.
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        var difference = a.utf8.count == b.utf8.count ? 0 : 1 as UInt8
        var right = b.utf8.makeIterator()
        for byte in a.utf8 {
            // Past the end of `b` the byte is compared with 0; the lengths already differ.
            difference |= byte ^ (right.next() ?? 0)
        }
        return difference == 0
    }
}
