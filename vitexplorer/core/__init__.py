"""Qt-free engine: models, images, capture, maps, rendering and figures.

Nothing in this package imports Qt (an import-linter contract enforces it), so the GUI,
the CLI, the batch runner and the tests all call the same code.
"""
