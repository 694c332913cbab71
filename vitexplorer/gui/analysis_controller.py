"""Loads models and images into a model slot and runs the analysis, all in workers.

Results go into the :class:`~vitexplorer.gui.state.ViewState` (the slot's model and finished
analysis, the image source); failures and progress go out as signals. No widget is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

from vitexplorer.core.constants import IMAGE_SUFFIXES, resize_model_kwargs
from vitexplorer.core.errors import Cancelled, ImageError, VitexplorerError
from vitexplorer.gui import jobs
from vitexplorer.gui.state import FinishedAnalysis, ModelSlot, ViewState
from vitexplorer.gui.tasks import TaskRunner

if TYPE_CHECKING:
    from vitexplorer.core.models import LoadedModel


def image_files(folder: Path, should_stop=None) -> list[Path]:
    """The images of ``folder`` (not recursive, hidden files skipped), sorted by name;
    ``should_stop`` is asked between entries (a huge or network folder lists slowly)."""
    files = []
    for f in folder.iterdir():
        if should_stop is not None and should_stop():
            raise Cancelled("cancelled")
        if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".") and f.is_file():
            files.append(f)
    return sorted(files, key=lambda f: f.name.lower())


def list_job(paths: list[Path], siblings: bool = False, should_stop=None
             ) -> list[list[Path] | OSError | None]:
    """Runs in a worker: for each path, a folder's images (:func:`image_files`) or the
    OSError that kept it from being listed, anything else as itself; with ``siblings``,
    the images of a file's folder (None when the path is not a file)."""
    out: list[list[Path] | OSError | None] = []
    for p in paths:
        try:
            if siblings:
                out.append(image_files(p.parent, should_stop) if p.is_file() else None)
            else:
                out.append(image_files(p, should_stop) if p.is_dir() else [p])
        except OSError as exc:
            out.append(exc)
    return out


