"""What the emulator's world holds, listed as Keap lists it: REST v2 listings and XML-RPC DataService.query tables.

REST answers carry only properties of keap-core-v2-sdk 2.0.26's models (Tag, Campaign, Sequence, Goal,
CustomFieldMetaData), so a check that passes here uses nothing real Keap would not give: a goal's listing has
no integration or call name. XML-RPC tables and fields follow keap-xmlrpc-facts.md §9 (not a Keap page).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from keap_emulator.exceptions import KeapFault
from keap_emulator.world import World

MAX_ROWS = 1000  # DataService.query's and the REST listings' largest page


# ---------------------------------------------------------------------------------------------- REST v2


def _category_ids(world: World) -> dict[str, str]:
    # The world names tag categories; v2 refers to a category by id only (CategoryReference).
    names = dict.fromkeys(tag.category for tag in world.tags.values() if tag.category)
    return {name: str(i) for i, name in enumerate(names, start=1)}


def rest_tags(world: World, wanted: set[int] | None = None) -> list[dict[str, Any]]:
    """Tags in the Tag model: id, name, category {id}; `wanted` as `filter=tag_ids==1,2,3`."""
    categories = _category_ids(world)
    return [
        {
            "id": str(tag.id),
            "name": tag.name,
            **({"category": {"id": categories[tag.category]}} if tag.category else {}),
        }
        for tag in world.tags.values()
        if wanted is None or tag.id in wanted
    ]


def rest_campaigns(world: World) -> list[dict[str, Any]]:
    """Campaigns in the Campaign model (no sequences: v2 lists those per campaign)."""
    return [
        {"id": str(ident), "name": name, "locked": False, "published_status": True}
        for ident, name in sorted(world.campaigns.items())
    ]


def rest_sequences(world: World, campaign_id: int) -> list[dict[str, Any]]:
    """A campaign's sequences in the Sequence model: id and name."""
    return [{"id": str(s.id), "name": s.name} for s in world.sequences.values() if s.campaign == campaign_id]


def rest_goals(world: World, campaign_id: int) -> list[dict[str, Any]]:
    """A campaign's goals in the Goal model: id, name, type; never the integration or call name (v2 has none)."""
    return [
        {"id": str(g.id), "name": g.name, "type": "API", "next_sequence_ids": [], "previous_sequence_ids": []}
        for g in world.goals.values()
        if g.automation_id == campaign_id
    ]


# ---------------------------------------------------------------------------------------------- XML-RPC

# Table -> its readable fields (facts §9); a field with no value is left out of a row, as Keap does.
TABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "ContactGroup": ("Id", "GroupName", "GroupCategoryId", "GroupDescription"),
    "ContactGroupCategory": ("Id", "CategoryName", "CategoryDescription"),
    "ActionSequence": ("Id", "TemplateName", "VisibleToTheseUsers"),
    "Campaign": ("Id", "Name", "Status"),
    "CampaignStep": ("Id", "CampaignId", "StepStatus", "StepTitle", "TemplateId"),
    "DataFormField": ("Id", "FormId", "GroupId", "Name", "Label", "DataType", "DefaultValue", "Values", "ListRows"),
}


def _tables(world: World) -> dict[str, Callable[[], list[dict[str, Any]]]]:
    categories = _category_ids(world)
    return {
        "ContactGroup": lambda: [
            {"Id": t.id, "GroupName": t.name, "GroupCategoryId": int(categories.get(t.category, 0))}
            for t in world.tags.values()
        ],
        "ContactGroupCategory": lambda: [{"Id": int(i), "CategoryName": name} for name, i in categories.items()],
        "ActionSequence": lambda: [{"Id": a.id, "TemplateName": a.name} for a in world.action_sets.values()],
        # Legacy follow-up sequences, what ContactService.addToCampaign takes; the emulator gives them the ids
        # of its v2 sequences (UNVERIFIED on Keap that the two ids are the same).
        "Campaign": lambda: [{"Id": s.id, "Name": s.name, "Status": "Active"} for s in world.sequences.values()],
        "CampaignStep": lambda: [
            {"Id": step, "CampaignId": s.id, "StepStatus": "Active", "StepTitle": s.step_names.get(step, "")}
            for s in world.sequences.values()
            for step in s.steps
        ],
        # The contact's custom fields (FormId -1); Name is used as `_` + Name. DataType codes are left out:
        # the facts do not give them.
        "DataFormField": lambda: [
            {"Id": int(world.custom_field_ids[name]), "FormId": -1, "Name": name[1:], "Label": label}
            for name, label in world.custom_field_labels.items()
        ],
    }


def _matches(row: dict[str, Any], query: dict[str, Any]) -> bool:
    for key, want in query.items():
        have = row.get(key)
        if isinstance(want, str) and "%" in want:
            if not fnmatch.fnmatchcase(str(have or ""), want.replace("%", "*")):
                return False
        elif str(have) != str(want):
            return False
    return True


def data_query(
    model: Any, table: str, limit: int, page: int, query: dict[str, Any], selected: list[str]
) -> list[dict[str, Any]]:
    """DataService.query: a page (from 0) of at most `limit` (≤ 1000) rows matching `query`, `selected` fields."""
    tables = _tables(model.world)
    if table not in tables:
        raise KeapFault.of(9, f"No table found: {table}")
    if not 1 <= limit <= MAX_ROWS or page < 0:
        raise KeapFault.of(12, f"limit must be 1..{MAX_ROWS} and page at least 0")
    for name in [*query, *selected]:
        if name not in TABLE_FIELDS[table]:
            raise KeapFault.of(10, f"No field found: {table}.{name}")
    rows = tables[table]()
    found = [row for row in rows if _matches(row, query)]
    return [{k: row[k] for k in selected if k in row} for row in found[page * limit : (page + 1) * limit]]
