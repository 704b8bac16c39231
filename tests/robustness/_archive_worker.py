"""Upload archives to an in-process app under an address-space limit; print what happened.

Run by test_hostile_archives.py as ``python _archive_worker.py LIMIT_BYTES ROOT`` with a JSON
list of {label, path, name, version, filename} on stdin; prints one JSON list of results.
A memory blow-up shows as MemoryError (a 500 or a non-zero exit), never as a swapping host.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main() -> int:
    limit, root = int(sys.argv[1]), sys.argv[2]
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import cheesecellar
    from robustness.archives import Dist
    from robustness.support import OPEN
    from robustness.wsgi import Wsgi

    app = Wsgi(cheesecellar.app(root=root, **OPEN))
    results = []
    for case in json.load(sys.stdin):
        data = Path(case["path"]).read_bytes()
        dist = Dist(case["name"], case["version"], case["filename"], data)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        try:
            reply = app.upload(dist)
            status, body = reply.status, reply.text
        except AssertionError as exc:  # a 5xx or a bad header, reported to the test
            status, body = 599, str(exc)
        results.append(
            {
                "label": case["label"],
                "status": status,
                "body": body[:300],
                "seconds": time.perf_counter() - started,
                "maxrss_kib_before": before,
                "maxrss_kib_after": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "size": len(data),
            }
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
