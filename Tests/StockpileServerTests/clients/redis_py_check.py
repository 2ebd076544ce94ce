#!/usr/bin/env python3
"""Drives a Stockpile server with the Python `redis` package, as an order service would.

Usage: redis_py_check.py PORT

Runs the same checks twice: with redis-py's default protocol (redis-py 8 sends `HELLO 3` and gets
maps) and with `protocol=2` (flat arrays of field/value pairs). Each run uses variants and ids of
its own, so the two runs share one server. Exits 1 with a message naming the first check that
failed, 2 on an unexpected exception, 0 when every check passed.
"""

import json
import sys
import time
import traceback

import redis

# The event fields of SPEC §5, in JSON.
EVENT_FIELDS = [
    "seq", "time_ms", "type", "variant", "warehouse", "delta_on_hand", "delta_reserved",
    "on_hand", "reserved", "available", "reason", "note", "ref", "reservation", "actor",
]
# A generous bound on a wait for a pub/sub message: it only decides how long a broken server takes
# to fail the check, never whether a working one passes.
MESSAGE_WAIT_SECONDS = 30


class CheckFailed(Exception):
    pass


class Checker:
    def __init__(self, port, protocol):
        self.port = port
        self.protocol = protocol  # None: redis-py's default
        self.label = "protocol=default" if protocol is None else f"protocol={protocol}"
        self.expect_maps = protocol != 2
        self.checks = 0
        self.prefix = "py3" if self.expect_maps else "py2"

    def connect(self):
        kwargs = {"host": "127.0.0.1", "port": self.port, "socket_timeout": 30}
        if self.protocol is not None:
            kwargs["protocol"] = self.protocol
        return redis.Redis(**kwargs)

    def check(self, condition, name, detail):
        self.checks += 1
        if not condition:
            raise CheckFailed(f"[{self.label}] {name}: {detail}")

    def record(self, reply, name):
        """A record as a dict of str keys, after checking it came in the shape the protocol promises."""
        if self.expect_maps:
            self.check(isinstance(reply, dict), name, f"expected a RESP3 map (a dict), got {reply!r}")
            items = list(reply.items())
        else:
            self.check(isinstance(reply, list) and len(reply) % 2 == 0, name,
                       f"expected a RESP2 flat array of field/value pairs, got {reply!r}")
            items = list(zip(reply[0::2], reply[1::2]))
        out = {}
        for key, value in items:
            key = key.decode() if isinstance(key, bytes) else key
            out[key] = value.decode() if isinstance(value, bytes) else value
        return out

    def refused(self, r, words, code, name, contains=None):
        """Runs a command that must be refused with `code`; returns the error text."""
        try:
            reply = r.execute_command(*words)
        except redis.ResponseError as error:
            text = str(error)
            self.check(text.startswith(code + " "), name, f"expected an error starting with {code!r}, got {text!r}")
            if contains is not None:
                self.check(contains in text, name, f"expected {contains!r} in the error, got {text!r}")
            return text
        self.check(False, name, f"expected redis.ResponseError {code}, got the reply {reply!r}")

    def run(self):
        r = self.connect()
        other = self.connect()
        p = self.prefix
        sku = f"{p}-sku"

        # The handshake: HELLO without a version reports the protocol the connection speaks.
        hello = self.record(r.execute_command("HELLO"), "hello")
        self.check(hello.get("server") == "stockpile", "hello", f"server is {hello.get('server')!r}")
        self.check(hello.get("proto") == (3 if self.expect_maps else 2), "hello",
                   f"proto is {hello.get('proto')!r}: redis-py did not negotiate the expected protocol")

        # Session commands a Redis client sends.
        self.check(r.ping() is True, "ping", "PING did not answer PONG")
        self.check(r.client_setname(f"{p}-checker") is True, "client setname", "CLIENT SETNAME did not answer OK")
        self.check(r.client_getname() in (f"{p}-checker", f"{p}-checker".encode()), "client getname",
                   f"CLIENT GETNAME is {r.client_getname()!r}")
        self.check(r.execute_command("SELECT", 0) in (True, b"OK", "OK"), "select 0", "SELECT 0 did not answer OK")

        # Stock arrives; the ledger names the client by the name it set.
        cell = self.record(r.execute_command("ADJUST", sku, "MAIN", 100, "REASON", "received"), "adjust")
        self.check(cell.get("on_hand") == 100 and cell.get("available") == 100, "adjust", f"cell is {cell}")
        history = r.execute_command("HISTORY", sku, "MAIN", "LIMIT", 1)
        self.check(isinstance(history, list) and len(history) == 1, "history", f"HISTORY gave {history!r}")
        entry = self.record(history[0], "history entry")
        self.check(entry.get("actor") == f"{p}-checker", "client setname names the actor",
                   f"the ledger entry's actor is {entry.get('actor')!r}")

        # A reservation, its replay, and a different request under the same id.
        res = self.record(r.execute_command("RESERVE", f"{p}-ord-1", sku, "MAIN", 3, "CUSTOMER", "c-17"), "reserve")
        self.check(res.get("id") == f"{p}-ord-1" and res.get("status") == "active", "reserve", f"record is {res}")
        self.check(res.get("customer") == "c-17" and res.get("expires_at_ms") == 0, "reserve", f"record is {res}")
        self.check("replayed" not in res, "reserve", f"a first reservation is marked as a replay: {res}")
        lines = res.get("lines")
        self.check(isinstance(lines, list) and len(lines) == 1, "reserve lines", f"lines are {lines!r}")
        line = self.record(lines[0], "reserve line")
        self.check(line.get("variant") == sku and line.get("warehouse") == "MAIN", "reserve line", f"line is {line}")
        self.check(line.get("quantity") == 3 and line.get("remaining") == 3 and line.get("fulfilled") == 0,
                   "reserve line", f"line is {line}")

        replay = self.record(r.execute_command("RESERVE", f"{p}-ord-1", sku, "MAIN", 3, "CUSTOMER", "c-17"), "replay")
        self.check(replay.get("replayed") == 1, "replay", f"an idempotent replay lacks `replayed 1`: {replay}")
        self.check(replay.get("id") == f"{p}-ord-1", "replay", f"record is {replay}")
        stock = self.record(r.execute_command("STOCK", sku, "MAIN"), "stock after replay")
        self.check(stock.get("reserved") == 3, "replay changes nothing", f"reserved is {stock.get('reserved')}, not 3")

        # Refusals raise redis.ResponseError whose text starts with the code.
        self.refused(r, ["RESERVE", f"{p}-ord-1", sku, "MAIN", 4], "CONFLICT", "same id, different request")
        self.refused(r, ["RESERVE", f"{p}-ord-2", sku, "MAIN", 1000], "INSUFFICIENT", "insufficient",
                     contains=f"{sku} MAIN available 97 requested 1000")
        self.refused(r, ["RESERVATION", f"{p}-no-such-order"], "NOTFOUND", "unknown reservation")
        self.refused(r, ["RESERVE", f"{p}-ord-3", sku, "NOWHERE", 1], "NOTFOUND", "unknown warehouse")
        self.refused(r, ["RESERVE", f"{p}-ord-4", sku, "MAIN", 0], "INVALID", "zero quantity")
        # A refused request leaves its id unused: the same id succeeds once it asks for what is there.
        again = self.record(r.execute_command("RESERVE", f"{p}-ord-2", sku, "MAIN", 2), "refused id is reusable")
        self.check("replayed" not in again and again.get("status") == "active", "refused id is reusable",
                   f"record is {again}")

        # A KEY retry returns the original reply, marked, and applies once.
        first = self.record(r.execute_command("ADJUST", sku, "MAIN", 5, "REASON", "received", "KEY", f"{p}-k1"), "key")
        retry = self.record(r.execute_command("ADJUST", sku, "MAIN", 5, "REASON", "received", "KEY", f"{p}-k1"), "key retry")
        self.check(retry.get("replayed") == 1, "key retry", f"a KEY retry lacks `replayed 1`: {retry}")
        self.check(retry.get("seq") == first.get("seq") and retry.get("on_hand") == 105, "key retry",
                   f"first {first}, retry {retry}")
        self.refused(r, ["ADJUST", sku, "MAIN", 6, "REASON", "received", "KEY", f"{p}-k1"], "CONFLICT",
                     "key reused for a different request")
        stock = self.record(r.execute_command("STOCK", sku, "MAIN"), "stock after key retry")
        self.check(stock.get("on_hand") == 105, "key retry applies once", f"on_hand is {stock.get('on_hand')}, not 105")

        # A pipeline of 100 reservations; every tenth asks for too much, so an error must land at
        # exactly its own position.
        pipe = r.pipeline(transaction=False)
        for i in range(100):
            pipe.execute_command("RESERVE", f"{p}-pl-{i}", sku, "MAIN", 1_000_000 if i % 10 == 9 else 1)
        replies = pipe.execute(raise_on_error=False)
        self.check(len(replies) == 100, "pipeline", f"{len(replies)} replies to 100 requests")
        for i, reply in enumerate(replies):
            if i % 10 == 9:
                self.check(isinstance(reply, redis.ResponseError) and str(reply).startswith("INSUFFICIENT "),
                           "pipeline order", f"reply {i} should be INSUFFICIENT, got {reply!r}")
            else:
                rec = self.record(reply, f"pipeline reply {i}")
                self.check(rec.get("id") == f"{p}-pl-{i}", "pipeline order", f"reply {i} is for {rec.get('id')!r}")
        stock = self.record(r.execute_command("STOCK", sku, "MAIN"), "stock after pipeline")
        self.check(stock.get("reserved") == 3 + 2 + 90, "pipeline", f"reserved is {stock.get('reserved')}, not 95")

        # Pub/sub: a change made on another connection reaches the subscriber as JSON.
        pubsub = r.pubsub()
        pubsub.subscribe("events")
        confirmation = self.next_message(pubsub, "subscribe")
        self.check(confirmation["channel"] in (b"events", "events") and confirmation["data"] == 1,
                   "subscribe", f"confirmation is {confirmation}")
        other.execute_command("ADJUST", sku, "MAIN", 7, "REASON", "received", "NOTE", "pallet 4")
        message = self.next_message(pubsub, "message")
        self.check(message["channel"] in (b"events", "events"), "pub/sub message", f"message is {message}")
        try:
            event = json.loads(message["data"])
        except ValueError as error:
            raise CheckFailed(f"[{self.label}] pub/sub message: data is not JSON ({error}): {message['data']!r}")
        missing = [f for f in EVENT_FIELDS if f not in event]
        self.check(not missing, "event fields", f"missing {missing} in {event}")
        self.check(event.get("type") == "adjust" and event.get("variant") == sku and event.get("warehouse") == "MAIN",
                   "event content", f"event is {event}")
        self.check(event.get("delta_on_hand") == 7 and event.get("on_hand") == 112 and event.get("reserved") == 95,
                   "event content", f"event is {event}")
        self.check(event.get("reason") == "received" and event.get("note") == "pallet 4", "event content",
                   f"event is {event}")
        pubsub.close()

        # INFO parses, and each section can be asked for alone.
        info = r.info()
        self.check(isinstance(info, dict), "info", f"r.info() gave {info!r}")
        for section, key in [("server", "tcp_port"), ("clients", "connected_clients"),
                             ("persistence", "aof_enabled"), ("stats", "total_commands_processed")]:
            self.check(key in info, "info", f"r.info() lacks {key!r} of section {section}: {sorted(info)}")
            alone = r.info(section)
            self.check(key in alone, f"info {section}", f"r.info({section!r}) lacks {key!r}: {alone}")
        self.check(info.get("tcp_port") == self.port, "info", f"tcp_port is {info.get('tcp_port')!r}")
        self.check("tcp_port" not in r.info("clients"), "info clients", "r.info('clients') includes the server section")

        r.close()
        other.close()

    def next_message(self, pubsub, kind):
        deadline = time.monotonic() + MESSAGE_WAIT_SECONDS
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            self.check(message.get("type") == kind, f"pub/sub {kind}", f"expected a {kind!r}, got {message}")
            return message
        raise CheckFailed(f"[{self.label}] pub/sub {kind}: nothing arrived in {MESSAGE_WAIT_SECONDS} s")


def main():
    if len(sys.argv) != 2:
        print("usage: redis_py_check.py PORT", file=sys.stderr)
        return 64
    port = int(sys.argv[1])
    total = 0
    for protocol in (None, 2):
        checker = Checker(port, protocol)
        try:
            checker.run()
        except CheckFailed as failure:
            print(f"FAILED {failure}", file=sys.stderr)
            return 1
        except Exception:
            print(f"ERROR [{checker.label}] after {checker.checks} checks:", file=sys.stderr)
            traceback.print_exc()
            return 2
        total += checker.checks
    print(f"ok: {total} checks passed (redis-py {redis.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
