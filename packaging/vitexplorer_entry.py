"""Entry point of the PyInstaller bundle: the same CLI as the console script."""

from vitexplorer.cli import main

raise SystemExit(main())
