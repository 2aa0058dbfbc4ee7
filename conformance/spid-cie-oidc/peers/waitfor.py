"""Wait until a peer answers on /sigess/health (exit 0) or the timeout passes (exit 1)."""
import sys
import time
import urllib.request

url, timeout = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 30
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.3)
sys.exit(1)
