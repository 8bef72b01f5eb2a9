"""``python -m prefect_openai_runs.testing``: serve the emulator in the foreground."""

from ._cli import main

raise SystemExit(main())
