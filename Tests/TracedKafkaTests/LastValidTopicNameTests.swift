import Foundation
import Synchronization
import Testing
@testable import TracedKafka

/// The producer's memory of the last valid topic name, read without a lock while other senders replace it.
@Suite("The last valid topic name")
struct LastValidTopicNameTests {
    @Test("Only the very name remembered is recognised: not another of the same length, not an equal one with other bytes")
    func recognisesOnlyTheSameName() {
        let cache = LastValidTopicName()
        let long = String(repeating: "orders-", count: 4)  // in heap storage
        #expect(!cache.isLast(long))
        cache.remember(long)
        #expect(cache.isLast(long))
        var changed = long
        changed.removeLast()
        changed.append("!")
        #expect(!cache.isLast(changed))
        #expect(!cache.isLast("K" + "elvin"))
        cache.remember("Kelvin")
        #expect(cache.isLast("Kelvin"))
        #expect(!cache.isLast("\u{212A}elvin"))  // canonically equal, other bytes
        #expect(!cache.isLast(long))
    }

    @Test("While a sender replaces it, a reader on another thread never sees a mix of two names' words")
    func noTornReads() {
        // "ab" and "cdefghijk" are valid small strings; the first word of one with the second of the other is the
        // words of "ab", six NULs and "k" (9 bytes), which is not valid.
        let mix = "ab\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}k"
        #expect(mix.utf8.count == 9)
        let cache = LastValidTopicName()
        let done = DispatchSemaphore(value: 0)
        let mixed = Atomic<Int>(0)
        // Threads, not tasks: two tasks without a suspension point may well run one after the other.
        Thread {
            for _ in 0..<1_000_000 {
                cache.remember("ab")
                cache.remember("cdefghijk")
            }
            done.signal()
        }.start()
        Thread {
            for _ in 0..<4_000_000 where cache.isLast(mix) { mixed.add(1, ordering: .relaxed) }
            done.signal()
        }.start()
        done.wait()
        done.wait()
        #expect(mixed.load(ordering: .relaxed) == 0)
    }
}
