// An event loop: one thread of its own (epoll_wait blocks, and must never block the cooperative
// pool) that reads requests from its connections, hands each connection's pipeline to the request
// handler as a batch, and writes the replies when the batch comes back. A server runs one loop per
// core; the first also accepts, and hands each new connection to the loops in turn, so that a
// connection lives on one loop (one thread) for its whole life. Loops share nothing but the engine,
// the statistics (atomics) and the request handler (immutable).
//
// The loop is also the task executor its batches run on, as swift-nio's event loops are: a batch
// task runs on the loop thread between two waits for readiness, and since the engine enters its
// shards synchronously, a batch with nothing to wait for runs start to finish without a thread
// switch. A batch that waits for the log suspends; the committing thread resumes it by enqueueing
// its job here (a task that prefers the loop is never relayed, `GroupCommitter.acknowledge`), which
// wakes the loop with the eventfd. Only the loop thread touches its connections;
// the mailbox and the job queue are the shared structures, each under a lock.

import CStockpileLinux
import Foundation
import Stockpile
import StockpileProtocol
import Synchronization

final class EventLoop: TaskExecutor, @unchecked Sendable {
    // @unchecked: everything below but `mailbox` and `jobs` belongs to the loop thread alone; other
    // threads only call `post` and `enqueue` (a lock and the eventfd), which are safe from anywhere.

    enum Message: Sendable {
        /// A turn's batches run: their results, each with its connection, and the turn's other lists
        /// (the batches, emptied, and the scratch arrays), handed back for the next turn.
        case batchesDone(TurnWork)
        /// Bytes for a subscriber: one or more encoded event messages.
        case events(connection: UInt64, [UInt8])
        /// The engine ended a subscription whose events the loop did not take in time.
        case subscriptionEnded(connection: UInt64, SubscriptionEnd)
        /// Shut down; the accepting loop passes it on to the others once it has stopped accepting.
        case shutdown
        /// A connection the accepting loop took, to be served here from now on.
        case adopt(descriptor: Int32, id: UInt64)
        /// Nothing: what a message taken out of the list being drained leaves in its place.
        case taken
    }

    private let poller: Poller
    /// The listening socket, on the accepting loop only.
    private let listener: Int32?
    /// The other loops, on the accepting loop only: new connections go to this loop and these in turn.
    private let peers: [EventLoop]
    private var nextPeer = 0
    private let handler: RequestHandler
    private let configuration: ServerConfiguration
    private let statistics: ServerStatistics
    private let log: @Sendable (String) -> Void
    private let mailbox = Mutex<[Message]>([])
    /// The log records this loop's turns hand over, waiting for the turn's end (`run`).
    private let deferral = WakeDeferral()
    /// The messages being drained, swapped with the mailbox's list each time.
    private var messages: [Message] = []
    /// Jobs of tasks that run on this loop, in the order they were enqueued.
    private let jobs = Mutex<[UnownedJob]>([])
    private var runnableJobs: [UnownedJob] = []
    /// The loop's thread, once `run` starts: a message or job from the loop itself needs no wake-up,
    /// since the loop drains both before it waits again.
    private let loopThread = Mutex<pthread_t?>(nil)
    /// Batches ready to run, gathered over one turn of the loop and started together.
    private var ready: [(connection: UInt64, batch: RequestBatch, session: SessionState)] = []
    /// Finished turns' lists, emptied, for the next turns. With a log, several turns are out at once
    /// (one waits for its sync while the next decides), each with its own lists and pools
    /// (`TurnScratch`); with one spare kept, every other turn started with empty pools and allocated
    /// what a kept one reuses. Empty while every one is out: the next turn makes its own.
    private var spareWorks: [TurnWork] = [TurnWork()]
    /// The most finished turns' lists kept: more than the turns a loop has out at once in practice.
    private static let spareWorkCountMax = 8
    /// Tasks that ran a turn and wait for the next (`startReadyBatches`), each as the continuation
    /// that hands it one; nil ends the task.
    private var idleWorkers: [UnsafeContinuation<TurnWork?, Never>] = []

    private var connections: [UInt64: Connection] = [:]
    private var nextConnectionID: UInt64 = 1
    private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
    private var listening = true
    private var acceptPausedUntil: ContinuousClock.Instant?
    private var shutdownDeadline: ContinuousClock.Instant?
    /// Bytes read but not yet parsed above which a connection is not read from.
    private let inboundByteCountMax: Int

