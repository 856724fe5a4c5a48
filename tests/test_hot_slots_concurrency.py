"""Hot-group slots (tally.set_slots) under real concurrency: races between writers,
compaction, reconciliation with auto-correct, backfill, TRUNCATE and set_slots itself.

The stress test runs writer threads on connections whose backends fall into different
slots (and some into the same one) doing single- and multi-row inserts, group-moving
updates, deletes, rolled-back transactions and multi-statement transactions that wait a
little before they commit, while two compactors, a reconcile loop with auto-correct and
a reader run beside them and the source is truncated twice. The reader checks, each time
in a single statement (one snapshot), that the stats view equals a recomputation from
the source, avg columns included. Nothing may fail, no concurrent write may look like
drift (nothing corrected), and the stats are exact at the end. A second test changes the
number of slots (on, renumbered, off, on) and backfills while writers and a reader run.

How the writers avoid deadlocking each other (as the README says, transactions that run
several statements over overlapping groups can, as with any table): each writer only
updates and deletes its own source rows, so writers share slot rows only, and only with
a writer of the same slot; a multi-statement transaction touches a single key tuple
(account, region) throughout, and its first statement (an insert matching every rollup)
takes every slot row lock it will need. Any deadlock is then pgtally's.

The last tests reproduce, deterministically, races found in review and fixed since:
compact against a correction, against a backfill batch, against set_slots(rollup, 1) and
against another compact, and set_slots against a transaction that reads the source before
it writes it. The comment above each says what went wrong and what prevents it now.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from harness.exactness import difference_query
from tests.exactness import assert_exact

SLOTS = 4
DURATION = 5.0  # seconds of concurrent writing in the stress test
ACCOUNTS = list(range(8))
REGIONS: list[str | None] = ["north", "south", "east", "west", None]
ROLLUPS = ("by_account", "by_account_region", "by_region", "ledger_overall")

SCHEMA = """
CREATE TABLE public.ledger (
    id bigserial PRIMARY KEY,
    writer int NOT NULL,
    account int NOT NULL,
    region text,                 -- a group key that may be NULL
    amount numeric(14, 3),       -- sum and avg over a nullable column
    flag boolean NOT NULL DEFAULT true
);
CREATE INDEX ON public.ledger (writer);
CREATE INDEX ON public.ledger (account);
SELECT tally.create_rollup('by_account', source => 'public.ledger', group_by => ARRAY['account'],
    measures => ARRAY['n = count(*)', 'n_amount = count(amount)', 'total = sum(amount)', 'mean = avg(amount)']);
SELECT tally.create_rollup('by_region', source => 'public.ledger', group_by => ARRAY['region'],
    measures => ARRAY['n = count(*)', 'flagged = sum(amount) FILTER (WHERE flag)', 'mean = avg(amount)']);
SELECT tally.create_rollup('by_account_region', source => 'public.ledger', group_by => ARRAY['account', 'region'],
    measures => ARRAY['n = count(*)', 'total = sum(amount)'], filter => 'flag');
SELECT tally.create_rollup('ledger_overall', source => 'public.ledger',
    measures => ARRAY['n = count(*)', 'total = sum(amount)', 'mean = avg(amount)']);
"""

INSERT = "INSERT INTO public.ledger (writer, account, region, amount, flag) VALUES (%s, %s, %s, %s, %s)"


def slot_of(conn: psycopg.Connection[Any], slots: int = SLOTS) -> int:
    """The slot this connection's backend writes to (what the generated triggers compute)."""
    return 1 + conn.info.backend_pid % slots


def connections_in_slots(
    connect: Callable[..., psycopg.Connection[Any]], wanted: dict[int, int], slots: int = SLOTS
) -> list[psycopg.Connection[Any]]:
    """wanted[slot] connections whose backend writes to that slot; the others are closed."""
    found: dict[int, list[psycopg.Connection[Any]]] = {slot: [] for slot in wanted}
    for _ in range(500):
        if all(len(found[slot]) >= count for slot, count in wanted.items()):
            break
        candidate = connect()
        bucket = found.get(slot_of(candidate, slots))
        if bucket is not None and len(bucket) < wanted[slot_of(candidate, slots)]:
            bucket.append(candidate)
        else:
            candidate.close()
    else:
        pytest.fail(f"could not open connections in slots {wanted}")
    return [conn for slot in sorted(found) for conn in found[slot]]


