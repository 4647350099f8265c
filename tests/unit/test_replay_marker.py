"""The replay marker on queue messages and a replayed event's keys: kept on retries and dead letters; an ordinary
event's keys unchanged."""

from keap_relay.aws import idempotency, queue
from keap_relay.aws.queue import DEAD_LETTER_ATTRIBUTES, REPLAY_ATTRIBUTES, Failure, Replay, Retry

EVENT = {"kind": "purchase", "source": "shopify", "id": "o-1", "contact": {"email": "ada@example.com"}}


def record(attributes):
    """A Lambda SQS record with these message attributes (name -> value)."""
    return {
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795687333000"},
        "messageAttributes": {name: {"stringValue": value, "dataType": "String"} for name, value in attributes.items()},
    }


def as_lambda(attributes):
    """SendMessage attributes as Lambda hands them to the function."""
    return {name: value["StringValue"] for name, value in attributes.items()}


def test_an_ordinary_record_has_no_replay():
    assert Replay.of(record({})) is None
    assert Retry.of(record({})).replay is None


def test_the_marker_round_trips_through_message_attributes():
    for replay in (Replay("fix-tags"), Replay("fix-all", ("sequences", "once-only"))):
        attributes = replay.attributes()
        assert list(attributes) == list(REPLAY_ATTRIBUTES) == ["ReplayName", "ReplayInclude"]
        assert all(value["StringValue"] for value in attributes.values())  # SQS refuses an empty attribute
        assert Replay.of(record(as_lambda(attributes))) == replay


def test_a_retry_of_a_replayed_event_keeps_its_marker():
    replay = Replay("fix-tags", ("sequences",))
    retry = Retry.of(record(as_lambda(replay.attributes())))
    assert retry.replay == replay
    again = retry.next(30)["MessageAttributes"]
    assert as_lambda(again)["ReplayName"] == "fix-tags" and as_lambda(again)["ReplayInclude"] == "sequences"
    assert Retry.of(record(as_lambda(again))).replay == replay
    assert "ReplayName" not in Retry.of(record({})).next(30)["MessageAttributes"]


def test_a_dead_letter_of_a_replayed_event_carries_its_marker_beside_the_reason():
    replay = Replay("fix-tags", ("once-only",))
    failure = Failure.permanent("KeapLoadingError", "no such tag", "apply_tag", kind="purchase", replay=replay)
    attributes = as_lambda(failure.attributes())
    assert list(attributes) == [*DEAD_LETTER_ATTRIBUTES, *REPLAY_ATTRIBUTES]
    assert (attributes["ReplayName"], attributes["ReplayInclude"]) == ("fix-tags", "once-only")
    # A redrive moves the letter back with its attributes: the event is that replay again.
    assert Replay.of(record(attributes)) == replay
    ordinary = Failure.permanent("KeapLoadingError", "no such tag", "apply_tag", kind="purchase")
    assert list(ordinary.attributes()) == list(DEAD_LETTER_ATTRIBUTES)


def test_an_ordinary_events_keys_are_as_they_were():
    assert idempotency.event_key(EVENT) == "purchase#shopify#o-1"
    assert idempotency.identity(EVENT) is EVENT  # Powertools hashes [kind, source, id] of the event itself


def test_a_replayed_events_keys_carry_the_replay_name():
    assert idempotency.event_key(EVENT, "fix-tags") == "purchase#shopify#o-1#fix-tags"
    keyed = idempotency.identity(EVENT, "fix-tags")
    assert keyed == {"kind": "purchase", "source": "shopify", "id": "o-1#fix-tags"}
    assert idempotency.identity(EVENT, "other") != keyed


def test_enqueue_and_a_replay_send_the_same_body_and_event_attributes():
    assert (
        queue.message_body(EVENT)
        == '{"kind":"purchase","source":"shopify","id":"o-1","contact":{"email":"ada@example.com"}}'
    )
    assert as_lambda(queue.event_attributes(EVENT)) == {"Kind": "purchase", "Source": "shopify", "EventId": "o-1"}
