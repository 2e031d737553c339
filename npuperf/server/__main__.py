"""``python -m npuperf.server``: see npuperf.server.cli."""

from npuperf.server.cli import main

raise SystemExit(main())
