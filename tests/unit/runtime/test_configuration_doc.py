"""docs/configuration.md lists every flag, exactly as the settings classes declare them."""

from __future__ import annotations

import pathlib

from controller.config import flag_specs, flags_table

DOC = pathlib.Path(__file__).parents[3] / "docs" / "configuration.md"


def test_the_doc_embeds_the_current_flags_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    embedded = text.split("<!-- flags:begin -->\n", 1)[1].split("\n<!-- flags:end -->", 1)[0]
    assert embedded == flags_table(), "regenerate the table in docs/configuration.md"
    for spec in flag_specs():
        assert f"`{spec.flag}`" in embedded
        assert f"`{spec.env}`" in embedded
