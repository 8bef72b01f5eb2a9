"""The block catalog is clean: the collection brings exactly its two block types (no stray ``JobBlock[str]``
from the generic base) and the block pages' snippets load a saved block, never overwrite one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from prefect.client.orchestration import get_client

from prefect_openai_runs import OpenAIAssistantRun, OpenAICredentials

OUR_BLOCK_TYPES = ["openai-assistant-run", "openai-runs-credentials"]

LIST_REGISTERED = """
import json
import prefect_openai_runs
from prefect.blocks.core import Block
from prefect.utilities.dispatch import get_registry_for_type

registry = get_registry_for_type(Block) or {}
print(json.dumps(sorted(k for k, v in registry.items() if v.__module__.startswith("prefect_openai_runs"))))
"""


def test_importing_the_collection_registers_only_its_block_types() -> None:
    """What a Prefect server registers at startup is this registry (``_register_registry_blocks``)."""
    out = subprocess.run(
        [sys.executable, "-c", LIST_REGISTERED], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == OUR_BLOCK_TYPES


def test_prefect_server_catalog_has_no_generic_base(prefect_server: None) -> None:
    """``prefect block register -m prefect_openai_runs`` on a temporary Prefect server (which also loaded the
    collection through its entry point at startup) leaves no ``JobBlock[str]`` in the catalog."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    prefect_cli = Path(sys.executable).with_name("prefect")
    result = subprocess.run(
        [str(prefect_cli), "block", "register", "-m", "prefect_openai_runs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "JobBlock" not in result.stdout
    with get_client(sync_client=True) as prefect:
        types = {block_type.slug: block_type.name for block_type in prefect.read_block_types()}
    assert set(OUR_BLOCK_TYPES) <= set(types)
    assert "jobblock-str" not in types and "JobBlock[str]" not in types.values()


def test_block_pages_load_a_saved_block() -> None:
    for block_class in (OpenAICredentials, OpenAIAssistantRun):
        example = block_class.get_code_example() or ""
        assert '.load("BLOCK_NAME")' in example
        assert ".save(" not in example and "sk-" not in example
