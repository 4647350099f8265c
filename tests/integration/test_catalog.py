"""keap_relay_ops.catalog against the emulator over HTTP: what each API lists, one call per kind and page, cached,
and one-line errors when the app cannot be read."""

import socket

import pytest

from keap_relay_ops.catalog import Catalog, CatalogError, CatalogUnsupported

KEY = "catalog-key"


def env_of(emu, api):
    return {"KEAP_API": api, "KEAP_URL": emu.url, "KEAP_API_KEY": KEY}


@pytest.mark.parametrize("api", ["xmlrpc", "rest"])
def test_both_apis_list_the_same_world(emu, api):
    with Catalog.from_env(env=env_of(emu, api)) as catalog:
        assert catalog.api == api
        tags = catalog.tags()
        assert len(tags) == 30 and tags[101] == "Lead: webinar sign-up"
        assert catalog.legacy_sequences() == {11: "Welcome", 12: "Onboarding", 13: "Win-back"}
        assert catalog.sequences(5) == {11: "Welcome", 12: "Onboarding"}
        assert catalog.custom_fields()["_LeadSource"] == "Lead source"
        assert len(catalog.custom_fields()) == 5
        if api == "rest":
            assert catalog.campaigns() == {5: "New leads nurture", 6: "Re-engagement"}
            with pytest.raises(CatalogUnsupported, match="no action sets"):
                catalog.action_sets()
        else:
            assert catalog.campaigns() == {}
            assert catalog.action_sets() == {21: "New customer", 31: "Unsubscribe clean-up"}
        calls = catalog.calls
        catalog.tags(), catalog.sequences(5), catalog.custom_fields(), catalog.legacy_sequences()
        assert catalog.calls == calls  # cached
    assert len(emu.calls()) == calls
    assert all(
        c["method"].startswith(("rest.list", "rest.get", "rest.retrieve", "DataService.query")) for c in emu.calls()
    )


@pytest.mark.parametrize(("api", "method"), [("xmlrpc", "DataService.query"), ("rest", "rest.listTags")])
def test_pages_are_followed_one_call_each(emu, api, method):
    with Catalog.from_env(env=env_of(emu, api)) as full:
        everything = full.tags()
    emu.reset()
    with Catalog.from_env(env=env_of(emu, api)) as catalog:
        catalog.page_size = 7
        assert catalog.tags() == everything
        # 30 tags in pages of 7: 5 pages (XML-RPC stops at the short one; REST at the missing token).
        assert catalog.calls == 5
    assert [c["method"] for c in emu.calls()] == [method] * 5


def test_the_env_names_the_app_and_rest_url_wins(emu):
    env = {"KEAP_API": "rest", "KEAP_URL": "http://127.0.0.1:9/nowhere", "KEAP_REST_URL": emu.rest_url}
    with Catalog.from_env(env={**env, "KEAP_API_KEY": KEY}) as catalog:
        assert catalog.campaigns()[6] == "Re-engagement"


def test_no_key_is_a_one_line_error():
    with pytest.raises(CatalogError, match=r"^no Keap key: set KEAP_API_KEY"):
        Catalog.from_env(env={"KEAP_URL": "http://127.0.0.1:9"})


def test_unknown_api_is_refused(emu):
    with pytest.raises(CatalogError, match="KEAP_API must be one of"):
        Catalog.from_env("soap", env=env_of(emu, "xmlrpc"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("api", ["xmlrpc", "rest"])
def test_unreachable_keap_is_a_one_line_error(api):
    url = f"http://127.0.0.1:{_closed_port()}/crm/xmlrpc/v1"
    catalog = Catalog.from_env(env={"KEAP_API": api, "KEAP_URL": url, "KEAP_API_KEY": KEY})
    with catalog, pytest.raises(CatalogError, match=r"^could not list tags: ") as caught:
        catalog.tags()
    assert "\n" not in str(caught.value) and KEY not in str(caught.value)


def test_a_wrong_key_is_a_catalog_error_without_the_key(emu):
    catalog = Catalog.from_env(env={**env_of(emu, "rest"), "KEAP_API_KEY": "wrong-key"})
    with catalog, pytest.raises(CatalogError, match="could not list tags") as caught:
        catalog.tags()
    assert "wrong-key" not in str(caught.value)
