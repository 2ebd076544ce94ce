// The handoff between replay's stages: every consumer takes every batch, in order, and what waits is
// bounded by the log's bytes its batches stand for, however far ahead the producer would run.

import Foundation
@testable import Stockpile
import StockpileWAL
import Synchronization
import Testing

@Suite("Replay's batch handoff")
struct BatchHandoffTests {
    @Test("every consumer takes every batch in order, and at most the bound's worth of the log waits")
    func boundedAndInOrder() {
        let batchByteCount = 100 * 1024
        let batchCount = 300
        let handoff = BatchHandoff<Int>(consumerCount: 2) { _ in batchByteCount }
        // The consumers start once the producer is about to put the batch that finds the handoff
        // full: from then on it can only put a batch when the consumers have taken one.
        let fullAt = (BatchHandoff<Int>.logByteCountMax + batchByteCount - 1) / batchByteCount
        let start = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let taken = Mutex<[[Int]]>([[], []])
        for c in 0..<2 {
            Thread {
                start.wait()
                while let b = handoff.take(consumer: c) { taken.withLock { $0[c].append(b) } }
                done.signal()
            }.start()
        }
        Thread {
            for k in 0..<batchCount {
                if k == fullAt { start.signal(); start.signal() }
                handoff.put(k)
            }
            handoff.finish(.failure(.io(WALIOError(operation: .read, path: "(test)", errno: EIO))), elapsed: .zero)
        }.start()
        done.wait()
        done.wait()
        #expect(taken.withLock { $0 } == [Array(0..<batchCount), Array(0..<batchCount)])
        // Full when the consumers started, and never more than one batch past the bound.
        #expect(handoff.mostWaitingLogByteCount >= BatchHandoff<Int>.logByteCountMax)
        #expect(handoff.mostWaitingLogByteCount < BatchHandoff<Int>.logByteCountMax + batchByteCount)
    }

    @Test("a batch larger than the bound is let in while less than the bound waits, and the next waits for it to be taken")
    func largeBatch() {
        let bound = BatchHandoff<Int>.logByteCountMax
        let handoff = BatchHandoff<Int>(consumerCount: 1) { $0 == 1 ? 3 * bound : 1024 }
        let start = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        Thread {
            for k in 0..<3 {
                // Batch 2 finds batches 0 and 1 waiting, over the bound: the consumer starts then.
                if k == 2 { start.signal() }
                handoff.put(k)
            }
            handoff.finish(.failure(.io(WALIOError(operation: .read, path: "(test)", errno: EIO))), elapsed: .zero)
            done.signal()
        }.start()
        start.wait()
        var got: [Int] = []
        while let b = handoff.take(consumer: 0) { got.append(b) }
        done.wait()
        #expect(got == [0, 1, 2])
        #expect(handoff.mostWaitingLogByteCount == 1024 + 3 * bound)
    }
}
