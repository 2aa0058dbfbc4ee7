#!/usr/bin/env python3
"""Pages through GET /waas/v1/flussi from since=0 and writes every flow's decoded XML to a
folder, one file per id_flusso. Checks on the way that the same `since` answers the same
flows and that ts_flusso strictly increases. Standard library only.

usage: fetch_flows.py BASE_URL TOKEN OUT_DIR
"""
import base64
import datetime
import json
import pathlib
import sys
import urllib.request


def get(base, token, since, limit=100):
    req = urllib.request.Request(
        f"{base}/waas/v1/flussi?since={since}&limit={limit}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)["elenco_flussi"]


def ms(ts):
    t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(t.timestamp() * 1000))


def main():
    base, token, out = sys.argv[1].rstrip("/"), sys.argv[2], pathlib.Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    since, n, last = 0, 0, -1
    while True:
        page = get(base, token, since)
        if not page:
            break
        again = get(base, token, since)
        assert [f["id_flusso"] for f in again][: len(page)] == [f["id_flusso"] for f in page], "same since, different flows"
        for f in page:
            t = ms(f["ts_flusso"])
            assert t > last, "ts_flusso does not increase"
            last = t
            (out / f"{f['id_flusso']}.xml").write_bytes(base64.b64decode(f["flusso"]))
            n += 1
        since = ms(page[-1]["ts_flusso"])
    print(f"{n} flows written to {out}")
    if n == 0:
        sys.exit("no flows served")


if __name__ == "__main__":
    main()
