"""What redaction costs per body (µs, decoding excluded): ``python -m bench.redact_cost``."""

import sys
import timeit
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bodies import large_schedule_task
from mps_callback.verify.redact import redact

typical = Path("tests/fixtures/examples/doc-vod-WorkflowTask-transcode.json").read_bytes()
large = (
    large_schedule_task()
    .replace("__TS__", "1700000000")
    .replace("__SIGN__", "a" * 32)
    .replace("__TASKID__", "t1")
    .encode()
)
s3 = orjson.loads(typical)
s3["WorkflowTaskEvent"]["InputInfo"]["S3InputInfo"] = {"S3SecretKey": "x"}
s3 = orjson.dumps(s3)


def per_body_us(raw: bytes, n: int) -> float:
    """Microseconds redaction adds to decoding ``raw``, averaged over ``n`` runs."""
    cost = timeit.timeit(lambda: redact(orjson.loads(raw)), number=n) / n
    base = timeit.timeit(lambda: orjson.loads(raw), number=n) / n
    return 1e6 * (cost - base)


for name, raw, n in (("typical", typical, 20000), ("typical+S3 key (walk)", s3, 20000), ("300KB", large, 300)):
    print(f"{name:24s} {len(raw):7d} B  redact {per_body_us(raw, n):8.1f} us")