def view_check_sql(conn: psycopg.Connection[Any], rollup: str) -> sql.Composed:
    """ONE statement (so one snapshot) returning every difference between the stats view of
    a rollup and its recomputation: every stored column (bookkeeping included) against
    tally.recompute_sql, and every avg column against PostgreSQL's own avg()."""
    (stats, source, row_filter) = conn.execute(  # type: ignore[misc]
        "SELECT stats_table::text, source_table::text, row_filter FROM tally.rollups WHERE rollup_name = %s",
        (rollup,),
    ).fetchone()
    keys = conn.execute(
        "SELECT key_name, key_expression FROM tally.rollup_keys WHERE rollup_name = %s ORDER BY key_position",
        (rollup,),
    ).fetchall()
    averages = conn.execute(
        "SELECT measure_name, argument_expression, measure_filter FROM tally.rollup_measures "
        "WHERE rollup_name = %s AND aggregate_function = 'avg' ORDER BY measure_position",
        (rollup,),
    ).fetchall()
    parts = [difference_query(conn, rollup)]
    if averages:
        stored_avg = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(
                sql.Identifier(name) for name in [k[0] for k in keys] + [a[0] for a in averages]
            ),
            sql.SQL(stats),
        )
        expected_avg = sql.SQL("SELECT {} FROM {} AS tally_source{}{}").format(
            sql.SQL(", ").join(
                [sql.SQL("({})").format(sql.SQL(k[1])) for k in keys]
                + [
                    sql.SQL("avg(({})){}").format(
                        sql.SQL(a[1]), sql.SQL(f" FILTER (WHERE {a[2]})" if a[2] else "")
                    )
                    for a in averages
                ]
            ),
            sql.SQL(source),
            sql.SQL(f" WHERE ({row_filter})" if row_filter else ""),
            sql.SQL(
                " GROUP BY " + ", ".join(str(i + 1) for i in range(len(keys)))
                if keys
                else " HAVING count(*) > 0"
            ),
        )
        parts.append(
            sql.SQL(
                "SELECT 'stored avg', to_jsonb(c) FROM ({s} EXCEPT ALL ({e})) AS c "
                "UNION ALL SELECT 'expected avg', to_jsonb(d) FROM (({e}) EXCEPT ALL {s}) AS d"
            ).format(s=stored_avg, e=expected_avg)
        )
    return sql.SQL(" UNION ALL ").join(parts)


def random_amount(rng: random.Random) -> Decimal | None:
    return None if rng.random() < 0.25 else Decimal(rng.randrange(-99_999, 99_999)).scaleb(-3)


