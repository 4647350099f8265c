"""The seeded world of the emulator (tags, campaigns, sequences, action sets, goals, custom fields): loading, checking.

The format is documented in README.md beside this file; `default_world.json` is the default world.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_WORLD_PATH = Path(__file__).with_name("default_world.json")

# Custom field types a world may declare; the model maps each to a coercion rule.
CUSTOM_FIELD_TYPES = frozenset({"string", "int", "double", "date"})

# Action types an action set may hold, and the keys each one needs.
ACTION_TYPES: dict[str, str] = {
    "apply_tags": "tags",
    "remove_tags": "tags",
    "start_sequence": "sequence",
    "stop_sequence": "sequence",
}


class WorldError(ValueError):
    """The world file is not in the documented format."""


@dataclass(frozen=True)
class Tag:
    id: int
    name: str
    category: str = ""


@dataclass(frozen=True)
class Sequence:
    id: int
    name: str
    steps: tuple[int, ...]
    step_names: dict[int, str] = field(default_factory=dict, compare=False)
    campaign: int | None = None  # the Campaign Builder campaign REST v2 addresses it through

    def step_after(self, step_id: int) -> int | None:
        """The step that follows `step_id`, or None when it was the last."""
        index = self.steps.index(step_id)
        return self.steps[index + 1] if index + 1 < len(self.steps) else None


@dataclass(frozen=True)
class Action:
    type: str
    tags: tuple[int, ...] = ()
    sequence: int | None = None


@dataclass(frozen=True)
class ActionSet:
    id: int
    name: str
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Goal:
    """An automation's API goal: achieving it (by integration + call name) runs its actions."""

    id: int
    automation_id: int
    integration: str
    call_name: str
    actions: tuple[Action, ...]
    name: str = ""


@dataclass(frozen=True)
class World:
    tags: dict[int, Tag]
    sequences: dict[int, Sequence]
    action_sets: dict[int, ActionSet]
    custom_fields: dict[str, str]
    contacts: tuple[dict[str, Any], ...] = ()
    source: dict[str, Any] = field(default_factory=dict, compare=False)
    goals: dict[int, Goal] = field(default_factory=dict)
    custom_field_ids: dict[str, str] = field(default_factory=dict)  # name -> REST v2 id
    custom_field_labels: dict[str, str] = field(default_factory=dict)  # name -> label shown in Keap
    campaigns: dict[int, str] = field(default_factory=dict)  # Campaign Builder campaign id -> name

    def goals_for(self, integration: str, call_name: str) -> list[Goal]:
        """The goals an (integration, call name) pair achieves, case-insensitively as Keap matches them."""
        key = (integration.lower(), call_name.lower())
        return [g for g in self.goals.values() if (g.integration.lower(), g.call_name.lower()) == key]

    def sequence_of_step(self, step_id: int) -> Sequence | None:
        """The sequence that owns `step_id`, if any."""
        for sequence in self.sequences.values():
            if step_id in sequence.steps:
                return sequence
        return None


def load_world(source: str | Path | dict[str, Any] | None = None) -> World:
    """Load a world from a JSON file path, an already-parsed dict, or the default world (None)."""
    if source is None:
        source = DEFAULT_WORLD_PATH
    if isinstance(source, dict):
        raw = source
    else:
        try:
            raw = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise WorldError(f"cannot read world file {source}: {exc}") from exc
    return _parse(raw)


def _ids(items: list[dict[str, Any]], what: str) -> None:
    seen: set[int] = set()
    for item in items:
        ident = item.get("id")
        if not isinstance(ident, int) or isinstance(ident, bool) or ident <= 0:
            raise WorldError(f"{what} needs a positive integer id: {item!r}")
        if ident in seen:
            raise WorldError(f"duplicate {what} id {ident}")
        seen.add(ident)


