"""``python -m vision <command>``: the same as the ``vision`` command."""

from vision.commands import main

raise SystemExit(main())