class Writer:
    """One writer thread: random writes to its own rows until finished() says so."""

    def __init__(
        self, index: int, conn: psycopg.Connection[Any], finished: Callable[[], bool], failures: list[str]
    ):
        self.index = index
        self.conn = conn
        self.finished = finished
        self.failures = failures
        self.rng = random.Random(1000 + index)
        self.own_account = 100 + index  # groups this writer alone fills and empties
        self.null_account = 200 + index  # every amount NULL: its sum and avg stay NULL
        self.done: dict[str, int] = {}

    def row(
        self, account: int | None = None, region: Any = "random", flag: bool | None = None
    ) -> tuple[Any, ...]:
        rng = self.rng
        return (
            self.index,
            rng.choice(ACCOUNTS) if account is None else account,
            rng.choice(REGIONS) if region == "random" else region,
            None if account == self.null_account else random_amount(rng),
            rng.random() < 0.85 if flag is None else flag,
        )

    def some_own_rows(self, limit: int) -> tuple[str, tuple[int, int]]:
        """A condition picking up to `limit` random rows of this writer (not of its all-NULL
        group) and its parameters. A subquery in the writing statement, not a SELECT before
        it: a transaction that reads the source before it writes deadlocks with set_slots
        (see test_set_slots_while_a_transaction_reads_then_writes_the_source)."""
        return (
            "id IN (SELECT id FROM public.ledger WHERE writer = %s AND account < 200 ORDER BY random() LIMIT %s)",
            (self.index, limit),
        )

    def single_statement(self) -> str:
        """One autocommit-able statement of a random kind; returns its name."""
        rng, conn = self.rng, self.conn
        roll = rng.random()
        if roll < 0.25:
            conn.execute(INSERT, self.row())
            return "insert"
        if roll < 0.4:
            rows = [self.row() for _ in range(rng.randrange(2, 7))]
            conn.execute(
                "INSERT INTO public.ledger (writer, account, region, amount, flag) "
                "SELECT * FROM unnest(%s::int[], %s::int[], %s::text[], %s::numeric[], %s::boolean[])",
                [list(column) for column in zip(*rows, strict=True)],
            )
            return "multi-row insert"
        if roll < 0.55:
            rows, params = self.some_own_rows(rng.randrange(1, 4))
            conn.execute(
                f"UPDATE public.ledger SET account = %s, region = %s WHERE {rows}",
                (rng.choice([*ACCOUNTS, self.own_account]), rng.choice(REGIONS), *params),
            )
            return "group-moving update"
        if roll < 0.65:
            rows, params = self.some_own_rows(rng.randrange(1, 3))
            conn.execute(
                f"UPDATE public.ledger SET amount = %s, flag = NOT flag WHERE {rows}",
                (random_amount(rng), *params),
            )
            return "amount update"
        if roll < 0.75:
            rows, params = self.some_own_rows(rng.randrange(1, 4))
            conn.execute(f"DELETE FROM public.ledger WHERE {rows}", params)
            return "delete"
        if roll < 0.85:
            account = self.own_account if rng.random() < 0.5 else self.null_account
            if rng.random() < 0.5:
                conn.execute(
                    "DELETE FROM public.ledger WHERE writer = %s AND account = %s", (self.index, account)
                )
                return "empty a group"
            conn.execute(INSERT, self.row(account=account))
            return "refill a group"
        conn.execute(INSERT, self.row(account=self.null_account))
        return "all-NULL group insert"

    def key_transaction(self, commit: bool) -> None:
        """Several statements on one key tuple, a pause, then commit or roll back."""
        rng, conn = self.rng, self.conn
        account, region = rng.choice(ACCOUNTS), rng.choice(REGIONS)
        same_key = "writer = %s AND account = %s AND region IS NOT DISTINCT FROM %s::text"
        with conn.transaction():
            conn.execute(INSERT, self.row(account=account, region=region, flag=True))  # every rollup's lock
            conn.execute(
                f"UPDATE public.ledger SET amount = %s, flag = %s WHERE {same_key}",
                (random_amount(rng), rng.random() < 0.7, self.index, account, region),
            )
            for _ in range(rng.randrange(1, 3)):
                conn.execute(INSERT, self.row(account=account, region=region))
            conn.execute(
                f"DELETE FROM public.ledger WHERE id = (SELECT min(id) FROM public.ledger WHERE {same_key})",
                (self.index, account, region),
            )
            time.sleep(rng.uniform(0.005, 0.04))
            if not commit:
                raise psycopg.Rollback()

    def run(self) -> None:
        try:
            while not self.finished():
                roll = self.rng.random()
                if roll < 0.7:
                    kind = self.single_statement()
                elif roll < 0.8:
                    with self.conn.transaction():
                        self.single_statement()
                        raise psycopg.Rollback()
                    kind = "rolled-back statement"
                elif roll < 0.92:
                    self.key_transaction(commit=True)
                    kind = "multi-statement transaction"
                else:
                    self.key_transaction(commit=False)
                    kind = "rolled-back transaction"
                self.done[kind] = self.done.get(kind, 0) + 1
        except psycopg.Error as exc:
            self.failures.append(f"writer {self.index}: {type(exc).__name__}: {exc}")


def looping(
    name: str, stop: threading.Event, failures: list[str], step: Callable[[], None]
) -> threading.Thread:
    def run() -> None:
        try:
            while not stop.is_set():
                step()
        except psycopg.Error as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")

    return threading.Thread(target=run, name=name)


