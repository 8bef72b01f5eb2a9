"""Keys never leak, even malformed ones, and errors are short and helpful, over real HTTP to the emulator.

A key pasted with a trailing newline works; one with a control character inside is refused before any
request, without the key in the message; no piece of the key (8 characters or more) reaches an exception's
text, its repr, its chained causes or a log record; a wrong key, a wrong id, a closed port and a base URL
without ``/v1`` each give one line that says what to fix.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from prefect import flow

from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs._secrets import mask_secrets, secret_values
from prefect_openai_runs.blocks import API_KEY_ENV
from prefect_openai_runs.client import RunsClient
from prefect_openai_runs.client._http import Call, transport_error
from prefect_openai_runs.exceptions import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    OpenAIRunsError,
    StreamError,
)
from prefect_openai_runs.flows import run_assistant
from prefect_openai_runs.retry import RetryPolicy
from prefect_openai_runs.tasks import create_thread_and_run
from prefect_openai_runs.testing import FaultRule, RunsEmulator

NO_RETRIES = RetryPolicy(max_attempts=1)


def pieces(secret: str, size: int = 8) -> set[str]:
    """Every piece of ``secret`` of ``size`` characters: none may appear anywhere."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def exception_texts(exc: BaseException) -> Iterator[str]:
    """The str and repr of ``exc`` and of every exception chained to it (causes and contexts)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        pending += [current.__cause__, current.__context__]


def leaked(secret: str, texts: Iterator[str] | list[str]) -> list[str]:
    found = pieces(secret)
    return [text for text in texts if any(piece in text for piece in found)]


def make_client(emu: RunsEmulator, **options: object) -> RunsClient:
    settings: dict[str, object] = {
        "api_key": emu.api_key,
        "base_url": emu.base_url,
        "timeout": 5.0,
        "retry_policy": NO_RETRIES,
    }
    settings.update(options)
    return RunsClient(**settings)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- malformed keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["\n", "\r\n", "  ", "\t"])
def test_key_with_surrounding_whitespace_works(runs_emulator: RunsEmulator, padding: str) -> None:
    with make_client(runs_emulator, api_key=runs_emulator.api_key + padding) as client:
        assert client.create_thread().id.startswith("thread_")


def test_block_key_with_trailing_newline_works(runs_emulator: RunsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    block = OpenAICredentials(api_key=runs_emulator.api_key + "\n", base_url=runs_emulator.base_url)
    with block.get_client() as client:
        assert client.create_thread().id.startswith("thread_")
    monkeypatch.setenv(API_KEY_ENV, runs_emulator.api_key + "\n")
    with OpenAICredentials(base_url=runs_emulator.base_url).get_client() as client:
        assert client.create_thread().id.startswith("thread_")


@pytest.mark.parametrize("inside", ["\n", "\x00", "é"])
def test_key_with_control_character_inside_is_refused_clearly(runs_emulator: RunsEmulator, inside: str) -> None:
    key = runs_emulator.api_key[:10] + inside + runs_emulator.api_key[10:]
    with pytest.raises(ValueError, match=r"the API key has .* at position 11") as info:
        make_client(runs_emulator, api_key=key)
    assert not leaked(key, list(exception_texts(info.value)))
    assert runs_emulator.requests == []


def test_header_value_with_newline_inside_is_refused_clearly(runs_emulator: RunsEmulator) -> None:
    secret = "azure-header-secret-9f8e7d"
    with pytest.raises(ValueError, match="header 'api-key'") as info:
        make_client(runs_emulator, default_headers={"api-key": secret[:12] + "\n" + secret[12:]})
    assert not leaked(secret, list(exception_texts(info.value)))


# -- no piece of the key anywhere -------------------------------------------------------------------------


def test_server_echoing_a_piece_of_the_key_is_masked(
    runs_emulator: RunsEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    key = runs_emulator.api_key
    echo = f"Header rejected near '{key[5:17]}' and '{key[-9:]}'"
    runs_emulator.add_fault(
        FaultRule(path=r"^/v1/threads$", status=400, body={"error": {"message": echo, "type": "x", "code": None}})
    )
    caplog.set_level(logging.DEBUG)
    with make_client(runs_emulator) as client, pytest.raises(BadRequestError) as info:
        client.create_thread()
    logging.getLogger("prefect_openai_runs").exception("create failed", exc_info=info.value)
    assert "Header rejected near" in str(info.value)
    assert not leaked(key, list(exception_texts(info.value)))
    assert not leaked(key, [record.getMessage() for record in caplog.records] + [caplog.text])


def test_transport_error_text_and_chain_are_masked() -> None:
    """What h11 and httpcore say of an illegal header holds the key: ours and the chained ones must not."""
    key = "sk-proj-Zx81Lq0aPw55Tr7YmN2cV"
    inner = ValueError(f"Illegal header value b'Bearer {key[:20]}\\x00{key[20:]}'")
    try:
        try:
            raise inner
        except ValueError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
    except httpx.LocalProtocolError as exc:
        ours = transport_error(exc, Call("POST", "/threads"), secret_values(key))
        try:
            raise ours from exc  # what the clients do
        except APIConnectionError as raised:
            caught: BaseException = raised
    assert "POST /threads" in str(caught)
    assert not leaked(key[:20], list(exception_texts(caught)))


def test_mask_secrets_masks_every_piece_of_eight() -> None:
    key = "sk-emu-7Hq2Lx9KpV4mZ8rT"
    text = f"a {key[2:10]} b {key[9:]} c {key[:7]} d"
    masked = mask_secrets(text, secret_values(key))
    assert masked == f"a *** b *** c {key[:7]} d"


def test_stream_error_event_text_is_masked(runs_emulator: RunsEmulator) -> None:
    key = runs_emulator.api_key
    event = f'event: error\ndata: {{"message": "bad auth near {key[4:16]}"}}\n\n'
    runs_emulator.add_fault(FaultRule(kind="cut_stream", path=r"/runs$", after_events=0, raw_body=event))
    with make_client(runs_emulator) as client:
        thread = client.create_thread()
        with pytest.raises(StreamError) as info:
            list(client.stream_run(thread.id, assistant_id=runs_emulator.default_assistant_id))
    assert not leaked(key, list(exception_texts(info.value)))


# -- short, helpful errors --------------------------------------------------------------------------------


def test_wrong_key_is_one_line_with_request_id(runs_emulator: RunsEmulator) -> None:
    with (
        make_client(runs_emulator, api_key="sk-wrong-Q8vN3bX5tY7uI9oP") as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.create_thread()
    text = str(info.value)
    assert "\n" not in text and info.value.request_id and info.value.request_id in text
    assert "Incorrect API key provided" in text
    assert not leaked("sk-wrong-Q8vN3bX5tY7uI9oP", [text, repr(info.value)])


def test_wrong_assistant_id_is_one_line_with_request_id(runs_emulator: RunsEmulator) -> None:
    with make_client(runs_emulator) as client, pytest.raises(NotFoundError) as info:
        client.create_run(client.create_thread().id, assistant_id="asst_does_not_exist")
    text = str(info.value)
    assert "\n" not in text and info.value.request_id and info.value.request_id in text
    assert "asst_does_not_exist" in text


def test_api_error_chains_no_http_library_exception(runs_emulator: RunsEmulator) -> None:
    with (
        make_client(runs_emulator, api_key="sk-wrong-Q8vN3bX5tY7uI9oP") as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.create_thread()
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_connection_refused_names_the_host_and_hints(runs_emulator: RunsEmulator) -> None:
    port = closed_port()
    with (
        make_client(runs_emulator, base_url=f"http://127.0.0.1:{port}/v1") as client,
        pytest.raises(APIConnectionError) as info,
    ):
        client.create_thread()
    text = str(info.value)
    assert f"could not connect to 127.0.0.1:{port} (connection refused): is base_url right?" in text
    assert "\n" not in text
    cause = info.value.__cause__
    assert cause is None or (cause.__cause__ is None and cause.__context__ is None)


def test_base_url_without_v1_gets_a_hint(runs_emulator: RunsEmulator) -> None:
    base = runs_emulator.base_url.removesuffix("/v1")
    with make_client(runs_emulator, base_url=base) as client, pytest.raises(NotFoundError) as info:
        client.create_thread()
    text = str(info.value)
    assert "does base_url end in /v1?" in text and f"{base}/threads" in text
    assert "\n" not in text


def test_html_404_gets_a_hint_and_no_markup(runs_emulator: RunsEmulator) -> None:
    page = "<html>\n<head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1></body>\n</html>"
    runs_emulator.add_fault(
        FaultRule(path=r"^/v1/threads$", status=404, raw_body=page, headers={"content-type": "text/html"})
    )
    with make_client(runs_emulator) as client, pytest.raises(OpenAIRunsError) as info:
        client.create_thread()
    text = str(info.value)
    assert "does base_url end in /v1?" in text and "HTML page" in text
    assert "<" not in text and "\n" not in text


def _refused_by_client(credentials: OpenAICredentials) -> None:
    with credentials.get_client() as client:
        client.create_thread_and_run(
            assistant_id="asst_does_not_exist", thread={"messages": [{"role": "user", "content": "hi"}]}
        )


def _refused_in_run_assistant(credentials: OpenAICredentials) -> None:
    run_assistant(credentials, "asst_does_not_exist", messages=["hi"], max_wait_seconds=10)


def _refused_in_the_task(credentials: OpenAICredentials) -> None:
    @flow
    def pipeline() -> None:
        create_thread_and_run(credentials, "asst_does_not_exist", ["hi"])

    pipeline()


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize(
    "call", [_refused_by_client, _refused_in_run_assistant, _refused_in_the_task], ids=["client", "flow", "task"]
)
def test_a_wrong_assistant_id_leaves_no_empty_thread(
    runs_emulator: RunsEmulator, credentials: OpenAICredentials, call: Callable[[OpenAICredentials], None]
) -> None:
    """The run goes on a new empty thread; when the server refuses the run, that thread is deleted."""
    with pytest.raises(NotFoundError, match="asst_does_not_exist"):
        call(credentials)

    assert runs_emulator.counters.get("threads_created") == 1
    assert runs_emulator.counters.get("threads_deleted") == 1
    assert not runs_emulator.runs()
