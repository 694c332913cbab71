"""Getting images in and figures out: drag and drop, clipboard, export, copy."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QGuiApplication

from vitexplorer.gui import jobs


class TransferMixin:
    """Methods of the main window that move images and figures across its border."""

    def dragEnterEvent(self, event) -> None:
        md = event.mimeData()
        if md.hasUrls() or md.hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        md = event.mimeData()
        paths = [u.toLocalFile() for u in md.urls() if u.isLocalFile()]
        if paths:
            self.open_path(paths[0])
            event.acceptProposedAction()
        elif md.hasImage():
            self.paste_image(md.imageData())
            event.acceptProposedAction()

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
        self.open_array(from_qimage(image), "clipboard")

    # ----------------------------------------------------------------------------- export
    def export(self, kind: str, path: str) -> None:
        """Write the figure ``kind`` (view / layer / grid) to ``path`` in a worker."""
        analysis = self.state.a.analysis
        if analysis is None:
            self.message("Nothing to export yet.")
            return
        options = vars(self.state.options).copy()
        self.tasks.run("export", jobs.export_job, analysis, kind, path, options,
                       on_done=lambda p: self.message(f"Saved {p}"),
                       on_error=self._export_failed, message=f"Exporting {Path(path).name}…")

    def _export_failed(self, exc: BaseException) -> bool:
        if isinstance(exc, OSError | ValueError):
            self.banner.show_message(f"Could not export: {exc}")
            return True
        return False

    def copy_view(self) -> None:
        pix = self.view.pixmap()
        if not pix.isNull():
            QGuiApplication.clipboard().setPixmap(pix)
            self.message("View copied to the clipboard.")
