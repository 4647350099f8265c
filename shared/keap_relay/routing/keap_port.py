"""The narrow Keap port the sequence runner talks to, over XML-RPC (ContactService) or REST v2."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..keap.client import ContactService
from ..keap.errors import KeapUnsupportedOperation
from ..keap.rest import RestClient, outcome_error, rest_base_url, tag_ids_of
from ..keap.session import ClientOptions
from ..keap.throttle import RateLimiter
from .runner import Upserted

# How an upsert answer tells one kind of thing the contact holds: (the API's property, its reader -> ids, or
# None when the answer leaves it out).
HeldReader = tuple[str, Callable[[dict[str, Any]], frozenset[int] | None]]

# A many-contacts operation: (contact ids, the operation's args) -> contact id -> Keap's outcome for it.
ManyContacts = Callable[..., dict[int, str]]


class KeapPort(Protocol):
    """What a sequence needs from Keap; an XML-RPC or a REST v2 client can implement it."""

    call_names: dict[str, str]
    # What the upsert's own answer tells of what the contact holds: kind (a key of Upserted.held) -> how it is
    # read. The runner skips applying what the contact holds; a kind not listed is unknown, nothing skipped.
    upsert_tells: dict[str, HeldReader]

    def expect_calls(self, calls: int) -> None: ...
    def book_calls(self, calls: int) -> None: ...
    def many_contacts(self) -> dict[str, ManyContacts]: ...
    def upsert_contact(self, fields: dict[str, Any], dup_check: str) -> Upserted: ...
    def find_contacts(self, email: str) -> list[int]: ...
    def update_contact(self, contact_id: int, fields: dict[str, Any]) -> int: ...
    def apply_tag(self, contact_id: int, tag_id: int) -> Any: ...
    def remove_tag(self, contact_id: int, tag_id: int) -> Any: ...
    def start_sequence(self, contact_id: int, sequence_id: int, campaign_id: int | None = None) -> Any: ...
    def stop_sequence(self, contact_id: int, sequence_id: int, campaign_id: int | None = None) -> Any: ...
    def pause_sequence(self, contact_id: int, sequence_id: int) -> Any: ...
    def run_action_set(self, contact_id: int, action_set_id: int) -> Any: ...
    def achieve_goal(self, contact_id: int, integration: str, call_name: str) -> Any: ...
    def opt_out(self, contact_id: int, email: str, reason: str) -> Any: ...


class _ClientPort:
    """What both ports share: the client they drive, and the rate limiter's hint."""

    def __init__(self, client: ContactService | RestClient) -> None:
        self.client = client

    def book_calls(self, calls: int) -> None:
        """Book the next `calls` with the rate limiter now, where it can (a budget shared in DynamoDB), so that
        the booking's round trip runs alongside other work instead of before the first call."""
        limiter = self.client.rate_limiter
        if limiter is None:
            return
        book = getattr(limiter, "book", None)
        if book is not None:
            book(calls)
        else:
            limiter.expect(calls)

    def many_contacts(self) -> dict[str, ManyContacts]:
        """Port operation -> its many-contacts form, for the operations this API can apply to many at once."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client!r})"

    def expect_calls(self, calls: int) -> None:
        """Tell the rate limiter how many calls follow: a budget shared in DynamoDB books them in one write."""
        if self.client.rate_limiter is not None:
            self.client.rate_limiter.expect(calls)


class ContactServicePort(_ClientPort):
    """KeapPort over the XML-RPC ContactService client (goals via FunnelService, opt-out via APIEmailService)."""

    client: ContactService

    # port operation -> the XML-RPC method it makes (reported in run results)
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
        "achieve_goal": "FunnelService.achieveGoal",
        "opt_out": "APIEmailService.optOut",
    }
    # addWithDupCheck answers the contact's id alone: nothing it holds is known, so nothing is skipped.
    upsert_tells: dict[str, HeldReader] = {}

    def upsert_contact(self, fields: dict[str, Any], dup_check: str) -> Upserted:
        return Upserted(self.client.add_with_dup_check(fields, dup_check))

    def find_contacts(self, email: str) -> list[int]:
        return [int(row["Id"]) for row in self.client.find_by_email(email, ["Id"])]

    def update_contact(self, contact_id: int, fields: dict[str, Any]) -> int:
        return self.client.update(contact_id, fields)

    def apply_tag(self, contact_id: int, tag_id: int) -> Any:
        return self.client.add_to_group(contact_id, tag_id)

    def remove_tag(self, contact_id: int, tag_id: int) -> Any:
        return self.client.remove_from_group(contact_id, tag_id)

    def start_sequence(self, contact_id: int, sequence_id: int, campaign_id: int | None = None) -> Any:
        # A legacy follow-up sequence is known by its own id; the campaign id is for REST v2.
        return self.client.add_to_campaign(contact_id, sequence_id)

    def stop_sequence(self, contact_id: int, sequence_id: int, campaign_id: int | None = None) -> Any:
        return self.client.remove_from_campaign(contact_id, sequence_id)

    def pause_sequence(self, contact_id: int, sequence_id: int) -> Any:
        return self.client.pause_campaign(contact_id, sequence_id)

    def run_action_set(self, contact_id: int, action_set_id: int) -> Any:
        return self.client.run_action_sequence(contact_id, action_set_id)

    def achieve_goal(self, contact_id: int, integration: str, call_name: str) -> Any:
        return self.client.call("FunnelService.achieveGoal", integration, call_name, contact_id)

    def opt_out(self, contact_id: int, email: str, reason: str) -> Any:
        # Opt-out is per email address, not per contact; the contact id only places the step.
        return self.client.call("APIEmailService.optOut", email, reason)


class RestPort(_ClientPort):
    """KeapPort over the REST v2 client. Pausing a sequence and running an action set have no v2 call: the
    routes check refuses rules that need them, and these methods raise
    KeapUnsupportedOperation."""

    client: RestClient

    # port operation -> the REST v2 operation it makes (reported in run results)
    call_names: dict[str, str] = {
        "upsert_contact": "rest.upsertContact",
        "find_contacts": "rest.listContacts",
        "update_contact": "rest.updateContact",
        "apply_tag": "rest.applyTags",
        "remove_tag": "rest.removeTags",
        "start_sequence": "rest.addContactsToSequence",
        "stop_sequence": "rest.removeContactsFromSequence",
        "pause_sequence": "(no REST v2 call)",
        "run_action_set": "(no REST v2 call)",
        "achieve_goal": "rest.achieveGoal",
        "opt_out": "rest.updateEmailAddressStatus",
    }
    # POST /contacts answers the properties its `fields` names, `tag_ids` among them (Keap's v2 SDK,
    # ContactApi.create_contact): the tags the contact holds, in the upsert's own answer.
    upsert_tells: dict[str, HeldReader] = {"tags": ("tag_ids", tag_ids_of)}

    @staticmethod
    def _one(operation: str, contact_id: int, outcomes: dict[int, str]) -> str:
        outcome = outcomes.get(contact_id, "SUCCESS")
        error = outcome_error(operation, contact_id, outcome)
        if error is not None:
            raise error
        return outcome

    def many_contacts(self) -> dict[str, ManyContacts]:
        # tags/{t}/contacts:applyTags and the sequence calls take many contact ids (a batch groups by target).
        return {
            "apply_tag": lambda ids, tag_id: self.client.apply_tag(tag_id, ids),
            "remove_tag": lambda ids, tag_id: self.client.remove_tag(tag_id, ids),
            "start_sequence": lambda ids, *seq: self._sequence_many("start_sequence", "sequences", ids, *seq),
            "stop_sequence": lambda ids, *seq: self._sequence_many("stop_sequence", "remove_sequences", ids, *seq),
        }

    def upsert_contact(self, fields: dict[str, Any], dup_check: str) -> Upserted:
        properties = tuple(prop for prop, _ in self.upsert_tells.values())
        answer = self.client.upsert_contact_answer(fields, dup_check, properties)
        read = {kind: reader(answer) for kind, (_, reader) in self.upsert_tells.items()}
        return Upserted(int(answer["id"]), {kind: ids for kind, ids in read.items() if ids is not None})

    def find_contacts(self, email: str) -> list[int]:
        return self.client.find_contact_ids(email)

    def update_contact(self, contact_id: int, fields: dict[str, Any]) -> int:
        return self.client.update_contact(contact_id, fields)

    def apply_tag(self, contact_id: int, tag_id: int) -> Any:
        return self._one("rest.applyTags", contact_id, self.client.apply_tag(tag_id, [contact_id]))

    def remove_tag(self, contact_id: int, tag_id: int) -> Any:
        return self._one("rest.removeTags", contact_id, self.client.remove_tag(tag_id, [contact_id]))

    def _sequence_many(
        self, op: str, routes_key: str, contact_ids: list[int], sequence_id: int, campaign_id: int | None = None
    ) -> dict[int, str]:
        """Start (`op` start_sequence) or stop a campaign's sequence for contacts: v2 knows it by its campaign."""
        if campaign_id is None:
            raise KeapUnsupportedOperation(
                f"REST v2 needs the campaign of sequence {sequence_id}: use {routes_key}: [{{campaign, sequence}}]",
                method=self.call_names[op],
            )
        move = self.client.add_to_sequence if op == "start_sequence" else self.client.remove_from_sequence
        return move(campaign_id, sequence_id, contact_ids)

    def _sequence(self, op: str, routes_key: str, contact_id: int, sequence_id: int, campaign_id: int | None) -> Any:
        outcomes = self._sequence_many(op, routes_key, [contact_id], sequence_id, campaign_id)
        return self._one(self.call_names[op], contact_id, outcomes)

    def start_sequence(self, contact_id: int, sequence_id: int, campaign_id: int | None = None) -> Any:
        return self._sequence("start_sequence", "sequences", contact_id, sequence_id, campaign_id)

    def stop_sequence(self, contact_id: int, sequence_id: int, campaign_id: int | None = None) -> Any:
        return self._sequence("stop_sequence", "remove_sequences", contact_id, sequence_id, campaign_id)

    def pause_sequence(self, contact_id: int, sequence_id: int) -> Any:
        raise KeapUnsupportedOperation("REST v2 has no call to pause a sequence", method="pause_sequence")

    def run_action_set(self, contact_id: int, action_set_id: int) -> Any:
        raise KeapUnsupportedOperation("REST v2 has no call to run an action set; use goals", method="run_action_set")

    def achieve_goal(self, contact_id: int, integration: str, call_name: str) -> Any:
        return self.client.achieve_goal(contact_id, integration, call_name)

    def opt_out(self, contact_id: int, email: str, reason: str) -> Any:
        return self.client.opt_out(email, reason)


def build_port(
    api: str,
    *,
    url: str | None,
    api_key: str,
    rest_url: str | None = None,
    max_calls_per_second: float | None = None,
    rate_limiter: RateLimiter | None = None,
) -> ContactServicePort | RestPort:
    """The port for KEAP_API `api`: xmlrpc talks to `url`; rest to `rest_url`, else the REST base on url's host.

    `rate_limiter` (e.g. a budget shared by every container) paces calls instead of max_calls_per_second.
    """
    options = ClientOptions(max_calls_per_second=max_calls_per_second, rate_limiter=rate_limiter)
    if api == "rest":
        return RestPort(RestClient(rest_url or rest_base_url(url), api_key, options=options))
    if api == "xmlrpc":
        return ContactServicePort(ContactService(url, api_key, options=options))
    raise KeapUnsupportedOperation(f"KEAP_API must be xmlrpc or rest, not {api!r}")
