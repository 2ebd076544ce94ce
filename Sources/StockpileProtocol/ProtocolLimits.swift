// The limits of SPEC §5 that the wire enforces before anything reaches the engine, with the reason
// for each. The engine enforces its own (lines per reservation, quantities) in `Limits`.

public struct ProtocolLimits: Sendable, Hashable {
    /// One request, framing included. A client that sends more is broken or hostile; Redis's own
    /// limit for an inline request is 64 KiB too.
    public var requestByteCountMax: Int
    /// Arguments of one request, the command name included: 256 lines of three words fit with room.
    public var argumentCountMax: Int

    public static let requestByteCountDefault = 64 * 1024
    public static let argumentCountDefault = 1024

    public init(requestByteCountMax: Int = requestByteCountDefault, argumentCountMax: Int = argumentCountDefault) {
        precondition(requestByteCountMax >= 64 && argumentCountMax >= 1, "limits too small to carry any command")
        self.requestByteCountMax = requestByteCountMax
        self.argumentCountMax = argumentCountMax
    }
}