def test_writers_compactors_reconcile_and_a_reader_race_without_loss_drift_or_error(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(SCHEMA)
    for rollup in ROLLUPS:
        assert conn.execute("SELECT tally.set_slots(%s, %s)", (rollup, SLOTS)).fetchone() == (SLOTS,)
    # 7 writers: slots 1, 2 and 3 have two each, slot 4 one
    writer_connections = connections_in_slots(connect, {1: 2, 2: 2, 3: 2, 4: 1})
    assert sorted(slot_of(c) for c in writer_connections) == [1, 1, 2, 2, 3, 3, 4]

    failures: list[str] = []
    stop = threading.Event()
    deadline = time.monotonic() + DURATION
    writers = [
        Writer(i, c, lambda: time.monotonic() >= deadline, failures) for i, c in enumerate(writer_connections)
    ]

    folded = [0, 0]
    compactions = [0, 0]

    def compactor(number: int) -> Callable[[], None]:
        session = connect()

        def step() -> None:
            for rollup in ROLLUPS:
                (n,) = session.execute("SELECT tally.compact(%s)", (rollup,)).fetchone()  # type: ignore[misc]
                folded[number] += n
            compactions[number] += 1

        return step

    reconcile_session = connect()
    reconciled = [0]

    def reconcile_step() -> None:
        for rollup in ROLLUPS:
            summary = reconcile_session.execute(
                "SELECT in_sync, groups_checked, groups_mismatched, groups_missing, groups_extra, groups_corrected "
                "FROM tally.reconcile(%s, p_auto_correct => true, p_reason => 'slots concurrency test')",
                (rollup,),
            ).fetchone()
            if summary is None or not summary[0]:
                failures.append(f"reconcile {rollup}: concurrent writes looked like drift: {summary}")
        reconciled[0] += 1

    reader_session = connect()
    checks = {rollup: view_check_sql(reader_session, rollup) for rollup in ROLLUPS}
    reads = [0]
    slots_seen = [0]  # most distinct writer slots holding rows of the global total at once

    def read_step() -> None:
        (distinct,) = reader_session.execute(  # type: ignore[misc]
            "SELECT count(DISTINCT _tally_slot) FROM public.ledger_overall_slots WHERE _tally_slot <> 0"
        ).fetchone()
        slots_seen[0] = max(slots_seen[0], distinct)
        for rollup, check in checks.items():
            # never a prepared statement: a cached plan locks the slot table (inside the view)
            # before the source, the reverse of TRUNCATE's order (source, then its stats)
            wrong = reader_session.execute(check, prepare=False).fetchall()
            if wrong:
                failures.append(
                    f"reader: view {rollup} differs from its recomputation in one snapshot: {wrong[:6]}"
                )
        reads[0] += 1

    with conn.transaction():  # the check does see a wrong slot row
        conn.execute(INSERT, (0, 1, None, Decimal("1.000"), True))
        conn.execute("UPDATE public.by_account_slots SET total = total + 1")
        sides = {row[0] for row in conn.execute(checks["by_account"])}
        assert sides == {"stored", "expected"}, sides
        raise psycopg.Rollback()

    threads = [threading.Thread(target=w.run, name=f"writer {w.index}") for w in writers]
    threads += [
        looping("compactor 1", stop, failures, compactor(0)),
        looping("compactor 2", stop, failures, compactor(1)),
        looping("reconcile", stop, failures, reconcile_step),
        looping("reader", stop, failures, read_step),
    ]
    for thread in threads:
        thread.start()
    truncator = connect()
    for fraction in (0.35, 0.7):  # TRUNCATE of the source while everything runs
        time.sleep(max(0.0, deadline - DURATION * (1 - fraction) - time.monotonic()))
        truncator.execute("TRUNCATE public.ledger")
    for thread in threads[: len(writers)]:
        thread.join(timeout=DURATION + 60)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not [t.name for t in threads if t.is_alive()], "a thread hangs"

    assert failures == [], "\n".join(failures)
    kinds = set().union(*(w.done for w in writers))
    assert {
        "insert",
        "multi-row insert",
        "group-moving update",
        "amount update",
        "delete",
        "empty a group",
        "rolled-back statement",
        "multi-statement transaction",
        "rolled-back transaction",
        "all-NULL group insert",
        "refill a group",
    } <= kinds, kinds
    activity = (folded, compactions, reconciled, reads, slots_seen)
    assert sum(folded) > 0 and min(compactions) > 0 and reconciled[0] > 0 and reads[0] > 0, activity
    assert slots_seen[0] >= 3, activity
    assert_exact(conn)
    for rollup, check in checks.items():
        assert conn.execute(check).fetchall() == [], rollup
    # concurrent writes never looked like drift: nothing was corrected
    assert conn.execute("SELECT count(*) FROM tally.corrections").fetchone() == (0,)

    for rollup in ROLLUPS:
        conn.execute("SELECT tally.compact(%s)", (rollup,))
    assert_exact(conn)
    for rollup in ROLLUPS:
        left = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE _tally_slot <> 0").format(
                sql.Identifier(f"{rollup}_slots")
            )
        ).fetchone()
        assert left == (0,), rollup

    # a group whose every amount is NULL: NULL sum and avg; once its rows are gone, no group
    conn.execute("TRUNCATE public.ledger")
    writers[0].conn.execute(INSERT, (0, 999, None, None, True))
    writers[2].conn.execute(INSERT, (2, 999, None, None, True))  # another slot
    account = conn.execute("SELECT n, n_amount, total, mean FROM public.by_account WHERE account = 999")
    assert account.fetchone() == (2, 0, None, None)
    region = conn.execute("SELECT n, flagged, mean FROM public.by_region WHERE region IS NULL")
    assert region.fetchone() == (2, None, None)
    overall = conn.execute("SELECT n, total, mean FROM public.ledger_overall")
    assert overall.fetchone() == (2, None, None)
    writers[6].conn.execute("DELETE FROM public.ledger WHERE account = 999")
    assert conn.execute("SELECT count(*) FROM public.by_account WHERE account = 999").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM public.by_region").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM public.ledger_overall").fetchone() == (0,)
    assert_exact(conn)


