import Dispatch
import Testing

@testable import OfferdSnapshot

/// A published value that knows its version.
private final class Versioned: Sendable {
    let number: Int

    init(_ number: Int) {
        self.number = number
    }
}

@Suite("Atomic reference store")
struct AtomicReferenceStoreTests {
    @Test func startsEmptyOrWithTheInitialValue() {
        #expect(AtomicReferenceStore<Versioned>(nil).load() == nil)
        #expect(AtomicReferenceStore(Versioned(3)).load()?.number == 3)
    }

    @Test func publishReplacesTheValue() {
        let store = AtomicReferenceStore<Versioned>(nil)
        store.publish(Versioned(1))
        #expect(store.load()?.number == 1)
        store.publish(Versioned(2))
        #expect(store.load()?.number == 2)
    }

    @Test func readersNeverSeeVersionsGoBackwards() {
        let store = AtomicReferenceStore(Versioned(0))
        let readers = 3
        let versions = 1_000
        let failures = LockedState(0)
        let reads = LockedState(0)
        DispatchQueue.concurrentPerform(iterations: readers + 1) { worker in
            if worker == 0 {
                for version in 1...versions { store.publish(Versioned(version)) }
                return
            }
            var last = 0
            var count = 0
            while last < versions {
                guard let value = store.load() else {
                    failures.withLock { $0 += 1 }
                    return
                }
                if value.number < last { failures.withLock { $0 += 1 } }
                last = value.number
                count += 1
            }
            reads.withLock { $0 += count }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(reads.withLock { $0 } >= readers)
        #expect(store.load()?.number == versions)
    }

    @Test func oldValueLivesWhileAReaderHoldsItAndIsFreedAfter() {
        let store = AtomicReferenceStore(Versioned(1))
        weak var weakOld: Versioned?
        var held: Versioned? = store.load()
        weakOld = held
        store.publish(Versioned(2))
        #expect(weakOld?.number == 1, "freed while a reader held it")
        #expect(store.load()?.number == 2)
        held = nil
        #expect(weakOld == nil, "not freed after the last reader dropped it")
        _ = held
    }
}
