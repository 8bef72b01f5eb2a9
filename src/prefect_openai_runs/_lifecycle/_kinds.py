"""What the lifecycle core knows of a kind of job (a run, a background response, a batch), without I/O.

A kind is an adapter: it names the job's address (:class:`JobRef`), reads its status, says which
statuses are terminal, which wait for the caller (a run's ``requires_action``), which mean it is being
cancelled, and which exception tells an outcome other than completion. Following, the deadline, the
cancel and the end of a job are written once on top of it (:mod:`._follower`, ``_async/_driver.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

from prefect_openai_runs.exceptions import JobOutcomeError

J = TypeVar("J", contravariant=True)


@dataclass(frozen=True)
class JobRef:
    """A job's address.

    Attributes:
        kind: The kind of job: ``run``, ``response`` or ``batch``.
        id: The job's id.
        parent_id: The object the job belongs to, when its API needs it (a run's thread), else ``None``.
    """

    kind: str
    id: str
    parent_id: str | None = None

    def describe(self) -> str:
        """``run run_abc (thread thread_xyz)`` for messages."""
        return f"{self.kind} {self.id}" + (f" ({self.parent_id})" if self.parent_id else "")


class JobKind(Protocol[J]):
    """The statuses and outcomes of one kind of job (the sans-IO half of an adapter)."""

    name: str
    """The kind's name: ``run``, ``response``, ``batch`` (events are ``openai.<name>.<status>``)."""
    recheck_cancelled: bool
    """Whether a job seen ``cancelled`` is read once more before its end is recorded (responses: a
    cancel is best effort and a ``cancelled`` response has been seen to turn ``completed``)."""

    def ref(self, job: J) -> JobRef:
        """The job's address."""

    def status(self, job: J) -> str:
        """The job's status as the API spells it."""

    def is_terminal(self, job: J) -> bool:
        """Whether the job can no longer change."""

    def needs_action(self, job: J) -> bool:
        """Whether the job waits for the caller (e.g. tool outputs); following stops there."""

    def is_cancelling(self, job: J) -> bool:
        """Whether a cancel of the job is in flight."""

    def is_cancelled(self, job: J) -> bool:
        """Whether the job ended ``cancelled``."""

    def is_completed(self, job: J) -> bool:
        """Whether the job ended as it should."""

    def outcome_error(self, job: J, reason: str | None = None) -> JobOutcomeError | None:
        """The exception for a job that ended without completing (``None`` once completed)."""


def worth_reattaching(kind: JobKind[J], job: J) -> bool:
    """Whether a job an earlier attempt created should be followed by a retry: completed, or still able
    to complete. One cancelled or being cancelled (by that attempt's cleanup, typically), failed or
    expired is left as it is, and the retry creates another (or no retry could ever succeed)."""
    return kind.is_completed(job) or not (kind.is_terminal(job) or kind.is_cancelling(job))


_KIND_BY_OBJECT = {"thread.run": "run", "response": "response", "batch": "batch"}


def ref_of(job: object) -> JobRef:
    """The address of a job of any kind, from the ``object`` and ids the API gives it."""
    kind = _KIND_BY_OBJECT.get(str(getattr(job, "object", "")), "job")
    return JobRef(kind, str(getattr(job, "id", "")), getattr(job, "thread_id", None))
