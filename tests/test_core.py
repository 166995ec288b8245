"""The CDK core in use is the one asked for (``DATAPIPE_CDK_CORE``), never a silent fallback."""

from __future__ import annotations

import os

from datapipe_cdk import App, _cdk


def test_the_core_asked_for_is_the_core_in_use() -> None:
    wanted = os.environ.get("DATAPIPE_CDK_CORE")
    assert _cdk.CORE in ("cdktn", "cdktf")
    if wanted:
        assert _cdk.CORE == wanted
    assert type(App(outdir="/tmp/datapipe-core-probe")).__module__.split(".")[0] == _cdk.CORE