    /// A loop that accepts from `listener` (and hands connections to `peers` in turn), or, without a
    /// listener, one that serves the connections handed to it.
    init(listener: Int32?, peers: [EventLoop] = [], handler: RequestHandler, configuration: ServerConfiguration, statistics: ServerStatistics, log: @escaping @Sendable (String) -> Void) throws(SocketError) {
        precondition(listener != nil || peers.isEmpty, "only the accepting loop hands connections on")
        self.poller = try Poller()
        self.listener = listener
        self.peers = peers
        self.handler = handler
        self.configuration = configuration
        self.statistics = statistics
        self.log = log
        inboundByteCountMax = max(1 << 20, 2 * configuration.protocolLimits.requestByteCountMax)
        if let listener { try poller.add(listener, token: Poller.listenerToken, interest: .read) }
    }

    /// Hands a message to the loop from any thread.
    func post(_ message: Message) {
        let wasEmpty = mailbox.withLock { box in
            box.append(message)
            return box.count == 1
        }
        // Only the first message of a turn needs to wake the loop; it takes them all.
        if wasEmpty && !isOnLoopThread { poller.wake() }
    }

    private var isOnLoopThread: Bool {
        guard let thread = loopThread.withLock({ $0 }) else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    /// Runs a job of a task that prefers this executor: on the loop thread, at the end of its turn.
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let wasEmpty = jobs.withLock { queue in
            queue.append(job)
            return queue.count == 1
        }
        if wasEmpty && !isOnLoopThread { poller.wake() }
    }

    /// Runs until shutdown completes. Call on the loop's own thread.
    func run() {
        loopThread.withLock { $0 = pthread_self() }
        // The turn's records do not wake the log's thread as each is handed over (`WakeDeferral`):
        // they are committed once the turn is done, below.
        deferral.install()
        defer { deferral.uninstall() }
        while true {
            // Do not sleep while jobs wait: a job enqueued during this turn has already woken the
            // poller, so a zero timeout is only needed when the queue is known to be non-empty.
            // Nor while the last turn's records wait for the log: a look that finds nothing ready
            // commits them here (this thread would only sleep); one that finds work first wakes the
            // log's thread to commit them, since every later record, this loop's and the others',
            // is numbered after them and waits for them.
            var deferred = deferral.isPending
            poller.wait(timeoutMilliseconds: deferred ? 0 : 100) { token, events in
                if deferred {
                    deferral.flush(committingInPlace: false)
                    deferred = false
                }
                switch token {
                case Poller.wakeToken: poller.drainWake()
                case Poller.listenerToken: acceptAll()
                default: handleReadiness(token, events)
                }
            }
            if deferred { deferral.flush(committingInPlace: true) }
            // Jobs, messages and new batches feed each other (a batch posts its result; a result
            // starts the connection's next batch): go round until all three are empty.
            repeat {
                drainMailbox()
                startReadyBatches()
            } while runJobs()
            let now = ContinuousClock.now
            statistics.sample(now: now)
            if let until = acceptPausedUntil, now >= until, listening, let listener {
                acceptPausedUntil = nil
                try? poller.add(listener, token: Poller.listenerToken, interest: .read)
            }
            if let deadline = shutdownDeadline {
                if connections.isEmpty { break }
                if now >= deadline {
                    log("shutdown: closing \(connections.count) connection(s) that did not finish in time")
                    for c in Array(connections.values) { close(c) }
                    break
                }
            }
        }
        // The idle turn tasks end, here, where their jobs run.
        for idle in idleWorkers { idle.resume(returning: nil) }
        idleWorkers.removeAll()
        while runJobs() {}
    }

    // MARK: Accepting

