"""Charts over the op log: the metrics after each op, drawn as lines."""

from __future__ import annotations

import httpx
import pytest

from app.engine import Config, Machine
from app.pages.charts import charts, metrics
from app.store import StoredOp
from tests.pages.conftest import api, guest_file, session

pytestmark = pytest.mark.anyio


def test_metrics_follow_the_log() -> None:
    m = Machine(Config("rfc-v2", 4096, "never", frozenset()))
    ops = [
        StoredOp(1, "memfd_create", '{"name": "a", "flags": []}', None, 0),
        StoredOp(2, "ftruncate", '{"fd": 3, "length": 65536}', None, 0),
        StoredOp(3, "fallocate", '{"fd": 3, "mode": [], "offset": 0, "len": 16384}', None, 0),
    ]
    data = metrics(m, ops)
    assert data["resident"] == [0, 0, 0, 4] and data["used"][-1] == 4
    assert len(data["orders"]) == 4 and data["callbacks"] == [0, 0, 0, 0]
    cs = charts(data)
    assert cs[0].title == "resident pages" and cs[0].peak == 4
    assert cs[0].series[0].points.split()[-1] == "1000.0,4.0"


async def test_the_charts_page(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    await api(client, "POST", f"/sessions/{sid}/files/3/fallocate", mode=[], offset=0, len=16384)
    r = await client.get(f"/s/{sid}/charts?at=2")
    assert r.status_code == 200 and r.text.count('<figure class="chart"') == 4
    assert 'class="cursor" x1="333.3' in r.text  # op 2 of 6
    assert (await client.get("/s/nosuchsession000000/charts")).status_code == 404
