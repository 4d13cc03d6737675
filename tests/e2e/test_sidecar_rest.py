"""REST clients of a running ``tftrt-sidecar run``: their calls go through Envoy's REST
front to TF Serving's REST API unchanged, and their shapes are recorded like gRPC's."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.builders import land
from tests.support.running_sidecar import running_sidecar
from tests.support.waiting import wait_until


def _post(address: str, path: str, document: object) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{address}{path}", method="POST",
                                     data=json.dumps(document).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, bytes(answer.read())


def test_rest_calls_pass_through_and_are_recorded(tmp_path: Path, mlp_model: Path) -> None:
    incoming, serving = tmp_path / "incoming", tmp_path / "serving"
    land(mlp_model, incoming, "mlp", 1)
    with running_sidecar(tmp_path, incoming=incoming, serving=serving,
                         state=tmp_path / "state") as sidecar:
        sidecar.wait_serving(1000, 180)
        rows = {"instances": [[1.0] * 16, [0.5] * 16, [0.0] * 16]}
        through = _post(sidecar.rest, "/v1/models/mlp:predict", rows)
        direct = _post(sidecar.standin_rest, "/v1/models/mlp:predict", rows)
        assert through == direct and through[0] == 200
        columns = {"inputs": {"x": [[1.0] * 16] * 5}}
        assert _post(sidecar.rest, "/v1/models/mlp:predict", columns)[0] == 200

        def recorded() -> float:
            return sidecar.metric("tftrt_sidecar_tap_requests_total", model="mlp",
                                  prebuilt="false") or 0.0

        wait_until(lambda: recorded() >= 2, 20, "both REST calls recorded")
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(sidecar.rest, "/v1/models/mlp/reload", {})
        assert refused.value.code == 403
        assert "cannot be called" in json.loads(refused.value.read())["error"]
