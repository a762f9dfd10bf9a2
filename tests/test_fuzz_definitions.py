"""Random definition files (wrong types, unknown fields, odd YAML) give DefinitionErrors naming the
file and, where one is at fault, the field; never another exception and never a hang."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentls.core.definitions import AgentDefinition, parse_definition_text

FIELDS = list(AgentDefinition.model_fields)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
documents = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), values, max_size=10)


def check(text: str, path: Path) -> None:
    definition, errors = parse_definition_text(text, path)
    if definition is None:
        assert errors, "refused without saying why"
    for error in errors:
        assert str(error).startswith(f"{path}:")
        assert error.line >= 1 and error.column >= 1
        if error.field is not None and error.field.split(".")[0] not in FIELDS:
            assert "unknown field" in error.message


@FUZZ
@given(documents)
def test_random_yaml_mappings_are_a_definition_or_errors_naming_file_and_field(
    data: dict[str, Any],
) -> None:
    check(yaml.safe_dump(data, allow_unicode=True), Path("agents/fuzz.yaml"))


@FUZZ
@given(documents, st.text(max_size=200))
def test_random_markdown_front_matter_is_handled(data: dict[str, Any], body: str) -> None:
    text = "---\n" + yaml.safe_dump(data, allow_unicode=True) + "---\n" + body
    check(text, Path("agents/fuzz.md"))


@FUZZ
@given(st.text(max_size=400))
def test_random_text_is_handled(text: str) -> None:
    check(text, Path("agents/fuzz.yaml"))


yaml_tokens = st.sampled_from(
    [
        "name:",
        "tools:",
        " ",
        "\n",
        "  ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a ",
        "*a",
        "*b",
        "&b ",
        "!!str ",
        "!!python/object ",
        "? ",
        ": ",
        "'",
        '"',
        "#",
        "---\n",
        "...\n",
        "<<: *a",
        "|",
        ">",
        "2024-13-45",
        "0x1F",
        ".inf",
        "~",
        "x",
    ]
)


@FUZZ
@given(st.lists(yaml_tokens, max_size=60).map("".join))
def test_random_yaml_token_soup_is_handled(text: str) -> None:
    check(text, Path("agents/soup.yaml"))
