import Foundation
import KBRPC
import KBProto

/// How the command-line tools (`ukb`, `kb budget`) call a service: the address and token from the
/// environment (`KB_<SERVICE>_ADDR`, `KB_AUTH_TOKEN`), one connection, a quick reachability check
/// so a stopped service fails in a second or two rather than at the call deadline, and every
/// failure as one line `tool: reason` on stderr with exit status 1.
public enum CommandLineClient {
    /// Runs `body` with a client of `service`. Errors for which `passThrough` is true (e.g. the
    /// argument parser's exit codes) are rethrown after the client is closed.
    public static func run(
        _ service: ServiceDescriptor,
        tool: String,
        passThrough: (any Error) -> Bool = { _ in false },
        _ body: (RPCClient) async throws -> Void
    ) async throws {
        let client: RPCClient
        do {
            client = try makeClient(service, source: ConfigSource.fromProcess())
        } catch {
            fail(tool, "\(error)")
        }
        do {
            do {
                _ = try await client.call(HealthMethods.check, .init(), options: CallOptions(timeout: .milliseconds(1500)))
            } catch let error as RPCError where error.code == .unavailable || error.code == .deadlineExceeded {
                await client.close()
                fail(tool, "\(service.name) is not reachable at \(client.configuration.host):\(client.configuration.port) (\(error.message)); start it with `kb up`")
            }
            try await body(client)
            await client.close()
        } catch let error as RPCError {
            await client.close()
            fail(tool, "\(error.code.name): \(error.message)")
        } catch {
            await client.close()
            if passThrough(error) { throw error }
            fail(tool, "\(error)")
        }
    }

    /// A command-line tool's client of `service`: its address and token from `source`, one
    /// connection, a 2 s connect timeout (a stopped service fails fast).
    public static func makeClient(_ service: ServiceDescriptor, source: ConfigSource) throws -> RPCClient {
        var configuration = try source.clientConfiguration(for: service)
        configuration.connections = 1
        configuration.connectTimeout = .seconds(2)
        return RPCClient(configuration: configuration)
    }

    /// Prints `tool: reason` on stderr and exits 1.
    public static func fail(_ tool: String, _ reason: String) -> Never {
        FileHandle.standardError.write(Data("\(tool): \(reason)\n".utf8))
        exit(1)
    }
}
