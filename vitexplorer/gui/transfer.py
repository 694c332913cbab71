"""Getting images in and figures out: drag and drop, clipboard, export, copy."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QMimeData
from PySide6.QtGui import QGuiApplication, QImage

from vitexplorer.core.errors import ImageError, OutputError, UsageError
from vitexplorer.core.images import check_size
from vitexplorer.gui import jobs
from vitexplorer.gui.dialogs import PREVIEW_PX


class TransferMixin:
    """Methods of the main window that move images and figures across its border."""

    def dragEnterEvent(self, event) -> None:
        md = event.mimeData()
        if md.hasUrls() or md.hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        md = event.mimeData()
        paths = [u.toLocalFile() for u in md.urls() if u.isLocalFile()]
        if len(paths) > 1:  # the first shown, PageDown / PageUp go through the others
            self.analyses.open_files([Path(p) for p in paths])
            event.acceptProposedAction()
        elif paths:
            self.open_path(paths[0])
            event.acceptProposedAction()
        elif md.hasImage():
            self.paste_image(md.imageData())
            event.acceptProposedAction()
        elif md.hasUrls():
            self.message(f"Cannot open '{md.urls()[0].toString()}': not a file on this "
                         "computer. Save it, then open or drop the file.")

    def paste(self) -> None:
        cb = QGuiApplication.clipboard()
        md = cb.mimeData()
        if md.hasUrls() and md.urls()[0].isLocalFile():
            self.open_path(md.urls()[0].toLocalFile())
        elif md.hasImage():
            self.paste_image(cb.image())
        else:
            self.message("The clipboard holds no image.")

    def paste_image(self, image) -> None:
        from vitexplorer.gui.qimage import from_qimage

        if image is None or image.isNull():
            self.message("The clipboard holds no image.")
            return
        try:  # the bounds of a file, checked before the pixels are copied
            check_size("clipboard", (image.width(), image.height()))
        except ImageError as exc:
            kept = " The previous image stays open." if self.state.a.finished is not None \
                else ""
            self._image_failed(f"{exc}.{kept}")
            return
        self.open_array(from_qimage(image), "clipboard")

    # ----------------------------------------------------------------------------- export
    def export(self, kind: str, path: str, figure_options=None) -> None:
        """Write the figure ``kind`` (view / layer / grid) to ``path`` in a worker."""
        analysis = self.state.a.analysis
        if analysis is None:
            self.message("Nothing to export yet.")
            return
        options = vars(self.state.options).copy()
        self._figure_options = figure_options  # Copy View copies what was last exported
        self.tasks.run("export", jobs.export_job, analysis, kind, path, options,
                       figure_options, on_done=lambda p: self.message(f"Saved {p}"),
                       on_error=self._export_failed, message=f"Exporting {Path(path).name}…")

    def preview_export(self, dialog, kind: str, figure_options) -> None:
        """Render the export dialog's preview in a worker (a newer request supersedes)."""
        analysis = self.state.a.analysis
        if analysis is None:
            return
        self.tasks.run("export-preview", jobs.preview_job, analysis, kind,
                       vars(self.state.options).copy(), figure_options, PREVIEW_PX,
                       on_done=dialog.show_preview,
                       on_error=lambda exc: self._export_failed(exc, "render the preview"),
                       message="Rendering the preview…")

    def _export_failed(self, exc: BaseException, what: str = "export") -> bool:
        """Expected failures go to the banner, saying ``what`` could not be done; an
        ImageError: an export decodes the photo again in full, and it changed or went since
        it was opened; a UsageError: a figure size that leaves its panels no room."""
        if isinstance(exc, OSError | ValueError | OutputError | ImageError | UsageError):
            self.banner.show_message(f"Could not {what}: {exc}")
            return True
        return False

    def copy_view(self) -> None:
        """Copy the current view as its exported figure (colour bar, title, caption): PNG,
        plus SVG and PDF flavours for applications that take them."""
        analysis = self.state.a.analysis
        if analysis is None:
            self.message("Nothing to copy yet.")
            return
        self.tasks.run("copy", jobs.copy_job, analysis, vars(self.state.options).copy(),
                       getattr(self, "_figure_options", None), on_done=self._copied,
                       on_error=lambda exc: self._export_failed(exc, "copy the figure"),
                       message="Copying the figure…")

    def _copied(self, data: dict[str, bytes]) -> None:
        md = QMimeData()
        md.setImageData(QImage.fromData(data["png"], "PNG"))
        md.setData("image/svg+xml", QByteArray(data["svg"]))
        md.setData("application/pdf", QByteArray(data["pdf"]))
        QGuiApplication.clipboard().setMimeData(md)
        self.message("Figure copied to the clipboard (image, SVG, PDF).")
