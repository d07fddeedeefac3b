"""Allow ``python -m sparkify_utils``."""

from sparkify_utils.cli import main

raise SystemExit(main())
