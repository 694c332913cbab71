"""A folder run's output folder (``vitexplorer batch``, ``vitexplorer evaluate``): checked,
locked, claimed, resumed, its errors logged and its results summarized.

- never among the inputs (an output folder that is or holds an input is refused) and
  writable, checked before any work;
- one run at a time per folder (:class:`RunLock`; the second run names the holder);
- a run owns its folder (``run.json``): ``resume`` continues only a run made with the same
  options and weights, skipping each image whose JSON (written last, so it marks
  completion) exists; ``overwrite`` over another run first deletes everything it wrote;
  nothing is overwritten unasked;
- ``errors.csv`` is written row by row as failures happen (:class:`ErrorLog`);
- ``summary.csv`` and the head profile are rebuilt from the per-image JSON files, so
  resumed runs and merged shards give one profile (:func:`summarize`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vitexplorer.core.discovery import Item
from vitexplorer.core.errors import ImageError, UsageError, VitexplorerError
from vitexplorer.core.files import write_atomic
from vitexplorer.core.heads import HeadTable

if TYPE_CHECKING:
    from vitexplorer.core.models import LoadedModel


class BatchError(VitexplorerError):
    """The run cannot start (bad output folder, options that clash with a previous run)."""


@dataclass
class BatchResult:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0
    log: ErrorLog | None = field(default=None, repr=False)

    @classmethod
    def logged(cls, out: Path, failed: list[tuple[str, str]]) -> BatchResult:
        """A run's result that appends each failure to ``out/errors.csv`` as it happens
        (:class:`ErrorLog`; :meth:`close` it), starting with ``failed`` (discovery's)."""
        result = cls(log=ErrorLog(out / "errors.csv"))
        for path, reason in failed:
            result.fail(path, reason)
        return result

    def close(self) -> None:
        if self.log is not None:
            self.log.close()

    def fail(self, path: str, reason: str) -> None:
        """Record one failure (and append it to ``errors.csv`` at once)."""
        self.failed.append((path, reason))
        if self.log is not None:
            self.log.add((path, reason))

    def fail_image(self, path: Path, exc: ImageError) -> None:
        """An image's :class:`ImageError`; its reason names the file when that is another
        (the image's mask), which the reason alone would pass off as the image's."""
        other = exc.path != Path(path)
        self.fail(str(path), f"'{exc.path}': {exc.reason}" if other else exc.reason)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


def model_sizes(loaded: LoadedModel, policy: str) -> dict:
    """``run.json``'s ``input_size`` (the pixels every image ran at; None for ``native``,
    where each ran at its own token grid, stated in its JSON) and ``patch_size``."""
    size = None if policy == "native" else list(loaded.input_size)
    return {"input_size": size, "patch_size": list(loaded.patch_size)}


def check_inputs(inputs: list[Path], out: Path) -> None:
    """Refuse an output folder that is an input or holds one: its results would be mixed
    with the inputs and read back as inputs by the next ``--resume``."""
    out_resolved = out.resolve()
    for inp in inputs:
        r = inp.resolve()
        if r == out_resolved or out_resolved in r.parents:
            what = "is" if r == out_resolved else "holds"
            raise BatchError(f"The output folder '{out}' {what} the input '{inp}'; outputs "
                             "are never written among the inputs: choose another folder")


def check_masks(folder: Path | None) -> None:
    """Refuse, before the model loads, a ``--masks`` that is no folder or cannot be read:
    each image would fail alike (or, unreadable, pass for one without a mask)."""
    if folder is None:
        return
    if not folder.is_dir():
        raise UsageError(f"--masks '{folder}' is not a folder")
    try:
        next(iter(folder.iterdir()), None)
    except OSError as exc:
        raise UsageError(f"--masks '{folder}' cannot be read: {exc.strerror or exc}") from exc


def check_output(out: Path) -> None:
    """Fail before any work when the output folder cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", dir=out)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise BatchError(f"Cannot write to the output folder '{out}': "
                         f"{exc.strerror or exc}") from exc


class RunLock:
    """An exclusive ``flock`` on ``OUT/.vitexplorer.lock``, held for the whole run, so two
    runs (batch or evaluate: ``command``) never process one folder at once; the file names
    the holder for the message. Released by the kernel when the process ends, even on
    SIGKILL."""

    NAME = ".vitexplorer.lock"

    def __init__(self, out: Path, command: str = "batch") -> None:
        import fcntl

        path = out / self.NAME
        self._fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            raise BatchError(f"'{out}' is in use by another run ({holder}); wait for "
                             "it to finish or choose another output folder") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"{command}: pid {os.getpid()} on {socket.gethostname()}, started "
                       f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        self._fh.flush()

    def release(self) -> None:
        self._fh.close()


@contextmanager
def output_lock(inputs: list[Path], out: Path, command: str) -> Iterator[None]:
    """What a folder run (``command``: batch, evaluate) checks before it writes anything
    (:func:`check_inputs`, :func:`check_output`), then its :class:`RunLock` on ``out``
    for the ``with`` body."""
    check_inputs(inputs, out)
    check_output(out)
    lock = RunLock(out, command)
    try:
        yield
    finally:
        lock.release()


class ErrorLog:
    """``errors.csv`` written row by row as failures happen (flushed), so a crash or a full
    disk later in the run keeps every error found so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lost = False
        try:
            self._fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._csv = csv.writer(self._fh)
        except OSError:
            self._fh = None
            self.lost = True
        self.add(("file", "reason"))

    def add(self, row: tuple[str, str]) -> None:
        if self._fh is None:
            return
        try:
            self._csv.writerow(row)
            self._fh.flush()
        except OSError:
            self.lost = True

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                self.lost = True


def _previous_run(run_file: Path) -> dict:
    try:
        data = json.loads(run_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BatchError(f"'{run_file}' cannot be read ({exc}); remove it or choose another "
                         "output folder") from exc
    if not isinstance(data, dict):
        raise BatchError(f"'{run_file}' is not a vitexplorer run record; choose another "
                         "output folder")
    return data


def result_records(out: Path, unreadable: list[tuple[Path, str]] | None = None
                   ) -> Iterator[tuple[Path, dict]]:
    """Each per-image result under ``out`` as (its JSON file, its record), in a stable
    order; ``run.json`` and hidden files are passed over, and so are files that are no
    JSON object, added to ``unreadable`` with the reason when it is given."""
    for p in sorted(out.rglob("*.json")):
        if p.name == "run.json" or p.name.startswith("."):
            continue
        data = _json_object(p)
        if isinstance(data, dict):
            yield p, data
        elif unreadable is not None:
            unreadable.append((p, data))


def _json_object(path: Path) -> dict | str:
    """The JSON object in ``path``, or why there is none."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return exc.strerror or str(exc)
    except ValueError as exc:  # JSON and UTF-8 errors both
        return f"not valid JSON ({exc})"
    return data if isinstance(data, dict) else "not a JSON object"


def claim_run(out: Path, key: dict, wh: str, resume: bool, overwrite: bool) -> None:
    """Make ``out`` this run's folder (batch and evaluate). A run recorded there already
    (``run.json``) is continued on ``resume`` only when its options ``key`` and weights hash
    ``wh`` match; ``overwrite`` replaces another run whole (:func:`clear_run`: a run owns
    its folder). Temporaries of a killed run go. A BatchError says what to do otherwise."""
    run_file = out / "run.json"
    if run_file.exists():
        previous = _previous_run(run_file)
        same = previous.get("options") == key and previous.get("weights_sha256") == wh
        if overwrite and not same:
            clear_run(out)
        elif not overwrite and not resume:
            raise BatchError(f"'{out}' already holds a run; use --resume to continue it or "
                             "--overwrite to replace its results")
        elif not overwrite and not same:
            raise BatchError(f"'{out}' holds a run with other options or weights "
                             f"(model {previous.get('model')}); resume it with the same "
                             "command, use --overwrite to replace that run, or choose "
                             "another output folder")
    for stale in out.rglob(".*.part"):  # temporaries of a killed run: never results
        stale.unlink(missing_ok=True)


def items_to_do(items: list[Item], out: Path, resume: bool, overwrite: bool,
                result: BatchResult) -> list[Item]:
    """The items still to process: one whose result (its JSON) exists is skipped on
    ``resume``, redone on ``overwrite``, and a failure otherwise (nothing is overwritten
    unasked). A result that cannot be read (damaged outside the run: results are written
    atomically) is redone on ``resume``: skipped, the image would be missing from the
    summary unsaid."""
    todo = []
    for it in items:
        found = result_paths(out, it)["json"]
        if found.exists():
            if resume:
                if isinstance(_json_object(found), dict):
                    result.skipped += 1
                    continue
            elif not overwrite:
                result.fail(str(it.path), "a result exists already (use --resume or "
                                          "--overwrite)")
                continue
        todo.append(it)
    return todo


def clear_run(out: Path) -> int:
    """Delete everything an earlier run wrote in ``out`` (per-image JSON, maps, overlays,
    grids named after each JSON, and the folder files); files it did not write stay.
    Returns the number of images whose results were removed."""
    n = 0
    for p, data in result_records(out):
        if "source" not in data or "output" not in data:
            continue
        stem = p.name[: -len(".json")]
        for q in p.parent.iterdir():
            if q.name.startswith(f"{stem}__") or q.name == f"{stem}.npz":
                q.unlink(missing_ok=True)
        p.unlink(missing_ok=True)
        n += 1
    for name in ("summary.csv", "head_profile.csv", "head_profile.png", "errors.csv",
                 "run.json"):
        (out / name).unlink(missing_ok=True)
    return n


def result_paths(out: Path, item: Item) -> dict[str, Path]:
    base = out / item.rel
    return {"json": base.with_name(base.name + ".json"),
            "maps": base.with_name(base.name + ".npz")}


# --------------------------------------------------------------------------- summarize
def load_tables(out: Path, unreadable: list[tuple[Path, str]] | None = None
                ) -> list[tuple[str, HeadTable]]:
    """Every per-image head table under ``out`` (from the JSON files; those that cannot
    be read go to ``unreadable``, see :func:`result_records`); a
    :class:`BatchError` when they come from more than one model, whose heads a profile
    would merge by their indices (deit_tiny's head 0.0 with vit_tiny's)."""
    records = [(p, data) for p, data in result_records(out, unreadable) if data.get("heads")]
    models = sorted({str(data.get("model")) for _, data in records})
    if len(models) > 1:
        raise BatchError(f"'{out}' holds the results of {len(models)} models "
                         f"({'; '.join(models)}); summarize the folder of each run")
    return [(data.get("output", str(p)), HeadTable.from_rows(data["heads"]))
            for p, data in records]


def summarize(out: Path, unreadable: list[tuple[Path, str]] | None = None) -> int:
    """(Re)build ``summary.csv`` and the head profile (CSV + figure) from the JSON files,
    so resumed runs and shards merge into one profile; result files that cannot be read are
    left out and listed in ``unreadable``. Returns the number of images."""
    from vitexplorer.core.profile import aggregate

    tables = load_tables(out, unreadable)
    if not tables:
        return 0
    buf = io.StringIO()
    writer = None
    for name, table in tables:
        for row in table.rows():
            if writer is None:
                writer = csv.DictWriter(buf, fieldnames=["image", *row])
                writer.writeheader()
            writer.writerow({"image": name, **row})
    write_atomic(out / "summary.csv", buf.getvalue())
    shapes = {t.shape for _, t in tables}
    if len(shapes) == 1:
        profile = aggregate([t for _, t in tables])
        write_atomic(out / "head_profile.csv", profile.to_csv())
        from vitexplorer.core.figures import profile_figure, save_figure

        save_figure(profile_figure(profile), out / "head_profile.png")
    return len(tables)
