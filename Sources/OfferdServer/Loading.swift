#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OfferdCore
import OfferdSnapshot

/// A catalog or snapshot that could not be loaded; the message names the file and the problem.
public struct LoadError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Reads a whole regular file; errors name the path and the system's reason.
public func readWholeFile(_ path: String) throws(LoadError) -> [UInt8] {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw LoadError("\(path): \(String(cString: strerror(errno)))") }
    defer { close(descriptor) }
    var status = stat()
    guard fstat(descriptor, &status) == 0 else { throw LoadError("\(path): \(String(cString: strerror(errno)))") }
    guard (status.st_mode & S_IFMT) == S_IFREG else { throw LoadError("\(path): not a regular file") }
    var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
    var filled = 0
    while filled < bytes.count {
        let count = bytes.withUnsafeMutableBytes { buffer in
            read(descriptor, buffer.baseAddress! + filled, buffer.count - filled)  // count > 0, so baseAddress exists
        }
        if count < 0 {
            if errno == EINTR { continue }
            throw LoadError("\(path): \(String(cString: strerror(errno)))")
        }
        if count == 0 { break }  // the file shrank while we read it
        filled += count
    }
    bytes.removeSubrange(filled...)
    return bytes
}

/// Loads, validates and compiles a catalog file into a ready engine.
public func loadCatalog(path: String, options: EngineOptions) throws(LoadError) -> LoadedCatalog {
    let bytes = try readWholeFile(path)
    do {
        let catalog = try Catalog.load(bytes: bytes, fileName: path)
        return LoadedCatalog(engine: DecisionEngine(catalog: catalog, options: options), path: path)
    } catch {
        throw LoadError(error.description)
    }
}

/// Loads and verifies a profile snapshot.
public func loadSnapshot(path: String) throws(LoadError) -> ProfileSnapshot {
    do {
        return try ProfileSnapshot.load(path: path)
    } catch {
        throw LoadError(error.description)
    }
}
