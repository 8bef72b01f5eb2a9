"""Serving the emulator in the foreground: the ``emulator`` command's options and body."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from ._core import DEFAULT_API_KEY, EmulatorConfig, EmulatorCore
from ._errors import mask_key
from ._ratelimit import RateLimits
from ._routes import build_app
from ._scripts import RunScript
from ._uvicorn import serve_foreground


def _per_minute(text: str) -> int:
    """An ``--rpm`` / ``--tpm`` value: a positive whole number."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number per minute, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``emulator`` command's options on ``parser``."""
    parser.add_argument("--port", type=int, default=8787, help="port to serve on, 0 for a free one")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the API key clients must send")
    parser.add_argument("--poll-after-ms", type=int, default=None, help="openai-poll-after-ms to send on GET run")
    parser.add_argument("--cancelling-delay", type=float, default=0.05, help="seconds a run stays cancelling")
    parser.add_argument("--expires-after", type=float, default=600.0, help="seconds until an active run expires")
    parser.add_argument("--queued-seconds", type=float, default=0.01, help="default script: seconds queued")
    parser.add_argument("--in-progress-seconds", type=float, default=0.05, help="default script: seconds in progress")
    parser.add_argument("--reply-text", default=RunScript.reply_text, help="default script: the reply")
    parser.add_argument("--no-beta-header", action="store_true", help="do not require 'OpenAI-Beta: assistants=v2'")
    parser.add_argument("--rpm", type=_per_minute, default=None, help="requests per minute allowed per API key")
    parser.add_argument("--tpm", type=_per_minute, default=None, help="tokens per minute allowed per API key")
    parser.add_argument(
        "--rate-burst-seconds", type=float, default=60.0, help="seconds' worth of --rpm/--tpm a full bucket holds"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument("--log-requests", action="store_true", help=argparse.SUPPRESS)  # the default


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted, logging one line per request to stderr; returns the exit code."""
    core = EmulatorCore(
        EmulatorConfig(
            api_key=args.api_key,
            poll_after_ms=args.poll_after_ms,
            require_beta_header=not args.no_beta_header,
            log_requests=not args.quiet,
            rate_limits=RateLimits(rpm=args.rpm, tpm=args.tpm, burst_seconds=args.rate_burst_seconds),
        ),
        default_script=RunScript(
            queued_seconds=args.queued_seconds,
            in_progress_seconds=args.in_progress_seconds,
            reply_text=args.reply_text,
        ),
        cancelling_delay=args.cancelling_delay,
        expires_after=args.expires_after,
    )

    def ready(port: int) -> None:
        print(
            f"prefect-openai-runs emulator listening on http://{args.host}:{port}/v1 "
            f"(api key {mask_key(args.api_key)}, assistant {core.store.default_assistant_id})",
            flush=True,
        )

    with contextlib.suppress(KeyboardInterrupt):
        serve_foreground(build_app(core), args.host, args.port, core.close, ready)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m prefect_openai_runs.testing [options]``: the ``emulator`` command on its own."""
    parser = argparse.ArgumentParser(
        prog="python -m prefect_openai_runs.testing",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(sys.argv[1:] if argv is None else argv))
