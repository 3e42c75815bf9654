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
///
/// Through the snapshot read path's `PosixFile`, the one place where offerd's file reads meet `errno`.
public func readWholeFile(_ path: String) throws(LoadError) -> [UInt8] {
    let file: PosixFile
    let status: FileStatus
    do {
        file = try PosixFile.openForReading(path)
        status = try FileStatus.of(file)
    } catch {
        throw LoadError("\(path): \(error.reason)")
    }
    defer { try? file.close() }
    guard status.isRegularFile else { throw LoadError("\(path): not a regular file") }
    do {
        // Fewer bytes when the file shrank while it was read.
        return try file.read(count: Int(status.size), at: 0)
    } catch {
        throw LoadError("\(path): \(error.reason)")
    }
}

/// Loads, validates and compiles a catalog file into a ready engine.
public func loadCatalog(
    path: String, options: EngineOptions, metrics: ServerMetrics? = nil
) throws(LoadError) -> LoadedCatalog {
    let bytes = try readWholeFile(path)
    do {
        let catalog = try Catalog.load(bytes: bytes, fileName: path)
        return LoadedCatalog(engine: DecisionEngine(catalog: catalog, options: options), path: path, metrics: metrics)
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
