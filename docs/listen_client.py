"""A minimal LISTEN client for a pgtally change feed (psycopg 3).

    python docs/listen_client.py "dbname=app" user_emissions [--timeout 30] [--count N]

Enable the feed first: SELECT tally.set_notify('user_emissions');  -- channel tally_user_emissions
Each message is JSON: {"rollup", "op", "seq", "groups", "keys": [...]} ("rows" instead of
"keys" in 'values' mode; "many": true when one statement changed too many groups).
Messages arrive only for committed transactions. A jump in "seq" means messages were
missed: re-read what you show (e.g. SELECT * FROM tally.top(...)).

Two things matter: the connection is in autocommit mode (a LISTEN inside an open
transaction hears nothing until it commits), and LISTEN comes before the first read, so
no change committed after that read goes unnoticed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql


def changes(
    dsn: str, rollup: str, timeout: float | None = None, count: int | None = None
) -> Iterator[dict[str, Any]]:
    """Yield each change message of `rollup` (parsed JSON) until timeout/count is reached."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(f"tally_{rollup}")))
        last_seq = None
        # notifies() blocks until a message arrives; timeout ends the wait, stop_after the count.
        for notify in conn.notifies(timeout=timeout, stop_after=count):
            message = json.loads(notify.payload)
            seq = message.get("seq")
            if last_seq is not None and isinstance(seq, int) and seq > last_seq + 1:
                message["missed"] = seq - last_seq - 1  # refetch what you display
            last_seq = seq if isinstance(seq, int) else last_seq
            yield message


def main() -> None:
    parser = argparse.ArgumentParser(description="print a pgtally rollup's change messages")
    parser.add_argument("dsn")
    parser.add_argument("rollup")
    parser.add_argument("--timeout", type=float, help="stop after this many seconds")
    parser.add_argument("--count", type=int, help="stop after this many messages")
    args = parser.parse_args()
    for message in changes(args.dsn, args.rollup, args.timeout, args.count):
        print(json.dumps(message), flush=True)


if __name__ == "__main__":
    main()
