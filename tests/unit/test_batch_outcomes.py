"""How a grouped REST call's answer is read for each of its contacts (routing/batch.py ANSWER_ACTIONS), and
how an upsert's answer tells the tags a contact holds, which are not applied again (routing/runner.py)."""

import pytest

from keap_relay.keap.errors import KeapError, error_from_http
from keap_relay.keap.rest import outcome_error, tag_ids_of
from keap_relay.routing.batch import ANSWER_ACTIONS, read_answer
from keap_relay.routing.plan import Call
from keap_relay.routing.runner import already_held


@pytest.mark.parametrize(
    ("outcome", "action"),
    [
        ("SUCCESS", "done"),
        ("ALREADY_APPLIED", "done"),
        ("ALREADY_IN_SEQUENCE", "done"),
        (None, "done"),  # a 2xx that does not name the contact (removeTags: 204 without a body)
        ("FAILED", "alone"),
        ("CONTACT_DOES_NOT_EXIST", "alone"),
        ("QUEUED_FOR_LATER", "alone"),  # a word Keap never documented is not a clear success
    ],
)
def test_each_contacts_outcome_is_done_or_asked_again_alone(outcome, action):
    assert ANSWER_ACTIONS[read_answer(outcome)] == action


@pytest.mark.parametrize(
    ("status", "group", "action"),
    [
        (400, 3, "split"),
        (404, 2, "split"),
        (422, 2, "split"),
        (400, 1, "failed"),  # a group of one: its answer is the contact's own
        (401, 3, "failed"),  # the key, not a contact
        (403, 3, "failed"),
        (429, 3, "failed"),  # throttled: splitting would only make more calls
        (502, 3, "failed"),
    ],
)
def test_an_error_for_the_whole_group_is_split_only_when_it_may_be_one_contacts_fault(status, group, action):
    error = error_from_http(status, b'{"message": "no"}', rest=True)
    assert ANSWER_ACTIONS[read_answer(error=error, group_size=group)] == action


def test_a_lost_answer_fails_every_contact_of_the_group():
    assert ANSWER_ACTIONS[read_answer(error=KeapError("connection reset"), group_size=5)] == "failed"


def test_a_one_contact_answer_that_is_not_a_clear_success_is_a_transient_failure_naming_the_word():
    error = outcome_error("rest.applyTags", 7, "QUEUED_FOR_LATER")
    assert error is not None and error.transient and error.error_class == "KeapContactFailed"
    assert "QUEUED_FOR_LATER" in str(error)


@pytest.mark.parametrize(
    ("answer", "held"),
    [
        ({"id": "7", "tag_ids": ["101", "102"]}, frozenset({101, 102})),  # v2 sends ids as strings
        ({"id": "7", "tag_ids": []}, frozenset()),  # holds none: every tag is applied
        ({"id": "7"}, None),  # Keap left tag_ids out: unknown, nothing is skipped
        ({"id": "7", "tag_ids": None}, None),
        ({"id": "7", "tag_ids": ["101", "x"]}, None),  # not ids: unknown rather than half-read
    ],
)
def test_the_tags_an_upsert_answer_says_the_contact_holds(answer, held):
    assert tag_ids_of(answer) == held


@pytest.mark.parametrize(
    ("held", "skipped"), [({"tags": frozenset({101})}, True), ({"tags": frozenset()}, False), ({}, False)]
)
def test_only_a_tag_the_answer_names_is_skipped_and_only_for_apply_tag(held, skipped):
    assert already_held(Call("apply_tag", (101,)), held) is skipped
    assert already_held(Call("remove_tag", (101,)), held) is False
    assert already_held(Call("start_sequence", (101,)), held) is False
