"""A user's app: a Python file exposing ``build(outdir) -> cdktf.App``, loaded and checked before anything runs.

Every way an app can be wrong gets one clear error naming the file and the fix: no ``build``, a
``build`` that returns something else, ignores ``outdir`` or builds no stack, and errors the
constructs raise while it runs.
"""

from __future__ import annotations

import inspect
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

from ._cdk import App
from .errors import DatapipeError
from .stack import DataPipelineStack


class AppError(RuntimeError):
    """The app file cannot be used; the message names it and says how to fix it."""


def load_app(path: str | Path, outdir: str | Path) -> App:
    """Run ``build(outdir)`` of the app file at ``path`` and check what it returns.

    ``outdir`` (and its parents) is created first: cdktf creates only its last level.
    """
    file = Path(path)
    if not file.is_file():
        raise AppError(f"app file {file} not found: pass --app <file.py>, a Python file defining build(outdir)")
    Path(outdir).mkdir(parents=True, exist_ok=True)
    folder = str(file.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # the app's own helper modules, as `python app.py` would see them
    try:
        namespace = runpy.run_path(str(file), run_name="datapipe_app")
    except DatapipeError:
        raise
    except Exception as error:
        raise AppError(f"{file}: importing the app failed: {type(error).__name__}: {error}") from None
    finally:
        if added:
            sys.path.remove(folder)
    build = namespace.get("build")
    if not callable(build):
        raise AppError(
            f"{file}: defines no build(outdir) function; add `def build(outdir: str) -> App:` returning your cdktf App"
        )
    try:
        inspect.signature(build).bind(str(outdir))
    except TypeError:
        raise AppError(f"{file}: build must take one argument, the output directory: def build(outdir: str) -> App") from None
    app = build(str(outdir))
    if not isinstance(app, App):
        raise AppError(f"{file}: build(outdir) returned {type(app).__name__}, not a cdktf App; end it with `return app`")
    written = Path(str(app.outdir)).resolve()
    if written != Path(outdir).resolve():
        raise AppError(
            f"{file}: build(outdir) ignored outdir ({outdir}) and writes to {written}; create the app with App(outdir=outdir)"
        )
    if not stacks_of(app):
        raise AppError(f"{file}: build(outdir) created no DataPipelineStack; add at least one stack to the app")
    return app


def stacks_of(app: App, only: Sequence[str] | None = None) -> list[DataPipelineStack]:
    """The app's pipeline stacks (only those named, when given; an unknown name is an error)."""
    found = [c for c in app.node.children if isinstance(c, DataPipelineStack)]
    if only:
        unknown = sorted(set(only) - {s.node.id for s in found})
        if unknown:
            raise AppError(f"no stack named {', '.join(unknown)} (stacks: {', '.join(s.node.id for s in found)})")
        found = [s for s in found if s.node.id in only]
    return found
