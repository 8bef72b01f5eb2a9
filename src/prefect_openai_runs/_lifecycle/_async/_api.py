"""What the lifecycle core asks of one API (the I/O half of an adapter)."""

from __future__ import annotations

from typing import Protocol, TypeVar

from prefect_openai_runs._lifecycle._async._backend import Reader
from prefect_openai_runs._lifecycle._follower import StatusChange
from prefect_openai_runs._lifecycle._kinds import JobKind, JobRef

J = TypeVar("J")
S = TypeVar("S", contravariant=True)
J_contra = TypeVar("J_contra", contravariant=True)


class AsyncJobApi(Protocol[J, S]):
    """One API's requests, as the core needs them: start a job from a spec, find it again, read it,
    poll it, cancel it.

    ``S`` is what starting a job takes (e.g. a run's thread, parameters and idempotency key).
    """

    @property
    def kind(self) -> JobKind[J]:
        """The kind of job this API drives."""

    async def start(self, spec: S, stream: bool) -> tuple[J, Reader[J] | None]:
        """Create the job; with ``stream``, return it from the stream's first event with the rest of the
        stream (as job states). The job is never lost: if anything fails once the create may have been
        applied, :meth:`recover` with the same spec finds it (where the API allows)."""

    async def recover(self, spec: S) -> J | None:
        """The job a ``start`` with this spec created, if the API can find it (else ``None``)."""

    async def get(self, ref: JobRef) -> J:
        """The job's current state."""

    async def poll(self, ref: JobRef) -> tuple[J, int | None]:
        """The job's current state and the server's polling hint in milliseconds, if it sent one."""

    async def cancel(self, ref: JobRef) -> J | None:
        """Ask the server to cancel; ``None`` when it answers that the job cannot be cancelled (ended)."""

    async def restream(self, ref: JobRef) -> Reader[J] | None:
        """A fresh stream of the job's states after the last event seen, for a stream that went silent
        (the caller lets the silent one go); ``None`` when the kind's streams cannot be resumed."""


class JobHooks(Protocol[J_contra]):
    """What the core reports, as it happens (logs, events, artifacts: see ``_recording``)."""

    def intent(self, kind: str, key: str, parent_id: str | None) -> None:
        """A create is about to be sent (recorded first, so a create whose answer is lost is found)."""

    def created(self, job: J_contra) -> None:
        """A job exists: its ids are logged and recorded at once."""

    def changed(self, change: StatusChange, job: J_contra) -> None:
        """The job's status changed."""

    def tick(self, elapsed: float) -> None:
        """Time passes while waiting (progress)."""

    def ended(self, job: J_contra, timeline: list[StatusChange], reason: str) -> None:
        """The job ended (or the core gave up on it): its final record."""
