from vitexplorer.cli import main

raise SystemExit(main())
