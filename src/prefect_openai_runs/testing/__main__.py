"""``python -m prefect_openai_runs.testing``: serve the emulator in the foreground."""

from ._serve import main

raise SystemExit(main())
