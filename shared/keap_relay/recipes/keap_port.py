"""The narrow Keap port the sequence runner talks to, and its XML-RPC ContactService implementation."""

from __future__ import annotations

from typing import Any, Protocol

from ..keap import ContactService


class KeapPort(Protocol):
    """What a sequence needs from Keap; an XML-RPC or a REST v2 client can implement it."""

    call_names: dict[str, str]

    def upsert_contact(self, fields: dict[str, Any], dup_check: str) -> int: ...
    def find_contacts(self, email: str) -> list[int]: ...
    def update_contact(self, contact_id: int, fields: dict[str, Any]) -> int: ...
    def apply_tag(self, contact_id: int, tag_id: int) -> Any: ...
    def remove_tag(self, contact_id: int, tag_id: int) -> Any: ...
    def start_sequence(self, contact_id: int, sequence_id: int) -> Any: ...
    def stop_sequence(self, contact_id: int, sequence_id: int) -> Any: ...
    def pause_sequence(self, contact_id: int, sequence_id: int) -> Any: ...
    def run_action_set(self, contact_id: int, action_set_id: int) -> Any: ...


class ContactServicePort:
    """KeapPort over the XML-RPC ContactService client."""

    # port operation -> the ContactService method it makes (reported in run results)
    call_names: dict[str, str] = {
        "upsert_contact": "ContactService.addWithDupCheck",
        "find_contacts": "ContactService.findByEmail",
        "update_contact": "ContactService.update",
        "apply_tag": "ContactService.addToGroup",
        "remove_tag": "ContactService.removeFromGroup",
        "start_sequence": "ContactService.addToCampaign",
        "stop_sequence": "ContactService.removeFromCampaign",
        "pause_sequence": "ContactService.pauseCampaign",
        "run_action_set": "ContactService.runActionSequence",
    }

    def __init__(self, client: ContactService) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"ContactServicePort({self.client!r})"

    def upsert_contact(self, fields: dict[str, Any], dup_check: str) -> int:
        return self.client.add_with_dup_check(fields, dup_check)

    def find_contacts(self, email: str) -> list[int]:
        return [int(row["Id"]) for row in self.client.find_by_email(email, ["Id"])]

    def update_contact(self, contact_id: int, fields: dict[str, Any]) -> int:
        return self.client.update(contact_id, fields)

    def apply_tag(self, contact_id: int, tag_id: int) -> Any:
        return self.client.add_to_group(contact_id, tag_id)

    def remove_tag(self, contact_id: int, tag_id: int) -> Any:
        return self.client.remove_from_group(contact_id, tag_id)

    def start_sequence(self, contact_id: int, sequence_id: int) -> Any:
        return self.client.add_to_campaign(contact_id, sequence_id)

    def stop_sequence(self, contact_id: int, sequence_id: int) -> Any:
        return self.client.remove_from_campaign(contact_id, sequence_id)

    def pause_sequence(self, contact_id: int, sequence_id: int) -> Any:
        return self.client.pause_campaign(contact_id, sequence_id)

    def run_action_set(self, contact_id: int, action_set_id: int) -> Any:
        return self.client.run_action_sequence(contact_id, action_set_id)
