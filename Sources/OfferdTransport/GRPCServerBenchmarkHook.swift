import Logging
import NIOCore

extension GRPCServer {
    /// Sets up an accepted cleartext connection's pipeline as ``start(configuration:service:group:logger:)``
    /// does (the first-bytes protocol detector, which then installs HTTP/2 or HTTP/1.1), for harnesses that
    /// drive a connection in process on an `EmbeddedChannel`: `benchmarks/peers`' `offerd-transport-loop`, whose
    /// instructions per call callgrind counts (`benchmarks/callgrind/transport.sh`). Not API: the SPI exists so
    /// that the harness measures the production pipeline, not a copy of it.
    @_spi(Benchmarks)
    public static func configureCleartextConnection(
        _ channel: any Channel,
        configuration: GRPCServerConfiguration,
        service: any GRPCUnaryService
    ) throws {
        try channel.pipeline.syncOperations.addHandler(
            Self.protocolDetector(
                configuration: configuration, service: service, callCounter: GRPCActiveCallCounter(),
                logger: Logger(label: "offerd.transport")
            )
        )
    }
}
