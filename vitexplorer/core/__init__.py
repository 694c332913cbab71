"""Qt-free core: models, capture, maps, head science and outputs.

Nothing in this package imports Qt (an import-linter contract enforces it), so the GUI,
the CLI, the batch runner, notebooks and the tests all call the same code.

The modules form five layers; a module imports only from its own layer or the ones below
(the ``layers`` contract in ``pyproject.toml`` enforces it, and lists every module; the
README's Layout table follows it, checked by ``tests/test_layout.py``):

- output: ``batch`` (folders of images to files), ``run_folder`` (a folder run's output
  folder: checks, lock, resume, error log, summary), ``figures`` (matplotlib figures),
  ``evaluate_folder`` (``vitexplorer evaluate``), ``science_figures`` (its and the
  comparison's figures);
- science: ``analysis`` (the one object every view and export reads: maps, head table,
  gradients) and what it and the studies compute from maps: ``heads``, ``masks``,
  ``relations``, ``importance``, ``stability``, ``profile``, ``evaluate`` (mask agreement,
  faithfulness), ``compare`` (two models' heads paired), ``tokens`` (artifact tokens),
  ``preview`` (an analysis shown in a notebook);
- features: the per-patch image measurements the head scores read (a layer of its own, so
  that it never reads a score);
- engine: ``models``, ``images``, ``capture`` (full attention), ``stream`` (the capture the
  app runs), ``rollout``, ``maps`` (map statistics), ``render`` (colormaps and overlays),
  ``checks`` (user options checked against a model before any work), ``discovery`` (the
  image files of a folder run);
- base: ``constants``, ``files`` (atomic writes, output checks), ``hub`` (the hub's cache
  and reachability), and below them ``errors``, importable without torch.

A new module goes into the lowest layer whose modules it needs, into the contract and into
the README's Layout table.
"""
