import FuzzDriver
import OfferdCore
import OfferdWire

/// The request decode path of a Decide call: wire bytes -> DecisionRequest -> validation. Any input must end in
/// a value or a thrown `WireDecodeError`, never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecodeRequest(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    do {
        let request = try DecideCodec.decodeRequest(bytes)
        _ = request.validationError()
        // Round trip what decoded: the encoder must accept anything the decoder produced.
        _ = DecideCodec.encodeRequest(request)
    } catch {
        _ = error.message
    }
    return 0
}

/// The executable's entry (SwiftPM aliases `main` to it): hands the arguments and the target to libFuzzer.
@_cdecl("FuzzDecodeRequest_main")
public func fuzzDecodeRequestMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    offerd_fuzz_run(argc, argv) { data, size in fuzzDecodeRequest(data, size) }
}
