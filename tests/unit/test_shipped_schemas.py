"""The JSON Schemas shipped in the layer are valid Draft 2020-12 schemas.

The functions build their validators without checking the schemas against the metaschema (that check is
~20 ms of a worker's cold start), so this test is where a broken schema is caught.
"""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

PACKAGE = Path(__file__).resolve().parents[2] / "shared" / "keap_relay"
SHIPPED = sorted(PACKAGE.rglob("*.schema.json"))


def test_every_schema_the_functions_load_is_among_those_checked():
    names = {path.relative_to(PACKAGE).as_posix() for path in SHIPPED}
    assert names >= {
        "events/schemas/event.schema.json",
        "events/schemas/form_submission.schema.json",
        "events/schemas/purchase.schema.json",
        "events/schemas/unsubscribe.schema.json",
        "routing/routes.schema.json",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_shipped_schema_is_valid_against_the_2020_12_metaschema(path):
    schema = json.loads(path.read_text("utf-8"))
    assert schema.get("$schema", "https://json-schema.org/draft/2020-12/schema").endswith("/2020-12/schema")
    Draft202012Validator.check_schema(schema)