    private func acceptAll() {
        guard let listener else { return }
        while listening {
            let fd: Int32?
            do {
                fd = try Socket.accept(listener)
            } catch {
                // Out of descriptors or memory: stop accepting for a moment instead of spinning.
                log("accept: \(error); pausing new connections for 100 ms")
                poller.remove(listener)
                acceptPausedUntil = .now + .milliseconds(100)
                return
            }
            guard let fd else { return }
            statistics.connectionsAccepted.add(1, ordering: .relaxed)
            // Open connections of every loop: counted here when accepted, by a loop when it closes one.
            guard statistics.connectionsOpen.load(ordering: .relaxed) < configuration.clientCountMax else {
                statistics.connectionsRejected.add(1, ordering: .relaxed)
                let message = Array("-ERR max number of clients reached\r\n".utf8)
                _ = message.withUnsafeBytes { Socket.write(fd, $0) }
                Socket.close(fd)
                continue
            }
            statistics.connectionsOpen.add(1, ordering: .relaxed)
            // Ids are handed out here only, so they are unique over all loops (an actor's name is
            // `client-<id>`).
            let id = nextConnectionID
            nextConnectionID += 1
            let turn = nextPeer
            nextPeer = (nextPeer + 1) % (peers.count + 1)
            if turn == peers.count {
                adopt(descriptor: fd, id: id)
            } else {
                peers[turn].post(.adopt(descriptor: fd, id: id))
            }
        }
    }

    /// Starts serving a connection the accepting loop took (counted open already).
    private func adopt(descriptor fd: Int32, id: UInt64) {
        guard shutdownDeadline == nil else {
            Socket.close(fd)
            statistics.connectionsOpen.subtract(1, ordering: .relaxed)
            return
        }
        let connection = Connection(id: id, descriptor: fd, session: handler.newSession(id: id), limits: configuration.protocolLimits)
        do {
            try poller.add(fd, token: id, interest: .read)
        } catch {
            log("cannot watch a new connection: \(error)")
            Socket.close(fd)
            statistics.connectionsOpen.subtract(1, ordering: .relaxed)
            return
        }
        connections[id] = connection
    }

    // MARK: Reading and writing

    private func handleReadiness(_ token: UInt64, _ events: UInt32) {
        guard let c = connections[token] else { return }
        if events & STOCKPILE_EPOLLOUT != 0 {
            guard c.flush(statistics: statistics) else { return close(c) }
            if c.pendingOutboundByteCount == 0 && c.closeAfterFlush && !c.isRunningBatch { return close(c) }
        }
        if events & (STOCKPILE_EPOLLIN | STOCKPILE_EPOLLRDHUP) != 0 { read(c) }
        if events & (STOCKPILE_EPOLLHUP | STOCKPILE_EPOLLERR) != 0 {
            // The socket is finished both ways: nothing can be written any more, so close it as soon
            // as no batch of its own still runs (the batch's result is then dropped).
            c.readClosed = true
            if !c.isRunningBatch { return close(c) }
        }
        dispatch(c)
        updateInterest(c)
    }

