"""The PySide6 desktop application: displays and dispatches; all computing is in core."""
