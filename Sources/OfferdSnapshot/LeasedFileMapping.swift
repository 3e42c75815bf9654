import Dispatch

// A snapshot file mapped in place under a read lease, and the one place that
// reacts when a writer breaks a lease. One of the files of OfferdSnapshot that
// hold unsafe code (the list is in ProfileSnapshot.swift); the builder maps its
// source through it too (OfferdSnapshotBuilder's MappedSource).
#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A whole snapshot file mapped read-only (`MAP_SHARED`) while this process holds a read lease on it.
///
/// Why a lease: a plain mapping of a file that another process truncates faults with SIGBUS on the next read of
/// a vanished page, and one rewritten in place changes under a verified snapshot. While a read lease is held, the
/// kernel makes every open of the file for writing (and every truncation) wait, and tells this process first.
/// On that notice (``LeaseBreakMonitor``) the mapping copies its still-intact bytes into anonymous memory and
/// moves that copy over the mapping's own addresses in one `mremap`: readers keep reading the same bytes at the
/// same addresses without noticing, and only then is the lease released and the writer let through.
///
/// The bytes start on a 2 MiB boundary so that both the file's large folios and, after a hand-over, transparent
/// huge pages can be mapped with 2 MiB entries.
package final class LeasedFileMapping: @unchecked Sendable {
    /// The mapped bytes: the file's first `count` bytes, at an address that never changes.
    package let start: UnsafeMutableRawPointer
    package let count: Int
    /// The mapped length (`count` rounded up to whole pages).
    private let mappedLength: Int
    /// The address range reserved for the mapping (alignment slack included); unmapped as a whole at the end.
    private let reservation: UnsafeMutableRawPointer
    private let reservationLength: Int
    private let state: LockedState<State>

    private enum State {
        /// Reading the file's pages; the descriptor holds the lease.
        case leased(PosixFile)
        /// Reading a private copy at the same addresses; the lease is released.
        case handedOver
        /// The copy could not be made: the lease is kept (the writer waits) until this mapping is released.
        case handOverFailed(PosixFile, SystemCallError)
    }

    static let hugePageLength = 2 << 20
    private static let pageLength = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Why the file could not be mapped under a lease; the loader then reads it into memory instead.
    package struct Unavailable: Error, CustomStringConvertible {
        package var description: String
    }

    private init(
        start: UnsafeMutableRawPointer, count: Int, mappedLength: Int, reservation: UnsafeMutableRawPointer,
        reservationLength: Int, file: PosixFile
    ) {
        self.start = start
        self.count = count
        self.mappedLength = mappedLength
        self.reservation = reservation
        self.reservationLength = reservationLength
        state = LockedState(.leased(file))
    }

    deinit {
        LeaseBreakMonitor.shared?.unregister(self)
        // Unmapping first, then closing the descriptor (in State's PosixFile deinit) releases the lease.
        munmap(reservation, reservationLength)
    }

    /// Whether reads are still served by the file's pages (false once handed over to a private copy).
    package var isFileMapped: Bool {
        state.withLock { if case .handedOver = $0 { false } else { true } }
    }

    /// Takes a read lease on `file` (opened read-only by the caller, who keeps no other use of it) and maps
    /// its first bytes; `count(file)` is asked under the lease, when the size can no longer change.
    ///
    /// - Returns: the mapping and the size it covers, or why there is none (no lease, empty file, mmap failure).
    package static func map(file: PosixFile, count: (PosixFile) throws(SystemCallError) -> Int) -> Result<
        LeasedFileMapping, Unavailable
    > {
        #if os(Linux)
            guard let monitor = LeaseBreakMonitor.shared else {
                return .failure(Unavailable(description: "no lease-break notification in this process"))
            }
            do {
                try file.takeReadLease()
            } catch {
                let reason: String
                switch error.errorNumber {
                case EAGAIN: reason = "the file is open for writing"
                case EACCES, EPERM: reason = "this process does not own the file"
                case EINVAL, ENOLCK: reason = "the file system does not support leases"
                default: reason = "\(error)"
                }
                return .failure(Unavailable(description: "no read lease: \(reason)"))
            }
            let length: Int
            do {
                length = try count(file)
            } catch {
                file.releaseLease()
                return .failure(Unavailable(description: "\(error)"))
            }
            guard length > 0 else {
                file.releaseLease()
                return .failure(Unavailable(description: "empty file"))
            }
            let mappedLength = (length + pageLength - 1) / pageLength * pageLength
            let reservationLength = mappedLength + hugePageLength
            // An inaccessible reservation, then the file mapped over its first 2 MiB boundary.
            guard
                let reservation = mmap(
                    nil, reservationLength, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
                reservation != MAP_FAILED
            else {
                file.releaseLease()
                return .failure(Unavailable(description: "\(SystemCallError.last("mmap"))"))
            }
            let misalignment = Int(bitPattern: reservation) % hugePageLength
            let start = misalignment == 0 ? reservation : reservation + (hugePageLength - misalignment)
            guard
                let mapped = mmap(start, mappedLength, PROT_READ, MAP_SHARED | MAP_FIXED, file.descriptor, 0),
                mapped == start
            else {
                let error = SystemCallError.last("mmap")
                munmap(reservation, reservationLength)
                file.releaseLease()
                return .failure(Unavailable(description: "\(error)"))
            }
            // Advice only. Pages the page cache does not hold yet are then read in 2 MiB folios, mapped by 2 MiB
            // entries (fewer TLB misses on lookups); pages already cached keep the folio size they were written
            // or read with.
            _ = madvise(start, mappedLength, MADV_HUGEPAGE)
            let mapping = LeasedFileMapping(
                start: start, count: length, mappedLength: mappedLength, reservation: reservation,
                reservationLength: reservationLength, file: file)
            // Registered before the first read: a writer that arrives during the load is handled as well.
            monitor.register(mapping)
            // The lease may have been broken between taking it and registering; the monitor's check covers it.
            mapping.handOverIfLeaseBreaking()
            return .success(mapping)
        #else
            return .failure(Unavailable(description: "file leases are Linux-only"))
        #endif
    }

    /// Copies the mapped bytes into private memory at the same addresses and releases the lease, if a writer is
    /// waiting for it. Runs on the monitor's queue; serialised with itself by the state lock.
    func handOverIfLeaseBreaking() {
        #if os(Linux)
            state.withLock { state in
                guard case .leased(let file) = state, file.leaseIsBreakingOrGone else { return }
                do throws(SystemCallError) {
                    try moveIntoPrivateCopy()
                    state = .handedOver
                    file.releaseLease()
                    try? file.close()
                } catch {
                    // Out of memory, most likely. Keeping the lease keeps the writer waiting until the last reader
                    // lets go of this snapshot (or the kernel's lease-break time runs out).
                    state = .handOverFailed(file, error)
                }
            }
        #endif
    }

    #if os(Linux)
        /// Copies the mapping into fresh anonymous memory (huge pages requested) and moves the copy over it.
        private func moveIntoPrivateCopy() throws(SystemCallError) {
            let hugePage = Self.hugePageLength
            let copyLength = mappedLength + hugePage
            guard let copy = mmap(nil, copyLength, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                copy != MAP_FAILED
            else { throw SystemCallError.last("mmap") }
            // Whatever was not moved (alignment slack, or everything on failure) is unmapped here.
            defer { munmap(copy, copyLength) }
            let misalignment = Int(bitPattern: copy) % hugePage
            let copyStart = misalignment == 0 ? copy : copy + (hugePage - misalignment)
            _ = madvise(copyStart, (mappedLength + hugePage - 1) / hugePage * hugePage, MADV_HUGEPAGE)
            // Addresses as integers: raw pointers are not Sendable, and both ranges outlive the copy.
            let sourceAddress = Int(bitPattern: start)
            let copyAddress = Int(bitPattern: copyStart)
            let mappedLength = mappedLength
            let parts = mappedLength >= SnapshotBuffer.parallelThreshold ? 2 : 1
            let partLength = (mappedLength / parts + hugePage - 1) / hugePage * hugePage
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let from = part * partLength
                let to = min(mappedLength, from + partLength)
                guard from < to, let source = UnsafeRawPointer(bitPattern: sourceAddress + from),
                    let destination = UnsafeMutableRawPointer(bitPattern: copyAddress + from)
                else { return }
                memcpy(destination, source, to - from)
            }
            _ = mprotect(copyStart, mappedLength, PROT_READ)
            try LinuxFileLease.movePages(from: copyStart, length: mappedLength, to: start)
        }
    #endif
}

/// Hears about lease breaks and hands the affected mappings over to private copies.
///
/// The kernel announces a lease break with SIGIO to the lease holder. A Dispatch signal source receives it
/// outside any signal handler (libdispatch reads it from a signalfd and makes sure no thread runs the default
/// action, which would end the process). The signal does not say which file, so every registered mapping
/// checks its own lease (`F_GETLEASE`, one system call each). A timer does the same check every second, in
/// case a notification is ever lost: the kernel would otherwise break the lease by force after
/// `/proc/sys/fs/lease-break-time` seconds and let a writer change pages still in use.
final class LeaseBreakMonitor: Sendable {
    /// The monitor of this process; nil where leases cannot be watched (then snapshots are read, not mapped).
    static let shared: LeaseBreakMonitor? = LeaseBreakMonitor()

    private struct WeakMapping {
        weak var mapping: LeasedFileMapping?
    }

    private let queue = DispatchQueue(label: "offerd.snapshot-lease-breaks")
    private let mappings = LockedState<[ObjectIdentifier: WeakMapping]>([:])
    private let sources: LockedState<[any DispatchSourceProtocol]>

    private init?() {
        #if os(Linux)
            sources = LockedState([])
            let signal = DispatchSource.makeSignalSource(signal: SIGIO, queue: queue)
            let timer = DispatchSource.makeTimerSource(queue: queue)
            sources.withLock { $0 = [signal, timer] }
            signal.setEventHandler { [weak self] in self?.checkAll() }
            timer.setEventHandler { [weak self] in self?.checkAll() }
            timer.schedule(deadline: .now() + 1, repeating: 1, leeway: .milliseconds(100))
            signal.resume()
            timer.resume()
            // Leases are taken only once SIGIO no longer has its default action (end the process): libdispatch
            // installs its handler when it registers the source, which may happen on another thread.
            guard Self.waitForSignalHandler(SIGIO) else {
                signal.cancel()
                timer.cancel()
                return nil
            }
        #else
            return nil
        #endif
    }

    func register(_ mapping: LeasedFileMapping) {
        mappings.withLock { $0[ObjectIdentifier(mapping)] = WeakMapping(mapping: mapping) }
    }

    func unregister(_ mapping: LeasedFileMapping) {
        _ = mappings.withLock { $0.removeValue(forKey: ObjectIdentifier(mapping)) }
    }

    /// Runs on `queue`.
    private func checkAll() {
        let live = mappings.withLock { $0.values.compactMap(\.mapping) }
        for mapping in live { mapping.handOverIfLeaseBreaking() }
    }

    #if os(Linux)
        /// Whether a handler (not the default action) is installed for `signal` within about two seconds.
        private static func waitForSignalHandler(_ signal: Int32) -> Bool {
            for _ in 0..<2_000 {
                var current = sigaction()
                if sigaction(signal, nil, &current) == 0,
                    unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self) != 0
                {
                    return true
                }
                usleep(1_000)
            }
            return false
        }
    #endif
}
