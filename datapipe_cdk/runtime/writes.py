"""Whether the notebooks may write into a source database, and the sentence that tells the reader.

Only the probes write: latency markers (``latency.run_probe``) and the deletion check's rows
(``quality.deletion_check``) are inserted, updated and deleted in a captured source table. On the local
stack that is their purpose; against any other target (a production source) writing needs an explicit
opt-in. ``write_probe_rows``:

* ``None`` (default): write only when the manifest's ``target`` is ``local``; read-only otherwise;
* ``True``: opt in, on any target (the notebook says so before it writes);
* ``False``: never write, not even on the local stack.

Everything else reads only: read-only latency (``observe.observe_latency``) never connects to a source,
and the quality checks open each source in a read-only session (``SourceDatabase(writable=False)``).
"""

from __future__ import annotations

LOCAL_TARGET = "local"
"""The manifest ``target`` of a stack deployed on the local stack; any other is treated as production."""


class ReadOnlyError(RuntimeError):
    """A write into a source database was refused (read-only mode); the message says how to opt in."""


def _checked(write_probe_rows: object) -> bool | None:
    if write_probe_rows is None or isinstance(write_probe_rows, bool):
        return write_probe_rows
    raise ValueError(f"write_probe_rows must be True, False or None, got {write_probe_rows!r}")


def probe_writes_allowed(target: str, write_probe_rows: bool | None = None) -> bool:
    """Whether probes may write into the sources of a stack deployed to ``target``."""
    chosen = _checked(write_probe_rows)
    return target == LOCAL_TARGET if chosen is None else chosen


def require_probe_writes(target: str, write_probe_rows: bool | None = None, *, where: str = "the source database") -> None:
    """Raise :class:`ReadOnlyError` unless probes may write into ``where`` (see the module docstring)."""
    if probe_writes_allowed(target, write_probe_rows):
        return
    if write_probe_rows is False:
        raise ReadOnlyError(f"write_probe_rows=False (read-only mode): refusing to write probe rows into {where}")
    raise ReadOnlyError(
        f"target {target!r} is not the local stack: refusing to write probe rows into {where} without an explicit "
        "opt-in; pass write_probe_rows=True (tools/run_notebooks.py --write-probe-rows) to allow it, or use the "
        "read-only measurements"
    )


def read_only_reason(target: str, write_probe_rows: bool | None = None) -> str:
    """Why probes may not write, in a few words (``write_probe_rows=False``, or the target without opt-in)."""
    if write_probe_rows is False:
        return "read-only: write_probe_rows=False"
    return f"read-only: target {target!r} without write_probe_rows=True"


def mode_statement(target: str, write_probe_rows: bool | None = None) -> str:
    """One sentence for the notebook: whether this run writes into the source database, and why."""
    if not probe_writes_allowed(target, write_probe_rows):
        return (
            f"READ-ONLY ({read_only_reason(target, write_probe_rows).removeprefix('read-only: ')}): nothing is "
            "written to any source database; latency is measured from changes that already flowed, and the "
            "checks only read."
        )
    if target == LOCAL_TARGET and write_probe_rows is None:
        return (
            "WRITES PROBE ROWS into the source database (default on the local stack): marker rows are inserted, "
            "updated and deleted in one captured table, and removed at the end."
        )
    return (
        f"WRITES PROBE ROWS into the source database of target {target!r} (explicit opt-in: "
        "write_probe_rows=True): marker rows are inserted, updated and deleted in one captured table, and "
        "removed at the end."
    )