def _parse(raw: dict[str, Any]) -> World:
    if not isinstance(raw, dict) or raw.get("format") != 1:
        raise WorldError('a world is a JSON object with "format": 1')
    tag_items = raw.get("tags", [])
    seq_items = raw.get("sequences", [])
    set_items = raw.get("action_sets", [])
    _ids(tag_items, "tag")
    _ids(seq_items, "sequence")
    _ids(set_items, "action set")

    tags = {t["id"]: Tag(t["id"], str(t.get("name", "")), str(t.get("category", ""))) for t in tag_items}

    sequences: dict[int, Sequence] = {}
    all_steps: list[dict[str, Any]] = []
    for s in seq_items:
        steps = s.get("steps", [])
        if not steps:
            raise WorldError(f"sequence {s['id']} has no steps")
        all_steps.extend(steps)
        campaign = s.get("campaign")
        if campaign is not None and (not isinstance(campaign, int) or isinstance(campaign, bool) or campaign <= 0):
            raise WorldError(f"sequence {s['id']}: campaign must be a positive integer id")
        sequences[s["id"]] = Sequence(
            s["id"],
            str(s.get("name", "")),
            tuple(step["id"] for step in steps),
            {step["id"]: str(step.get("name", "")) for step in steps},
            campaign,
        )
    _ids(all_steps, "sequence step")

    def parse_actions(owner: str, items: list[dict[str, Any]]) -> tuple[Action, ...]:
        actions = []
        for act in items:
            kind = act.get("type")
            if kind not in ACTION_TYPES:
                raise WorldError(f"{owner}: unknown action type {kind!r}")
            if ACTION_TYPES[kind] == "tags":
                missing = [t for t in act.get("tags", []) if t not in tags]
                if missing or not act.get("tags"):
                    raise WorldError(f"{owner}: unknown or no tags {missing}")
                actions.append(Action(kind, tags=tuple(act["tags"])))
            else:
                if act.get("sequence") not in sequences:
                    raise WorldError(f"{owner}: unknown sequence {act.get('sequence')!r}")
                actions.append(Action(kind, sequence=act["sequence"]))
        return tuple(actions)

    action_sets: dict[int, ActionSet] = {}
    for a in set_items:
        action_sets[a["id"]] = ActionSet(
            a["id"], str(a.get("name", "")), parse_actions(f"action set {a['id']}", a.get("actions", []))
        )

    goal_items = raw.get("goals", [])
    _ids(goal_items, "goal")
    goals: dict[int, Goal] = {}
    for g in goal_items:
        texts = [g.get(key) for key in ("integration", "call_name")]
        if not all(isinstance(t, str) and t for t in texts):
            raise WorldError(f"goal {g['id']} needs an integration and a call_name")
        automation = g.get("automation_id", 1)
        if not isinstance(automation, int) or isinstance(automation, bool) or automation <= 0:
            raise WorldError(f"goal {g['id']}: automation_id must be a positive integer id")
        goals[g["id"]] = Goal(
            g["id"],
            automation,
            texts[0],
            texts[1],
            parse_actions(f"goal {g['id']}", g.get("actions", [])),
            str(g.get("name", "")),
        )

    campaign_items = raw.get("campaigns", [])
    _ids(campaign_items, "campaign")
    campaigns = {c["id"]: str(c.get("name", "")) for c in campaign_items}
    # A campaign named only by its sequences or goals still exists; it gets a name of its own.
    for ident in sorted(
        {s.campaign for s in sequences.values() if s.campaign} | {g.automation_id for g in goals.values()}
    ):
        campaigns.setdefault(ident, f"Campaign {ident}")

    custom_fields: dict[str, str] = {}
    custom_field_ids: dict[str, str] = {}
    custom_field_labels: dict[str, str] = {}
    for position, f in enumerate(raw.get("custom_fields", []), start=1):
        name, kind = f.get("name", ""), f.get("type", "string")
        if not isinstance(name, str) or not name.startswith("_") or len(name) < 2:
            raise WorldError(f"custom field names start with an underscore: {name!r}")
        if kind not in CUSTOM_FIELD_TYPES:
            raise WorldError(f"custom field {name}: type must be one of {sorted(CUSTOM_FIELD_TYPES)}")
        custom_fields[name] = kind
        # REST v2 knows custom fields by id; without one in the file, the position in the list is the id.
        custom_field_ids[name] = str(f.get("id", position))
        custom_field_labels[name] = str(f.get("label") or name[1:])
    if len(set(custom_field_ids.values())) != len(custom_field_ids):
        raise WorldError("custom field ids must be unique")

    contacts = raw.get("contacts", [])
    for c in contacts:
        if not isinstance(c, dict) or not isinstance(c.get("fields", {}), dict):
            raise WorldError(f"a seeded contact is an object with a 'fields' object: {c!r}")
    return World(
        tags,
        sequences,
        action_sets,
        custom_fields,
        tuple(contacts),
        raw,
        goals,
        custom_field_ids,
        custom_field_labels,
        campaigns,
    )
