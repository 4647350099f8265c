"""What one Keap app holds (tags, campaigns, sequences, action sets, custom fields), read with listing calls only.

One call per kind of thing and page, plus one per campaign whose sequences are asked for; never one call per
id, never a write. REST v2 lists through `GET /rest/v2/...` (keap-rest-v2-facts.md, end), XML-RPC through
`DataService.query` (keap-xmlrpc-facts.md §9). Legacy follow-up sequences (what `campaigns:` names) exist only
on XML-RPC, and campaigns with their v2 sequences only on REST v2: those two are read over the API that has
them, whichever API the catalog was made for, with the same key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from keap_relay.keap.client import ContactService
from keap_relay.keap.defaults import DEFAULT_URL
from keap_relay.keap.errors import KeapError
from keap_relay.keap.rest import RestClient, rest_base_url
from keap_relay.keap.session import ClientOptions
from keap_relay.routing.routes import KEAP_APIS

__all__ = ["Catalog", "CatalogError", "CatalogUnsupported"]

PAGE_SIZE = 1000  # the largest page both APIs give
MAX_PAGES = 1000  # a bound on a listing that never ends (a token that repeats)


class CatalogError(Exception):
    """The app could not be read (no key, Keap unreachable or refusing); the message is one line."""


class CatalogUnsupported(CatalogError):
    """The chosen API has no listing for this kind of thing."""


def _int_key(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


class Catalog:
    """What one Keap app holds, read with listing calls only; never one call per id; never writes.

    Results are cached per instance. `calls` counts the Keap calls made (one per page).
    """

    def __init__(
        self,
        api: str,
        *,
        contact_service: ContactService | None = None,
        rest: RestClient | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if api not in KEAP_APIS:
            raise CatalogError(f"KEAP_API must be one of {', '.join(KEAP_APIS)}, not {api!r}")
        self.api = api
        self.calls = 0
        self.page_size = page_size
        self._xmlrpc = contact_service
        self._rest = rest
        self._cache: dict[Any, Any] = {}

    @classmethod
    def from_env(cls, api: str | None = None, env: Mapping[str, str] | None = None) -> Catalog:
        """A catalog of the app named by KEAP_URL / KEAP_REST_URL / KEAP_API_KEY, as the functions read them.

        `api` defaults to KEAP_API, else the functions' default. Raises CatalogError when there is no key.
        """
        env = os.environ if env is None else env
        api = api or env.get("KEAP_API") or KEAP_APIS[0]
        key = (env.get("KEAP_API_KEY") or "").strip()
        if not key:
            raise CatalogError("no Keap key: set KEAP_API_KEY (the key the functions use)")
        keap_url = env.get("KEAP_URL") or None
        # Listings are reads: fail fast rather than wait through the functions' four attempts.
        options = ClientOptions(max_attempts=2)
        try:
            return cls(
                api,
                contact_service=ContactService(keap_url or DEFAULT_URL, key, options=options),
                rest=RestClient(env.get("KEAP_REST_URL") or rest_base_url(keap_url), key, options=options),
            )
        except KeapError as err:
            raise CatalogError(f"cannot talk to Keap: {err}") from None

    def close(self) -> None:
        for client in (self._xmlrpc, self._rest):
            if client is not None:
                client.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------- what callers ask

    def tags(self) -> dict[int, str]:
        """Tag id -> name."""
        if self.api == "rest":
            return self._cached("tags", lambda: self._rest_listing("/tags", "rest.listTags", "tags", "name"))
        return self._cached("tags", lambda: self._table("tags", "ContactGroup", "GroupName"))

    def campaigns(self) -> dict[int, str]:
        """Campaign Builder campaign id -> name (REST v2 only: on an XML-RPC catalog, {})."""
        if self.api != "rest":
            return {}
        return self._cached(
            "campaigns", lambda: self._rest_listing("/campaigns", "rest.listCampaigns", "campaigns", "name")
        )

    def sequences(self, campaign_id: int) -> dict[int, str]:
        """A campaign's v2 sequences, id -> name (read over REST v2, the only API that lists them)."""
        path = f"/campaigns/{int(campaign_id)}/sequences"
        return self._cached(
            ("sequences", int(campaign_id)),
            lambda: self._rest_listing(path, "rest.getCampaignSequences", "sequences", "name"),
        )

    def legacy_sequences(self) -> dict[int, str]:
        """Legacy follow-up sequences (what ContactService.addToCampaign takes), id -> name, over XML-RPC."""
        return self._cached("legacy_sequences", lambda: self._table("legacy sequences", "Campaign", "Name"))

    def action_sets(self) -> dict[int, str]:
        """Action set id -> name; REST v2 has no action sets (CatalogUnsupported)."""
        if self.api == "rest":
            raise CatalogUnsupported("REST v2 has no action sets to list (KEAP_API=rest runs goals instead)")
        return self._cached("action_sets", lambda: self._table("action sets", "ActionSequence", "TemplateName"))

    def custom_fields(self) -> dict[str, str]:
        """Custom field as routes name it (`_LeadSource`) -> its label."""
        if self.api == "rest":
            return self._cached("custom_fields", self._rest_custom_fields)
        return self._cached("custom_fields", self._xmlrpc_custom_fields)

    # ---------------------------------------------------------------- how they are read

    def _cached(self, key: Any, read: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = read()
        return dict(self._cache[key])

    def _call(self, what: str, send: Callable[[], Any]) -> Any:
        self.calls += 1
        try:
            return send()
        except KeapError as err:
            raise CatalogError(f"could not list {what}: {err}") from None

    def _rest_client(self) -> RestClient:
        if self._rest is None:
            raise CatalogUnsupported("this catalog has no REST v2 client")
        return self._rest

    def _rest_pages(self, path: str, operation: str, key: str) -> Iterator[dict[str, Any]]:
        client, token = self._rest_client(), None
        seen: set[str | None] = set()
        for _ in range(MAX_PAGES):
            query = {"page_size": self.page_size, "page_token": token}
            page = self._call(key, lambda query=query: client.request("GET", path, operation, query=query))
            if not isinstance(page, dict):
                raise CatalogError(f"could not list {key}: Keap's answer is not a JSON object")
            items = [item for item in page.get(key) or [] if isinstance(item, dict)]
            yield from items
            # An empty page or a token seen before ends it too: some APIs hand a token out on the last page.
            seen.add(token)
            token = page.get("next_page_token") or None
            if not token or not items or token in seen:
                return

    def _rest_listing(self, path: str, operation: str, key: str, name: str) -> dict[int, str]:
        found = {_int_key(item.get("id")): str(item.get(name) or "") for item in self._rest_pages(path, operation, key)}
        return {ident: label for ident, label in found.items() if ident is not None}

    def _rest_custom_fields(self) -> dict[str, str]:
        model = self._call(
            "custom fields", lambda: self._rest_client().request("GET", "/contacts/model", "rest.retrieveContactModel")
        )
        out: dict[str, str] = {}
        for meta in (model or {}).get("custom_fields") or []:
            # field_name is the database name XML-RPC and the routes file prefix with `_`.
            name = meta.get("field_name") or meta.get("label") if isinstance(meta, dict) else None
            if name:
                out["_" + str(name).lstrip("_")] = str(meta.get("label") or name)
        return out

    def _rows(
        self, what: str, table: str, fields: list[str], query: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        if self._xmlrpc is None:
            raise CatalogUnsupported("this catalog has no XML-RPC client")
        client = self._xmlrpc
        for page in range(MAX_PAGES):
            rows = self._call(
                what,
                lambda page=page: client.call("DataService.query", table, self.page_size, page, query or {}, fields),
            )
            if not isinstance(rows, list):
                raise CatalogError(f"could not list {what}: Keap's answer is not a list of rows")
            yield from (row for row in rows if isinstance(row, dict))
            if len(rows) < self.page_size:
                return

    def _table(self, what: str, table: str, name: str) -> dict[int, str]:
        rows = self._rows(what, table, ["Id", name])
        found = {_int_key(row.get("Id")): str(row.get(name) or "") for row in rows}
        return {ident: label for ident, label in found.items() if ident is not None}

    def _xmlrpc_custom_fields(self) -> dict[str, str]:
        rows = self._rows("custom fields", "DataFormField", ["Id", "Name", "Label"], {"FormId": -1})
        return {"_" + str(row["Name"]): str(row.get("Label") or row["Name"]) for row in rows if row.get("Name")}
