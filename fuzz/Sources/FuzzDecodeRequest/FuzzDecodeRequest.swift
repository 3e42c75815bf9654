import FuzzDriver
import OfferdCore

// @testable (debug builds, see scripts/fuzz.sh): the protobuf-c decoder the direct reader is compared with is
// internal.
@testable import OfferdWire

/// The request decode path of a Decide call: wire bytes -> DecisionRequest -> validation (and, on the same
/// bytes, the JSON decoders of RecordEvents and UpdateConsent). Any input must end in
/// a value or a thrown `WireDecodeError`, never a crash; and the direct reader (`DecideRequestReader`), when it
/// reads the bytes at all, must read what protobuf-c's path does, which must then succeed.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDecodeRequest(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    let reference = Result { () throws(WireDecodeError) in try DecideCodec.decodeRequestThroughProtobufC(bytes) }
    if let direct = DecideRequestReader.read(bytes) {
        guard case .success(let expected) = reference else {
            fatalError("the direct reader read a request protobuf-c's path refuses: \(reference)")
        }
        // Compared by bits: a NaN context value is not == itself.
        guard samePayload(direct, expected) else {
            fatalError("the direct reader read \(direct), protobuf-c's path \(expected)")
        }
    }
    do {
        let request = try DecideCodec.decodeRequest(bytes)
        _ = request.validationError()
        // Round trip what decoded: the encoder must accept anything the decoder produced.
        _ = DecideCodec.encodeRequest(request)
    } catch {
        _ = error.message
    }
    // The live-state methods' proto3 JSON (Connect): a value or a WireDecodeError for any bytes, never a crash.
    let array = Array(bytes)
    _ = (try? EventsJSONCodec.decodeRecordEventsRequest(array))?.validationError(nowMs: 1_796_644_800_000)
    _ = (try? EventsJSONCodec.decodeUpdateConsentRequest(array))?.validationError()
    return 0
}

private func samePayload(_ lhs: DecisionRequest, _ rhs: DecisionRequest) -> Bool {
    func numbersAsBits(_ request: DecisionRequest) -> DecisionRequest {
        var request = request
        for (key, value) in request.context {
            // U+0000 never survives decoding, so no decoded string equals these.
            if case .number(let number) = value { request.context[key] = .string("\u{0}\(number.bitPattern)") }
        }
        return request
    }
    return numbersAsBits(lhs) == numbersAsBits(rhs)
}

/// The executable's entry (SwiftPM aliases `main` to it): hands the arguments and the target to libFuzzer.
@_cdecl("FuzzDecodeRequest_main")
public func fuzzDecodeRequestMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    offerd_fuzz_run(argc, argv) { data, size in fuzzDecodeRequest(data, size) }
}
