"""The run status enumeration and its helpers."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

UNKNOWN = "UNKNOWN"
"""The member name of a status value this library has never seen."""

StrEnumT = TypeVar("StrEnumT", bound="Enum")


def unknown_member(cls: type[StrEnumT], value: object) -> StrEnumT | None:
    """A pseudo-member of the ``str`` enum ``cls`` for a value it does not list (named ``UNKNOWN``).

    Used as an enum's ``_missing_`` so that a status added by a newer server parses instead of failing.

    Args:
        cls: The enum class (a ``str`` subclass).
        value: The value the server sent.

    Returns:
        The pseudo-member, or ``None`` (so the enum raises) for a value that is not a string.
    """
    if not isinstance(value, str):
        return None
    pseudo = str.__new__(cls, value)  # type: ignore[type-var]
    pseudo._name_ = UNKNOWN
    pseudo._value_ = value
    return pseudo


class RunStatus(str, Enum):
    """The status of a run, as the API reports it.

    Forward compatible: a value this library has never seen parses into a pseudo-member (named
    ``UNKNOWN``) that counts as *active*, never as terminal, so a pipeline keeps following the run
    instead of crashing or giving up on it.

    Example:
        ```python
        RunStatus("completed").is_terminal  # True
        RunStatus("thinking_hard").is_active  # True: unknown, still followed
        ```
    """

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"

    @classmethod
    def _missing_(cls, value: object) -> RunStatus | None:
        return unknown_member(cls, value)

    @property
    def is_known(self) -> bool:
        """Whether the status is one of the nine the spec lists."""
        return self._name_ != UNKNOWN

    @property
    def is_terminal(self) -> bool:
        """Whether the run can no longer change: cancelled, failed, completed, incomplete or expired."""
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Whether the run may still spend tokens or change (every non-terminal status, unknown ones too)."""
        return not self.is_terminal

    @property
    def needs_action(self) -> bool:
        """Whether the run waits for tool outputs from the caller."""
        return self is RunStatus.REQUIRES_ACTION

    def __str__(self) -> str:
        return str(self.value)


TERMINAL_STATUSES: frozenset[RunStatus] = frozenset(
    {
        RunStatus.CANCELLED,
        RunStatus.FAILED,
        RunStatus.COMPLETED,
        RunStatus.INCOMPLETE,
        RunStatus.EXPIRED,
    }
)
"""Statuses a run never leaves."""
