import FuzzDriver
import OfferdCore

/// The catalog loader on arbitrary bytes: a `Catalog` or a `CatalogLoadError`, never a crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCatalog(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    do {
        _ = try Catalog.load(bytes: bytes, fileName: "fuzz.json")
    } catch {
        _ = "\(error)"
    }
    return 0
}

/// The executable's entry (SwiftPM aliases `main` to it): hands the arguments and the target to libFuzzer.
@_cdecl("FuzzCatalog_main")
public func fuzzCatalogMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    offerd_fuzz_run(argc, argv) { data, size in fuzzCatalog(data, size) }
}
