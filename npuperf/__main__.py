"""``python -m npuperf``: see npuperf.cli."""

from npuperf.cli import main

raise SystemExit(main())