def test_set_slots_and_backfill_while_writers_and_a_reader_run_lose_nothing(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    """set_slots on, renumbered (triggers regenerated only), off and on again, with a
    backfill of every rollup after each change, while writers, a reader, a compactor and a
    reconcile loop with auto-correct run: the layout lock (tally.slot_layout_lock_key)
    keeps compaction, reconciliation and backfill off a layout set_slots is changing."""
    conn.execute(SCHEMA)
    writer_connections = connections_in_slots(connect, {1: 2, 2: 1, 3: 1})
    failures: list[str] = []
    stop = threading.Event()
    writers = [Writer(i, c, stop.is_set, failures) for i, c in enumerate(writer_connections)]
    reader_session = connect()
    checks = {rollup: view_check_sql(reader_session, rollup) for rollup in ROLLUPS}
    reads = [0]

    def read_step() -> None:
        for rollup, check in checks.items():
            wrong = reader_session.execute(check, prepare=False).fetchall()
            if wrong:
                failures.append(
                    f"reader: {rollup} differs from its recomputation in one snapshot: {wrong[:6]}"
                )
        reads[0] += 1

    maintenance_session = connect()

    def maintenance_step() -> None:
        for rollup in ROLLUPS:
            maintenance_session.execute("SELECT tally.compact(%s)", (rollup,))
            maintenance_session.execute(
                "SELECT * FROM tally.reconcile(%s, p_auto_correct => true)", (rollup,)
            )

    threads = [threading.Thread(target=w.run) for w in writers] + [
        looping("reader", stop, failures, read_step),
        looping("maintenance", stop, failures, maintenance_step),
    ]
    for thread in threads:
        thread.start()
    try:
        for slots in (SLOTS, 3, 1, 6, 1, SLOTS):
            for rollup in ROLLUPS:
                assert conn.execute("SELECT tally.set_slots(%s, %s)", (rollup, slots)).fetchone() == (slots,)
            time.sleep(0.1)
            for rollup in ROLLUPS:
                conn.execute("CALL tally.backfill(%s, p_batch_groups => 16, p_restart => true)", (rollup,))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == [], "\n".join(failures)
    assert all(sum(w.done.values()) > 10 for w in writers) and reads[0] > 0, (
        [w.done for w in writers],
        reads,
    )
    assert conn.execute("SELECT count(*) FROM tally.rollups WHERE slots = %s", (SLOTS,)).fetchone() == (4,)
    assert_exact(conn)
    assert conn.execute("SELECT count(*) FROM tally.corrections").fetchone() == (0,)
    assert conn.execute("SELECT * FROM tally.schema_drift()").fetchall() == []


# ---------------------------------------------------------------------------------------
# Races found in review, each made deterministic: a third session (a writer's open
# transaction, or tally.compact in an open transaction, as the compact job runs it for one
# rollup while it compacts the next) holds a row at the right moment, then lets go.


class Background(threading.Thread):
    """One statement on its own connection, in a thread; keeps its rows or its error."""

    def __init__(self, conn: psycopg.Connection[Any], statement: str, params: Any = None):
        super().__init__()
        self.conn = conn
        self.statement = statement
        self.params = params
        self.rows: list[tuple[Any, ...]] | None = None
        self.error: psycopg.Error | None = None
        conn.execute("SET deadlock_timeout = '200ms'")  # a deadlock is found sooner
        self.start()

    def run(self) -> None:
        try:
            cursor = self.conn.execute(self.statement, self.params)
            self.rows = cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            self.error = exc

    def outcome(self) -> str:
        self.join(timeout=30)
        assert not self.is_alive(), f"{self.statement} hangs"
        return "ok" if self.error is None else f"{type(self.error).__name__}: {self.error}"


def wait_until_blocked(conn: psycopg.Connection[Any], session: Background) -> None:
    """Until the session's backend waits for a lock, or its statement is over (once a race
    is fixed, it may no longer wait: its outcome is checked at the end)."""
    pid = session.conn.info.backend_pid
    for _ in range(1000):
        row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if row == ("Lock",) or not session.is_alive():
            return
        time.sleep(0.01)
    pytest.fail(f"{session.statement} neither waited for a lock nor ended")


def slotted_ledger(conn: psycopg.Connection[Any]) -> None:
    """The ledger with its rollups; by_account spread over SLOTS slots."""
    conn.execute(SCHEMA)
    conn.execute("SELECT tally.set_slots('by_account', %s)", (SLOTS,))


# Was: deadlock: set_slots (sql/functions/set_slots.sql) locks the source in SHARE ROW EXCLUSIVE
# mode, then tally.install_maintenance's DROP TRIGGER upgrades that to ACCESS EXCLUSIVE; a writer
# transaction that read the source before writing it holds ACCESS SHARE and queues behind the first
# lock, so the two wait for each other and one is aborted
# Now: install_maintenance creates or replaces triggers under SHARE ROW EXCLUSIVE and drops
# only unwanted ones; drop_rollup takes ACCESS EXCLUSIVE from the start.


def test_set_slots_while_a_transaction_reads_then_writes_the_source(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    conn.execute(SCHEMA)
    writer = connect()
    writer.execute("BEGIN")
    writer.execute("SELECT count(*) FROM public.ledger WHERE writer = 1")  # e.g. a check before a write
    set_slots = Background(connect(), "SELECT tally.set_slots('by_account', %s)", (SLOTS,))
    wait_until_blocked(conn, set_slots)  # DROP TRIGGER waits for the reader's ACCESS SHARE
    write = Background(writer, INSERT, (1, 1, "north", Decimal("1.000"), True))
    outcomes = (set_slots.outcome(), write.outcome())
    writer.execute("COMMIT")
    assert outcomes == ("ok", "ok")
    assert_exact(conn)


# Was: deadlock: correct_group (sql/functions/correct_group.sql, the slotted branch's FOR UPDATE of
# the group's slot rows) locks slot 0 first and then the other slots, while compact
# (sql/functions/compact.sql) locks the other slots (SKIP LOCKED) and then upserts slot 0:
# reconcile(auto_correct) and the compact job abort each other
# Now: a correction locks no slot row (one-snapshot read, difference added to slot 0) and
# compact writes slot 0 in key order.


def test_a_correction_and_a_compaction_of_one_group_do_not_deadlock(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    slotted_ledger(conn)
    first, second = connections_in_slots(connect, {1: 1, 2: 1})
    conn.execute(INSERT, (0, 1, "north", Decimal("1.000"), True))
    conn.execute("SELECT tally.compact('by_account')")  # account 1: a slot 0 row
    first.execute(INSERT, (1, 1, "north", Decimal("2.000"), True))  # a slot 1 row
    second.execute(INSERT, (2, 1, "north", Decimal("4.000"), True))  # a slot 2 row
    # drift as it happens: a write the triggers did not see
    conn.execute("SET session_replication_role = replica")
    conn.execute(INSERT, (0, 1, "north", Decimal("8.000"), True))
    conn.execute("RESET session_replication_role")

    first.execute("BEGIN")
    first.execute(INSERT, (1, 1, "north", Decimal("16.000"), True))  # holds the slot 1 row
    reconcile = Background(
        connect(),
        "SELECT in_sync, groups_corrected FROM tally.reconcile('by_account', p_auto_correct => true)",
    )
    wait_until_blocked(conn, reconcile)  # it holds slot 0 of account 1, waits for slot 1
    compactor = Background(connect(), "SELECT tally.compact('by_account')")
    wait_until_blocked(conn, compactor)  # it moved slot 2, waits for slot 0
    first.execute("COMMIT")
    assert (reconcile.outcome(), compactor.outcome()) == ("ok", "ok")
    assert reconcile.rows == [(False, 1)]
    assert_exact(conn, "by_account")


# Was: backfill_batch (sql/functions/backfill_batch.sql) does not exclude compactors: its DELETE
# waits for slot rows a compactor moved, does not see the slot 0 row the compactor inserted
# meanwhile (committed after its snapshot), and its plain INSERT into slot 0 then fails with
# unique_violation (or, when slot 0 existed, it deleted slot 0 first and the two deadlock)
# Now: backfill_batch locks the slot table EXCLUSIVE after the source.


def test_a_backfill_batch_and_a_compaction_of_one_group_both_succeed(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    slotted_ledger(conn)
    first, second = connections_in_slots(connect, {1: 1, 2: 1})
    first.execute(INSERT, (1, 5, None, Decimal("1.000"), True))
    holder = connect()
    holder.execute("BEGIN")
    holder.execute("SELECT tally.compact('by_account')")  # holds account 5's slot 0 row
    second.execute(INSERT, (2, 5, None, Decimal("2.000"), True))
    second.execute(INSERT, (2, 1, None, Decimal("4.000"), True))  # account 1: no slot 0 row yet

    compactor = Background(connect(), "SELECT tally.compact('by_account')")
    wait_until_blocked(conn, compactor)  # moved both slot 2 rows, waits for account 5's slot 0
    backfill = Background(connect(), "CALL tally.backfill('by_account', p_key_condition => 'account = 1')")
    wait_until_blocked(conn, backfill)  # its DELETE waits for the slot row the compactor moved
    holder.execute("COMMIT")
    assert (compactor.outcome(), backfill.outcome()) == ("ok", "ok")
    assert_exact(conn, "by_account")


# Was: set_slots(rollup, 1) (sql/functions/set_slots.sql) folds with tally.compact, which skips
# rows a concurrent compactor holds (SKIP LOCKED), and normalises sums with an UPDATE whose
# snapshot misses the slot 0 row that compactor inserts: a group whose every amount is NULL is left
# with sum 0 instead of NULL in the plain stats table
# Now: set_slots holds the layout lock and locks the slot table EXCLUSIVE before folding.


def test_set_slots_back_to_one_while_a_compaction_runs_keeps_the_stats_exact(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    slotted_ledger(conn)
    first, second = connections_in_slots(connect, {1: 1, 2: 1})
    first.execute(INSERT, (1, 5, "east", Decimal("10.000"), True))
    holder = connect()
    holder.execute("BEGIN")
    holder.execute("SELECT tally.compact('by_account')")  # holds account 5's slot 0 row
    second.execute(INSERT, (2, 5, "east", Decimal("1.000"), True))
    second.execute(INSERT, (2, 1, "east", None, True))  # account 1: every amount NULL

    compactor = Background(connect(), "SELECT tally.compact('by_account')")
    wait_until_blocked(conn, compactor)
    set_slots = Background(connect(), "SELECT tally.set_slots('by_account', 1)")
    wait_until_blocked(conn, set_slots)
    holder.execute("COMMIT")
    assert (compactor.outcome(), set_slots.outcome()) == ("ok", "ok")
    assert conn.execute("SELECT n, total, mean FROM public.by_account WHERE account = 1").fetchone() == (
        1,
        None,
        None,
    )
    assert_exact(conn, "by_account")


# Was: deadlock: compact (sql/functions/compact.sql, CTE folded) upserts the slot 0 rows in the
# order of a HashAggregate over the moved rows, not in key order, so two compactors that moved rows
# of the same groups can lock their slot 0 rows in opposite orders
# Now: compact upserts slot 0 in key order and skips locked rows in its clean-up.

FOLD_ORDER = """
CREATE TABLE public.fold_order (seq bigserial PRIMARY KEY, account int NOT NULL);
CREATE FUNCTION public.log_fold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.fold_order (account) VALUES (NEW.account);
    RETURN NULL;
END $$;
CREATE TRIGGER log_fold AFTER INSERT OR UPDATE ON public.by_account_slots
    FOR EACH ROW WHEN (NEW._tally_slot = 0) EXECUTE FUNCTION public.log_fold();
ALTER TABLE public.by_account_slots SET (autovacuum_enabled = false);  -- no ANALYZE: stable plans
"""


def fold_order(conn: psycopg.Connection[Any], accounts: list[int]) -> list[int]:
    """The order in which tally.compact upserts the slot 0 rows of these accounts (rolled back)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO public.ledger (writer, account, amount) SELECT 0, a, 1 FROM unnest(%s::int[]) AS a",
            (accounts,),
        )
        conn.execute("SELECT tally.compact('by_account')")
        order = [r[0] for r in conn.execute("SELECT account FROM public.fold_order ORDER BY seq")]
        raise psycopg.Rollback()
    return order


def test_two_compactions_never_deadlock(
    conn: psycopg.Connection[Any], connect: Callable[..., psycopg.Connection[Any]]
) -> None:
    slotted_ledger(conn)
    conn.execute(FOLD_ORDER)
    # groups compacted long ago, so the planner expects many moved rows in every compaction
    conn.execute(
        "INSERT INTO public.ledger (writer, account) SELECT 0, a FROM generate_series(10000, 10999) AS a"
    )
    conn.execute("SELECT tally.compact('by_account')")
    conn.execute("TRUNCATE public.fold_order")
    many = list(range(1, 601))
    order_of_many = fold_order(conn, many)
    assert sorted(order_of_many) == many
    # two groups P, R folded in opposite orders by a big and a small compaction, and a
    # group B between them in the big one's order
    position = {account: i for i, account in enumerate(order_of_many)}
    sample = order_of_many[::15]
    order_of_sample = fold_order(conn, sample)
    pairs = [
        (p, r)
        for i, r in enumerate(order_of_sample)
        for p in order_of_sample[i + 1 :]
        if position[p] + 1 < position[r]
    ]
    for p, r in pairs[:10]:
        if fold_order(conn, [p, r]) == [r, p]:
            b = order_of_many[position[p] + 1]
            break
    else:
        return  # every compaction folds in one order (e.g. key order): no deadlock to show

    writer_b, writer_many, writer_pr = connections_in_slots(connect, {1: 1, 2: 1, 3: 1})
    writer_b.execute(INSERT, (1, b, None, Decimal("1.000"), True))
    holder = connect()
    holder.execute("BEGIN")
    holder.execute("SELECT tally.compact('by_account')")  # holds B's slot 0 row
    writer_many.execute(
        "INSERT INTO public.ledger (writer, account, amount) SELECT 2, a, 2 FROM unnest(%s::int[]) AS a",
        (many,),
    )
    big = Background(connect(), "SELECT tally.compact('by_account')")
    wait_until_blocked(conn, big)  # upserted P's slot 0, waits for B's
    writer_pr.execute(
        "INSERT INTO public.ledger (writer, account, amount) SELECT 3, a, 3 FROM unnest(%s::int[]) AS a",
        ([p, r],),
    )
    small = Background(connect(), "SELECT tally.compact('by_account')")
    wait_until_blocked(conn, small)  # upserted R's slot 0, waits for P's
    holder.execute("COMMIT")  # the big one goes on to R
    assert (big.outcome(), small.outcome()) == ("ok", "ok")
    assert_exact(conn, "by_account")
