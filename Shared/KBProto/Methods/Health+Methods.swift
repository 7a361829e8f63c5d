/// The methods of `kb.health.v1.Health`, served by every service.
public enum HealthMethods {
    /// The service's full name on the wire.
    public static let service = "kb.health.v1.Health"
    /// Reports whether the server (or one named service) is serving. Needs no token.
    public static let check = RPCMethod<Kb_Health_V1_HealthCheckRequest, Kb_Health_V1_HealthCheckResponse>(service: service, method: "Check")
}
