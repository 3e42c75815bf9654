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
