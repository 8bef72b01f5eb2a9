"""The block catalog is clean: the collection brings exactly its two block types (no stray ``JobBlock[str]``
from the generic base) and the block pages' snippets load a saved block, never overwrite one."""

from __future__ import annotations

import json
import subprocess
import sys

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
    """The temporary Prefect server loaded the collection (entry point) and lists no ``JobBlock[str]``."""
    with get_client(sync_client=True) as prefect:
        for block_class in (OpenAICredentials, OpenAIAssistantRun):
            block_class.register_type_and_schema(client=prefect)  # type: ignore[call-arg]
        types = {block_type.slug: block_type.name for block_type in prefect.read_block_types()}
    assert set(OUR_BLOCK_TYPES) <= set(types)
    assert "jobblock-str" not in types and "JobBlock[str]" not in types.values()


def test_block_pages_load_a_saved_block() -> None:
    for block_class in (OpenAICredentials, OpenAIAssistantRun):
        example = block_class.get_code_example() or ""
        assert '.load("BLOCK_NAME")' in example
        assert ".save(" not in example and "sk-" not in example