class AnalysisController(QObject):
    """Model loading, image opening and folder browsing for one slot."""

    #: a line for the status bar
    message = Signal(str)
    #: a model load failed with an expected error (the previous model, if any, stays)
    model_failed = Signal(object)
    #: the slot's model could not be rebuilt for another input size or fit: (reason)
    rebuild_failed = Signal(str)
    #: an image could not be opened: (one-line reason)
    image_failed = Signal(str)
    #: the decoded image while no model is loaded yet (RGB array)
    raw_image = Signal(object)
    #: a new analysis is in the slot
    analysis_shown = Signal()
    #: this slot's maps set the input size and fit back when a change of them fails or is
    #: cancelled (slot B follows slot A's)
    owns_input_size = True

    def __init__(self, state: ViewState, slot: ModelSlot, tasks: TaskRunner,
                 model_kwargs: dict | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.slot = slot
        self.tasks = tasks
        self.model_kwargs = model_kwargs or {}
        self.folder: list[Path] = []
        self._browsing: Path | None = None  # the folder's file asked for, until one is shown
        self._pending: tuple[str | np.ndarray, str] | None = None
        self._built_size = state.input_size  # the input size the slot's model is built for
        self._shown_size = state.input_size  # ... and the analysis shown was made at
        self._reverting = False  # setting the state back to the maps shown: nothing to redo
        self._failure: str | None = None  # why the last analysis failed, said on going back
        self._steps = 0  # Next (+1) and Previous (-1) pressed while a listing runs
        state.changed.connect(self._state_changed)
        tasks.worker_finished.connect(self._worker_ended)

    def _state_changed(self, names: frozenset[str]) -> None:
        if self._reverting:
            return  # the slot already holds the model and maps of the values set back
        current = self._current_image()
        loaded = self.slot.loaded
        if names & {"input_size", "policy"} and loaded is not None and self._rebuild(loaded):
            self.load_model(loaded.spec, loaded.weights)  # rebuilt, then the image again
        elif "policy" in names and current is not None and loaded is not None:
            self.analyze(*current)  # the image fitted another way: a new forward

    def _rebuild(self, loaded: LoadedModel) -> bool:
        """Whether the slot's model is not the one the state's view asks for: built for
        another input size, or with a token grid that follows the image (native fit) or
        not (every other fit), as the command line builds it."""
        return self.state.input_size != self._built_size or (
            bool(resize_model_kwargs(self.state.policy))
            != bool(getattr(loaded.model, "dynamic_img_size", False)))

    def _kind(self, kind: str) -> str:
        return f"{kind}-{self.slot.name}"

    # --- models ----------------------------------------------------------------------------
    def load_model(self, spec: str, weights: str = "pretrained") -> None:
        label = spec if weights == "pretrained" else f"{spec} ({Path(weights).name})"
        kwargs = {**self.model_kwargs, **resize_model_kwargs(self.state.policy)}
        size = self.state.input_size
        if size:
            kwargs["input_size"] = size
            label += f" at {size} px"
        self.tasks.run(self._kind("model"), jobs.load_model_job, spec, weights,
                       kwargs, on_done=lambda loaded: self._model_loaded(loaded, size),
                       on_error=lambda exc: self._model_error(exc, spec, weights),
                       message=f"Loading {label}…")

    def _model_loaded(self, loaded: LoadedModel, size: int | None) -> None:
        self._built_size = size
        self.slot.set_loaded(loaded)
        self.message.emit(f"Model ready: {loaded.label}")
        source = self._pending or self._current_image()
        if source is not None:
            self.analyze(*source)

    def _model_error(self, exc: BaseException, spec: str, weights: str) -> bool:
        if not isinstance(exc, VitexplorerError):
            return False
        loaded = self.slot.loaded
        if loaded is not None and (loaded.spec, loaded.weights) == (spec, weights):
            self.rebuild_failed.emit(str(exc))  # the same model at another size or fit
        else:
            self.model_failed.emit(exc)
        return True

    def _worker_ended(self, kind: str) -> None:
        """A rebuild or analysis for another input size or image fit cancelled (or failed)
        before its maps were shown: the model, input size and fit of the maps shown come
        back, so that the controls, Model Info and the maps agree."""
        if not self.owns_input_size or kind not in (self._kind("model"),
                                                    self._kind("analyze")):
            return
        a = self.slot.analysis
        if (a is None or (self.state.input_size, self.state.policy) == (self._shown_size,
                                                                       a.policy)
                or self.tasks.is_running(self._kind("model"))
                or self.tasks.is_running(self._kind("analyze"))):
            return
        if a.loaded is not None and self.slot.loaded is not a.loaded:
            self._built_size = self._shown_size
            self.slot.set_loaded(a.loaded)
        self._reverting = True
        try:
            changed = self.state.update(input_size=self._shown_size, policy=a.policy)
        finally:
            self._reverting = False
        size = f"{self._shown_size} px" if self._shown_size else "the model's default"
        back = [f"input size {size}"] * ("input_size" in changed) + \
            [f"image fit '{a.policy}'"] * ("policy" in changed)
        text = f"Back to the {' and '.join(back)} of the maps shown."
        if self._failure:  # the model set back hid the banner that said why
            self.image_failed.emit(f"{self._failure} {text}")
        else:
            self.message.emit(text)

    # --- images ----------------------------------------------------------------------------
    def _current_image(self) -> tuple[np.ndarray, str] | None:
        a = self.slot.analysis
        if a is None:
            return None
        # a display copy stands for its file, or for the pasted array it was made from:
        # analyse that again (exact, full export)
        if a.photo is not None:
            return a.photo, a.source
        return (a.source, a.source) if a.original is not None else (a.image, a.source)

    def open_path(self, path: str) -> None:
        p = Path(path)
        if p.is_dir():
            self.open_folder(p)
        else:
            self.open_image(str(p), str(p))

    def open_image(self, image: str | np.ndarray, source: str) -> None:
        """An image the user opened (a file, a pasted array): it wins over a listing still
        running for Next or a folder asked before, which would replace it when it lands."""
        self.tasks.cancel(self._kind("list"))
        self._browsing = None
        self.analyze(image, source)

    def _list(self, paths: list[Path], done, siblings: bool = False) -> None:
        """List ``paths`` in a worker (:func:`list_job`), then ``done(lists)``; Next and
        Previous pressed meanwhile add up in :attr:`_steps`, taken from where it lands."""
        self._steps = 0
        name = paths[0].parent.name if siblings else paths[0].name
        self.tasks.run(self._kind("list"), list_job, paths, siblings, on_done=done,
                       message=f"Listing {name or paths[0]}…")

    def _listed(self, folder: Path, listed: list[Path] | OSError | None) -> list[Path] | None:
        """The images of ``folder``, or None when it could not be listed (said, naming it)."""
        if isinstance(listed, OSError):
            self.image_failed.emit(f"Cannot list '{folder}': {listed.strerror or listed}.")
            return None
        return listed

    def open_folder(self, folder: Path) -> None:
        self._list([folder], lambda lists: self._open_listed([folder], lists))

    def open_files(self, paths: list[Path]) -> None:
        """Several files (and folders) at once, as dropped: the first image is opened and
        Next / Previous go through them in the order given."""
        self._list(paths, lambda lists: self._open_listed(paths, lists))

    def _open_listed(self, paths: list[Path], lists: list) -> None:
        lists = [self._listed(p, listed) for p, listed in zip(paths, lists, strict=True)]
        files = [f for listed in lists if listed for f in listed]
        if not files:
            if len(paths) == 1 and lists == [[]]:
                self.image_failed.emit(f"No images found in '{paths[0]}'.")
            elif None not in lists:  # else the folder that could not be listed is named
                self.image_failed.emit("No images among the files dropped.")
            return
        self.folder = files
        self._go(0, self._steps)

    def step_folder(self, delta: int) -> None:
        """The next (``delta`` 1) or previous (-1) image of the folder opened, or of the
        current image's own folder, as an image viewer browses (listed again, in a worker,
        when the image is not in the list: opened from elsewhere, or added since). It steps
        from the file last asked for while that one is not shown (it could not be opened, or
        is still being analysed): a broken file is passed, not tried again. Pressed while a
        listing runs, the steps add up and are taken once it lands."""
        if self.tasks.is_running(self._kind("list")):
            self._steps += delta
            return
        source = self.state.source
        cur = self._browsing or (Path(source) if source else None)
        if cur is not None and cur in self.folder:
            self._go(self.folder.index(cur), delta)
        elif cur is not None:
            self._list([cur], lambda lists: self._step_listed(cur, lists[0]), siblings=True)
            self._steps = delta
        else:
            self._nothing_to_browse()

    def _step_listed(self, cur: Path, listed: list[Path] | OSError | None) -> None:
        if isinstance(listed, OSError):
            self._listed(cur.parent, listed)
            return
        if listed is not None:
            self.folder = listed
        if cur in self.folder:
            self._go(self.folder.index(cur), self._steps)
        else:
            self._nothing_to_browse()

    def _nothing_to_browse(self) -> None:
        self.message.emit("Open an image file or a folder (Ctrl+Shift+O or drop one) to "
                          "browse it.")

    def _go(self, index: int, delta: int) -> None:
        nxt = self.folder[(index + delta) % len(self.folder)]
        self._browsing = nxt
        self.analyze(str(nxt), str(nxt))

    def analyze(self, image: str | np.ndarray, source: str) -> None:
        """Analyse ``image`` with the slot's model (or decode it now, analyse once loaded)."""
        if self.slot.loaded is None:
            self._pending = (image, source)
            if isinstance(image, str):
                self.tasks.run(self._kind("decode"), jobs.decode_job, image,
                               on_done=self._decoded, on_error=self._image_error,
                               message="Opening image…")
            return
        self._pending = None
        self._failure = None
        for kind in ("gradients", "maps", "layer"):
            self.tasks.cancel(self._kind(kind))
        self.tasks.run(self._kind("analyze"), jobs.analyze_job, self.slot.loaded, image,
                       source, self.state.policy, self.state.cmap, self.state.mask,
                       on_done=self._analysis_done,
                       on_error=self._image_error, message=f"Analysing {Path(source).name}…")

    def _decoded(self, rgb: np.ndarray) -> None:
        if self.slot.finished is None:
            self.raw_image.emit(rgb)

    def _image_error(self, exc: BaseException) -> bool:
        """An image that cannot be opened, or analysed by this model at this size (the
        attention it would keep exceeds the memory: core.stream.check_memory), is a banner."""
        if not isinstance(exc, VitexplorerError):
            return False
        kept = " The previous image stays open." if self.slot.finished is not None else ""
        if isinstance(exc, ImageError):
            self.image_failed.emit(f"{exc}.{kept}")
        else:
            self._failure = f"Not analysed: {str(exc).rstrip('.')}."
            self.image_failed.emit(f"{self._failure}{kept}")
        return True

    def _analysis_done(self, finished: FinishedAnalysis) -> None:
        a = finished.analysis
        layer = self.state.layer
        if not 0 <= layer < a.num_layers or self.slot.analysis is None or (
                self.slot.analysis.num_layers, self.slot.analysis.num_heads) != (
                a.num_layers, a.num_heads):
            layer = a.num_layers - 1  # a new model starts on its last layer
        self._shown_size = self._built_size
        self._browsing = None
        # one event for the new image: the slot first (no drawing without it), then the state
        self.slot.finished = finished
        self.state.update(source=a.source, query_cell=None, layer=layer,
                          head=min(self.state.head, a.num_heads - 1), target=None)
        self.slot.set_finished(finished)
        self.message.emit(f"{Path(a.source).name}: {a.num_layers} layers x {a.num_heads} heads")
        self.analysis_shown.emit()
