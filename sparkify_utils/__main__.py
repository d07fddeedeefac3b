"""Allow ``python -m sparkify_utils``."""

from sparkify_utils.runtime.cli import main

raise SystemExit(main())
