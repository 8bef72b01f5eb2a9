"""The Batch API as the core's adapter: creating a batch without ever losing it (idempotency key in its
metadata), finding it again by paging ``GET /batches``, reading, polling and cancelling it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prefect_openai_runs._lifecycle._async._backend import Reader
from prefect_openai_runs._lifecycle._batch_kind import BATCH, BatchKind
from prefect_openai_runs._lifecycle._kinds import JobRef
from prefect_openai_runs.client import AsyncBatchesClient
from prefect_openai_runs.exceptions import BatchNotCancellableError
from prefect_openai_runs.models import Batch, CreateBatchParams


@dataclass(frozen=True)
class BatchSpec:
    """What starting a batch takes.

    Attributes:
        params: The create-batch parameters (the input file is already uploaded).
        key: The idempotency key (derived from the logical call, so a Prefect retry finds its batch).
        not_before: When known (a retry, from the earlier attempt's intent): how far back :meth:`recover`
            looks (Unix seconds); else among the last hour's batches.
    """

    params: CreateBatchParams
    key: str
    not_before: float | None = None


class AsyncBatchesApi:
    """The Batch API for the lifecycle core, over an :class:`~prefect_openai_runs.client.AsyncBatchesClient`.

    Args:
        client: The client.
        on_poll: Called with every batch state polled (request counts move between status changes).
    """

    kind: BatchKind = BATCH

    def __init__(self, client: AsyncBatchesClient, on_poll: Callable[[Batch], None] | None = None) -> None:
        self.client = client
        self.on_poll = on_poll

    async def start(self, spec: BatchSpec, stream: bool = False) -> tuple[Batch, Reader[Batch] | None]:
        """Create the batch tagged with the spec's key (batches have no stream: ``stream`` is ignored)."""
        return await self.client.create_batch(spec.params, idempotency_key=spec.key), None

    async def recover(self, spec: BatchSpec) -> Batch | None:
        """The batch created with the spec's key, if any (paging ``GET /batches``)."""
        return await self.client.find_batch(spec.key, not_before=spec.not_before)

    async def get(self, ref: JobRef) -> Batch:
        """Retrieve the batch."""
        return await self.client.get_batch(ref.id)

    async def poll(self, ref: JobRef) -> tuple[Batch, int | None]:
        """Retrieve the batch with the server's polling hint."""
        batch, hint = await self.client.poll_batch(ref.id)
        if self.on_poll is not None:
            self.on_poll(batch)
        return batch, hint

    async def cancel(self, ref: JobRef) -> Batch | None:
        """Cancel the batch; ``None`` when the API answers that it cannot (already cancelling or ended)."""
        try:
            return await self.client.cancel_batch(ref.id)
        except BatchNotCancellableError:
            return None

    async def restream(self, ref: JobRef) -> Reader[Batch] | None:
        """``None``: a batch has no stream."""
        return None