    private func read(_ c: Connection) {
        guard !c.readClosed, !c.closeAfterFlush else { return }
        // A few reads per turn at most, so one fast sender cannot starve the others.
        for _ in 0..<4 {
            guard c.parser.bufferedByteCount < inboundByteCountMax else { return }
            let result = readBuffer.withUnsafeMutableBytes { Socket.read(c.descriptor, into: $0) }
            switch result {
            case .bytes(let n):
                statistics.bytesRead.add(n, ordering: .relaxed)
                readBuffer.withUnsafeBytes { c.parser.append(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                if n < readBuffer.count { return }
            case .wouldBlock:
                return
            case .closed:
                c.readClosed = true
                return
            }
        }
    }

    /// Starts the next batch of a connection when it has requests and room for their replies.
    private func dispatch(_ c: Connection) {
        guard connections[c.id] != nil, let session = c.session, !c.closeAfterFlush else { return }
        guard c.pendingOutboundByteCount < configuration.replyBacklogByteCountMax else { return }
        let batch = c.takeRequests(max: configuration.batchRequestCountMax)
        if batch.requests.isEmpty && batch.protocolError == nil {
            if c.readClosed && c.pendingOutboundByteCount == 0 { close(c) }
            return
        }
        c.session = nil
        ready.append((c.id, batch, session))
    }

    /// Runs every batch gathered this turn in one task on this loop: one wait for the log and one
    /// message back, however many connections had requests.
    private func startReadyBatches() {
        guard !ready.isEmpty else { return }
        // The batches move into the handler's list, and `ready` keeps its storage for the next turn:
        // nothing else holds a batch's requests, so they come back with its result to be reused.
        // The lists of an earlier turn, filled again, so that a turn allocates none.
        var work: TurnWork
        if let spare = spareWorks.popLast() {
            work = spare
        } else {
            work = TurnWork()
            statistics.turnListsMade.add(1, ordering: .relaxed)
        }
        work.connections.append(contentsOf: ready.lazy.map(\.connection))
        work.batches.append(contentsOf: ready.lazy.map { ($0.batch, $0.session) })
        ready.removeAll(keepingCapacity: true)
        // A task that ran an earlier turn takes it, when one is idle: resuming it costs no allocation,
        // where a new task costs one for itself and more for its frames. One is made only when every
        // task is still running a turn (waiting for the log); it stays for later turns.
        if let idle = idleWorkers.popLast() {
            idle.resume(returning: work)
            return
        }
        // Handed to the new task in a box it empties, so that the handler's list is the batches'
        // only one (a value the task's closure captured would be kept as long as the task).
        let first = Handover(work)
        let handler = self.handler
        statistics.turnTasksStarted.add(1, ordering: .relaxed)
        Task(executorPreference: self) {
            var next: TurnWork? = first.take()
            while var work = next.take() {
                await handler.run(&work.batches, into: &work.results, scratch: &work.scratch)
                work.batches.removeAll(keepingCapacity: true)
                // Moved into the message: a copy kept alive here while the task waits would share
                // the lists, and the loop reusing them would copy them.
                self.post(.batchesDone(consume work))
                // On the loop thread, as every job of this task is (it prefers the loop's executor).
                next = await withUnsafeContinuation { self.idleWorkers.append($0) }
            }
        }
    }

    /// What a turn's task runs: the connections, their batches, the list for the results (each
    /// batch's at its connection's place), and the arrays the batches work in.
    struct TurnWork: Sendable {
        var connections: [UInt64] = []
        var batches: [(RequestBatch, SessionState)] = []
        var results: [BatchResult] = []
        var scratch = TurnScratch()
    }

    /// A value handed to a task once: `take` moves it out, so the task holds it alone.
    private final class Handover<Value: Sendable>: @unchecked Sendable {
        // @unchecked: set on the loop before the task starts, taken once by the task.
        private var value: Value?
        init(_ value: Value) { self.value = value }
        func take() -> Value { value.take()! }
    }

    /// Runs the jobs queued so far. Returns false when there were none.
    private func runJobs() -> Bool {
        jobs.withLock { swap(&$0, &runnableJobs) }
        if runnableJobs.isEmpty { return false }
        for job in runnableJobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        runnableJobs.removeAll(keepingCapacity: true)
        return true
    }

    private func drainMailbox() {
        while true {
            // Swapped out, so the mailbox keeps the storage of this list's predecessor.
            mailbox.withLock { swap(&$0, &messages) }
            if messages.isEmpty { return }
            defer { messages.removeAll(keepingCapacity: true) }
            for i in messages.indices {
                // Taken out of the list, so that a batch's result (and its requests) is held once.
                let message = messages[i]
                messages[i] = .taken
                switch consume message {
                case .batchesDone(var work):
                    for k in work.results.indices {
                        let requests = work.results[k].takeRequests()
                        finishBatch(work.connections[k], work.results[k], requests: requests)
                    }
                    // Kept, emptied, for the next turn's lists.
                    work.connections.removeAll(keepingCapacity: true)
                    work.results.removeAll(keepingCapacity: true)
                    if spareWorks.count < Self.spareWorkCountMax { spareWorks.append(work) }
                case .taken: break
                case .events(let id, let bytes): deliverEvents(id, bytes)
                case .subscriptionEnded(let id, let end): endSubscription(id, end)
                case .shutdown: beginShutdown()
                case .adopt(let fd, let id): adopt(descriptor: fd, id: id)
                }
            }
        }
    }

    private func finishBatch(_ id: UInt64, _ result: BatchResult, requests: consuming [ArgumentList]) {
        guard let c = connections[id] else { return }
        c.parser.recycle(requests)
        c.session = result.session
        c.enqueue(result.output)
        if result.closeAfterWrite { c.closeAfterFlush = true }
        if result.unsubscribedAll, let task = c.subscription {
            task.cancel()
            c.subscription = nil
            statistics.subscribersOpen.subtract(1, ordering: .relaxed)
        }
        if let stream = result.subscription, c.subscription == nil {
            c.subscription = forward(stream, to: id, version: result.session.version)
            statistics.subscribersOpen.add(1, ordering: .relaxed)
        }
        guard c.flush(statistics: statistics) else { return close(c) }
        if c.closeAfterFlush && c.pendingOutboundByteCount == 0 { return close(c) }
        if shutdownDeadline != nil && c.subscription != nil { c.closeAfterFlush = true }
        dispatch(c)
        if shutdownDeadline != nil && c.session != nil && c.pendingOutboundByteCount == 0 && c.parser.bufferedByteCount == 0 { return close(c) }
        updateInterest(c)
    }

    /// Forwards a subscription's events to the loop, a run of them per message when they come fast.
    private func forward(_ stream: AsyncStream<EngineEvent>, to id: UInt64, version: RESPVersion) -> Task<Void, Never> {
        Task(executorPreference: self) {
            var bytes: [UInt8] = []
            for await event in stream {
                if case .ended(let end) = event {
                    self.post(.subscriptionEnded(connection: id, end))
                    return
                }
                bytes.removeAll(keepingCapacity: true)
                ReplyEncoder.encode(RequestHandler.message(for: event), version: version, into: &bytes)
                self.post(.events(connection: id, bytes))
            }
        }
    }

    private func deliverEvents(_ id: UInt64, _ bytes: [UInt8]) {
        guard let c = connections[id], c.subscription != nil, !c.closeAfterFlush else { return }
        c.enqueue(bytes)
        guard c.flush(statistics: statistics) else { return close(c) }
        if c.pendingOutboundByteCount > configuration.subscriberBacklogByteCountMax {
            statistics.subscribersDropped.add(1, ordering: .relaxed)
            log("client \(id): subscriber backlog over \(configuration.subscriberBacklogByteCountMax) bytes; disconnected")
            return close(c)
        }
        updateInterest(c)
    }

    /// A subscriber whose events fell behind in the engine itself is treated as one past its byte
    /// backlog: disconnected, so it reconnects and catches up with EVENTS.
    private func endSubscription(_ id: UInt64, _ end: SubscriptionEnd) {
        guard let c = connections[id], c.subscription != nil else { return }
        statistics.subscribersDropped.add(1, ordering: .relaxed)
        log("client \(id): subscription ended by the engine (\(end)); disconnected")
        close(c)
    }

    private func updateInterest(_ c: Connection) {
        guard connections[c.id] != nil else { return }
        var want: Poller.Interest = []
        let roomToRead = c.parser.bufferedByteCount < inboundByteCountMax && c.pendingOutboundByteCount < configuration.replyBacklogByteCountMax
        if !c.readClosed && !c.closeAfterFlush && shutdownDeadline == nil && roomToRead { want.insert(.read) }
        if c.pendingOutboundByteCount > 0 { want.insert(.write) }
        if want != c.interest {
            poller.modify(c.descriptor, token: c.id, interest: want)
            c.interest = want
        }
    }

    private func close(_ c: Connection) {
        guard connections.removeValue(forKey: c.id) != nil else { return }
        if let task = c.subscription {
            task.cancel()
            statistics.subscribersOpen.subtract(1, ordering: .relaxed)
        }
        poller.remove(c.descriptor)
        Socket.close(c.descriptor)
        statistics.connectionsOpen.subtract(1, ordering: .relaxed)
    }

    // MARK: Shutdown

    /// Stops accepting and reading; lets running batches finish and their replies go out; closes
    /// every connection as soon as it has nothing left, and all of them after five seconds.
    private func beginShutdown() {
        guard shutdownDeadline == nil else { return }
        shutdownDeadline = .now + .seconds(5)
        listening = false
        if let listener {
            poller.remove(listener)
            // After every connection handed on (a loop's mailbox keeps its order), so none arrives
            // at a loop that has already stopped.
            for peer in peers { peer.post(.shutdown) }
        }
        for c in Array(connections.values) {
            if c.subscription != nil { c.closeAfterFlush = true }
            if !c.isRunningBatch {
                // Requests already received are answered; nothing more is read.
                dispatch(c)
                if !c.isRunningBatch && c.pendingOutboundByteCount == 0 {
                    close(c)
                    continue
                }
            }
            updateInterest(c)
        }
    }
}
