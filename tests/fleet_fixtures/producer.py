"""A producer process for the fleet tests: `producer.py PREFIX COUNT [RESEND_AFTER_S]`.

Writes one session `PREFIX` (a start write, then COUNT `message/added` writes whose
content is `PREFIX:k`, write ids `PREFIX-k`) through a SessionClient, waits for every
receipt and prints one JSON line: the receipts as [write_id, status, tx_id]. With
RESEND_AFTER_S (a test that expects lost messages) the start write's receipt is waited for
before the other writes are sent.
"""

from __future__ import annotations

import json
import sys

from sessiondb.store import Settings
from sessiondb.tasks import SessionClient


def main() -> None:
    prefix, count = sys.argv[1], int(sys.argv[2])
    resend = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    with SessionClient(Settings.from_env(), resend_after_s=resend) as client:
        handles = [client.write(prefix, [{"type": "session/started", "title": prefix}], write_id=f"{prefix}-start")]
        if len(sys.argv) > 3:
            # a test that gives RESEND_AFTER_S expects lost messages and resends; the writes below
            # need the session, and a lost start resent later would land behind them (rejected as
            # writes to an unknown session), so wait for it, as a producer needing that order must
            handles[0].receipt(timeout=180)
        handles += [client.write(prefix, [{"type": "message/added", "role": "user", "content": f"{prefix}:{k}"}],
                                 write_id=f"{prefix}-{k}") for k in range(count)]
        receipts = [h.receipt(timeout=180) for h in handles]
    print(json.dumps({"receipts": [[r["write_id"], r["status"], r.get("tx_id")] for r in receipts]}), flush=True)


if __name__ == "__main__":
    main()
