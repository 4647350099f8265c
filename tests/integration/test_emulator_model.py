"""ContactServiceModel semantics, driven directly without a socket."""

import json
from datetime import datetime

import pytest

from keap_emulator import ContactServiceModel, KeapFault, WorldError, load_world

# 2027-01-15 17:00:00 UTC = 12:00:00 in New York (EST, UTC-5)
T0 = 1_800_032_400.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def model(clock):
    m = ContactServiceModel(clock=clock)
    yield m
    m.close()


def fault_of(excinfo):
    return excinfo.value.code, excinfo.value.string


# ------------------------------------------------------------------------------------------- fields


def test_add_stores_fields_and_read_only_metadata(model):
    cid = model.add({"FirstName": "Ada", "Email": "ada@example.com", "_LeadSource": "webinar"})
    assert cid == 1
    assert model.add({"FirstName": "Bob"}) == 2
    contact = model.get_contact(cid)
    assert contact["Id"] == 1
    assert contact["FirstName"] == "Ada"
    assert contact["_LeadSource"] == "webinar"
    assert contact["Groups"] == ""
    assert contact["DateCreated"] == datetime(2027, 1, 15, 12, 0, 0)  # US Eastern wall time
    assert isinstance(contact["LastUpdated"], datetime)


def test_update_moves_last_updated_but_not_date_created(model, clock):
    cid = model.add({"FirstName": "Ada"})
    clock.t += 3600
    assert model.update(cid, {"LastName": "Lovelace"}) == cid
    contact = model.get_contact(cid)
    assert contact["DateCreated"] == datetime(2027, 1, 15, 12, 0, 0)
    assert contact["LastUpdated"] == datetime(2027, 1, 15, 13, 0, 0)
    assert contact["LastName"] == "Lovelace"


def test_unknown_field_is_no_field_found(model):
    with pytest.raises(KeapFault) as excinfo:
        model.add({"Email": "a@example.com", "_LeadScore": "9"})
    assert fault_of(excinfo) == (10, "[NoFieldFound]No field found: Contact._LeadScore")
    assert model.contact_ids() == []


@pytest.mark.parametrize("field", ["Id", "Groups", "DateCreated", "LastUpdated", "CreatedBy"])
def test_read_only_fields_are_refused_on_write(model, field):
    cid = model.add({"FirstName": "Ada"})
    with pytest.raises(KeapFault) as excinfo:
        model.update(cid, {field: "1"})
    assert fault_of(excinfo) == (8, f"[NoFieldAccess]No field access: Contact.{field}")


def test_field_types_are_coerced_or_refused(model):
    cid = model.add({"Birthday": "1815-12-10", "OwnerID": "7", "_OrderTotal": "49.50", "Phone1": 5551234})
    contact = model.get_contact(cid)
    assert contact["Birthday"] == datetime(1815, 12, 10)
    assert contact["OwnerID"] == 7
    assert contact["_OrderTotal"] == 49.5
    assert contact["Phone1"] == "5551234"
    with pytest.raises(KeapFault) as excinfo:
        model.update(cid, {"Birthday": True})
    assert excinfo.value.code == 12
    assert excinfo.value.string.startswith("[InvalidParameter]Invalid value for Contact.Birthday")


def test_contact_notes_are_truncated_at_ten_thousand_characters(model):
    cid = model.add({"ContactNotes": "n" * 10_050})
    assert model.get_contact(cid)["ContactNotes"] == "n" * 10_000


def test_empty_string_clears_a_field(model):
    cid = model.add({"FirstName": "Ada", "Company": "AE"})
    model.update(cid, {"Company": ""})
    assert "Company" not in model.get_contact(cid)


def test_update_errors_use_keaps_strings(model):
    with pytest.raises(KeapFault) as excinfo:
        model.update(48872, {"FirstName": "x"})
    assert fault_of(excinfo) == (5, "[RecordNotFound]Unable to perform update. Record not found for Id:48872")
    cid = model.add({"FirstName": "Ada"})
    with pytest.raises(KeapFault) as excinfo:
        model.update(cid, {})
    assert fault_of(excinfo) == (11, "[NoFields]No fields sent for update")


def test_a_fault_part_way_leaves_nothing_applied(model):
    cid = model.add({"FirstName": "Ada"})
    with pytest.raises(KeapFault):
        model.update(cid, {"LastName": "Lovelace", "_Nope": "x"})
    assert "LastName" not in model.get_contact(cid)


# ------------------------------------------------------------------------------------------- dup check


def test_dup_check_email_matches_case_insensitively_and_updates(model):
    cid = model.add({"Email": "Ada@Example.com", "FirstName": "Ada"})
    again = model.add_with_dup_check({"Email": "ada@EXAMPLE.com", "Company": "Analytical"}, "Email")
    assert again == cid
    assert model.contact_ids() == [cid]
    assert model.get_contact(cid)["Company"] == "Analytical"
    assert model.get_contact(cid)["FirstName"] == "Ada"


def test_dup_check_returns_lowest_id_when_several_match(model):
    first = model.add({"Email": "twin@example.com"})
    second = model.add({"Email": "twin@example.com"})
    assert model.add_with_dup_check({"Email": "twin@example.com", "City": "Leeds"}, "Email") == first
    assert model.get_contact(first)["City"] == "Leeds"
    assert "City" not in model.get_contact(second)


def test_dup_check_email_and_name(model):
    cid = model.add({"Email": "a@example.com", "FirstName": "Ada", "LastName": "Lovelace"})
    same = {"Email": "A@example.com", "FirstName": "ADA", "LastName": "lovelace"}
    assert model.add_with_dup_check(same, "EmailAndName") == cid
    other = model.add_with_dup_check(
        {"Email": "a@example.com", "FirstName": "Augusta", "LastName": "Lovelace"}, "EmailAndName"
    )
    assert other != cid
    assert model.find_ids_by_email("a@example.com") == [cid, other]


def test_dup_check_email_and_name_and_company(model):
    base = {"Email": "a@example.com", "FirstName": "Ada", "LastName": "L"}
    cid = model.add({**base, "Company": "AE"})
    assert model.add_with_dup_check({**base, "Company": "ae"}, "EmailAndNameAndCompany") == cid
    assert model.add_with_dup_check({**base, "Company": "Other"}, "EmailAndNameAndCompany") != cid
    # the captured Keap behaviour: EmailAndName ignores Company and writes the new one
    assert model.add_with_dup_check({**base, "Company": "Test Company"}, "EmailAndName") == cid
    assert model.get_contact(cid)["Company"] == "Test Company"


def test_dup_check_matches_only_the_primary_email(model):
    model.add({"Email": "main@example.com", "EmailAddress2": "alt@example.com"})
    assert model.add_with_dup_check({"Email": "alt@example.com"}, "Email") == 2


def test_dup_check_without_email_always_creates(model):
    assert model.add_with_dup_check({"FirstName": "Ada"}, "Email") == 1
    assert model.add_with_dup_check({"FirstName": "Ada"}, "Email") == 2


def test_dup_check_type_is_validated(model):
    with pytest.raises(KeapFault) as excinfo:
        model.add_with_dup_check({"Email": "a@example.com"}, "EmailAndNameAnd Company")
    assert excinfo.value.code == 12
    assert excinfo.value.string.startswith("[InvalidParameter]Invalid dupCheckType")
    assert model.contact_ids() == []


# ------------------------------------------------------------------------------------------- finding and loading


def test_find_by_email_searches_all_three_emails_with_asked_fields_only(model):
    a = model.add({"Email": "x@example.com", "FirstName": "A"})
    b = model.add({"EmailAddress2": "X@Example.com", "FirstName": "B", "LastName": "Bee"})
    c = model.add({"EmailAddress3": "x@example.COM"})
    model.add({"Email": "other@example.com"})
    found = model.find_by_email("X@EXAMPLE.com", ["Id", "FirstName", "LastName"])
    assert found == [
        {"FirstName": "A", "Id": a},
        {"FirstName": "B", "Id": b, "LastName": "Bee"},
        {"Id": c},
    ]
    assert model.find_by_email("nobody@example.com", ["Id"]) == []


def test_find_by_email_unknown_field(model):
    with pytest.raises(KeapFault) as excinfo:
        model.find_by_email("x@example.com", ["Id", "Nope"])
    assert fault_of(excinfo) == (10, "[NoFieldFound]No field found: Contact.Nope")


def test_load_returns_only_asked_fields_that_have_values(model):
    cid = model.add({"FirstName": "Ron", "LastName": "Doe", "Email": "ron@example.com"})
    model.add_to_group(cid, 205)
    model.add_to_group(cid, 100)
    loaded = model.load(cid, ["Id", "FirstName", "Company", "Groups", "DateCreated"])
    assert loaded == {
        "DateCreated": datetime(2027, 1, 15, 12, 0, 0),
        "FirstName": "Ron",
        "Groups": "100,205",
        "Id": cid,
    }
    assert list(loaded) == sorted(loaded)


def test_load_errors(model):
    with pytest.raises(KeapFault) as excinfo:
        model.load(9, ["Id"])
    assert fault_of(excinfo) == (5, "[RecordNotFound]Unable to perform load. Record not found for Id:9")
    cid = model.add({"FirstName": "Ada"})
    with pytest.raises(KeapFault) as excinfo:
        model.load(cid, ["_LeadScore"])
    assert excinfo.value.code == 10


# ------------------------------------------------------------------------------------------- tags


def test_tags_are_a_set_but_every_application_is_logged(model):
    cid = model.add({"FirstName": "Ada"})
    assert model.add_to_group(cid, 101) is True
    assert model.add_to_group(cid, 101) is True
    assert model.add_to_group(cid, 100) is True
    assert model.contact_tags(cid) == {100, 101}
    assert model.get_contact(cid)["Groups"] == "100,101"
    applied = [(e["tag_id"], e["op"], e["via"]) for e in model.tag_applications(cid)]
    assert applied == [
        (101, "apply", "addToGroup"),
        (101, "apply", "addToGroup"),
        (100, "apply", "addToGroup"),
    ]
    assert model.remove_from_group(cid, 101) is True
    assert model.remove_from_group(cid, 109) is True  # not applied: no error
    assert model.contact_tags(cid) == {100}


def test_tag_errors(model):
    cid = model.add({"FirstName": "Ada"})
    with pytest.raises(KeapFault) as excinfo:
        model.add_to_group(cid, 999)
    assert excinfo.value.code == 5
    assert "Id:999" in excinfo.value.string
    with pytest.raises(KeapFault) as excinfo:
        model.add_to_group(77, 100)
    assert fault_of(excinfo) == (
        5,
        "[RecordNotFound]Unable to perform addToGroup. Record not found for Id:77",
    )
    with pytest.raises(KeapFault) as excinfo:
        model.add_to_group(0, 100)
    assert fault_of(excinfo) == (
        0,
        "Failed to invoke method addToGroup in class com.infusionsoft.api.xmlrpc.XmlRpcContactService: "
        "contactId must be a valid id",
    )


# ------------------------------------------------------------------------------------------- sequences


def state_of(model, cid, seq):
    (row,) = [e for e in model.enrolments(cid) if e["sequence_id"] == seq]
    return row["state"], row["next_step_id"]


def test_sequence_state_machine(model):
    cid = model.add({"FirstName": "Ada"})
    assert model.get_next_campaign_step(cid, 11) == 0
    assert model.pause_campaign(cid, 11) is False  # not enrolled
    assert model.add_to_campaign(cid, 11) is True
    assert state_of(model, cid, 11) == ("active", 1101)
    assert model.get_next_campaign_step(cid, 11) == 1101

    assert model.reschedule_campaign_step([cid], 1101) == 1
    assert model.add_to_campaign(cid, 11) is True  # kept, not restarted
    assert state_of(model, cid, 11) == ("active", 1102)

    assert model.pause_campaign(cid, 11) is True
    assert state_of(model, cid, 11) == ("paused", 1102)
    assert model.reschedule_campaign_step([cid], 1102) == 0  # paused contacts are not run
    assert model.resume_campaign_for_contact(cid, 11) is True
    assert state_of(model, cid, 11) == ("active", 1102)

    assert model.remove_from_campaign(cid, 11) is True
    assert state_of(model, cid, 11)[0] == "removed"
    assert model.get_next_campaign_step(cid, 11) == 0
    assert model.resume_campaign_for_contact(cid, 11) is False

    assert model.add_to_campaign(cid, 11) is True
    assert state_of(model, cid, 11) == ("active", 1101)
    outcomes = [s["outcome"] for s in model.sequence_starts(cid)]
    assert outcomes == ["started", "already_active", "restarted"]


def test_re_adding_a_paused_contact_resumes_it(model):
    cid = model.add({"FirstName": "Ada"})
    model.add_to_campaign(cid, 12)
    model.pause_campaign(cid, 12)
    model.add_to_campaign(cid, 12)
    assert state_of(model, cid, 12) == ("active", 1201)
    assert [s["outcome"] for s in model.sequence_starts(cid)] == ["started", "resumed"]


def test_unknown_sequence_is_a_loading_fault(model):
    cid = model.add({"FirstName": "Ada"})
    for call in (model.add_to_campaign, model.pause_campaign, model.get_next_campaign_step):
        with pytest.raises(KeapFault) as excinfo:
            call(cid, 99)
        assert fault_of(excinfo) == (6, "[Loading]Error loading follow-up sequence")
    assert model.sequence_starts() == []


def test_reschedule_counts_active_enrolled_contacts_and_advances_them(model):
    a, b, c = (model.add({"FirstName": n}) for n in "abc")
    model.add_to_campaign(a, 13)
    model.add_to_campaign(b, 13)
    model.add_to_campaign(c, 11)  # another sequence
    assert model.reschedule_campaign_step([a, b, c, a, 999], 1302) == 2
    assert model.get_next_campaign_step(a, 13) == 1303
    assert model.get_next_campaign_step(b, 13) == 1303
    assert model.get_next_campaign_step(c, 11) == 1101
    assert model.reschedule_campaign_step([a], 1303) == 1
    assert model.get_next_campaign_step(a, 13) == 0  # finished
    assert [(r["contact_id"], r["step_id"]) for r in model.step_runs()] == [(a, 1302), (b, 1302), (a, 1303)]
    with pytest.raises(KeapFault) as excinfo:
        model.reschedule_campaign_step([a], 4242)
    assert excinfo.value.code == 6


# ------------------------------------------------------------------------------------------- action sets


def test_action_sets_apply_and_remove_tags_and_are_logged(model):
    cid = model.add({"FirstName": "Ada"})
    model.add_to_group(cid, 100)
    model.add_to_group(cid, 101)
    model.add_to_group(cid, 102)
    assert model.run_action_sequence(cid, 21) == [
        {
            "Action": "Apply/Remove Tag",
            "Message": "tags applied to Contact: Customer: first purchase",
            "IsError": False,
        }
    ]
    results = model.run_action_sequence(cid, 31)
    assert [r["Action"] for r in results] == ["Apply/Remove Tag", "Apply/Remove Tag"]
    assert all(r["IsError"] is False for r in results)
    assert "Status: unsubscribed" in results[0]["Message"]
    assert model.contact_tags(cid) == {102, 201, 300}
    model.run_action_sequence(cid, 21, {"note": "again"})
    runs = model.action_set_runs(cid)
    assert [r["action_set_id"] for r in runs] == [21, 31, 21]
    assert runs[2]["params"] == {"note": "again"}
    vias = {e["via"] for e in model.tag_applications(cid)}
    assert {"runActionSequence:21", "runActionSequence:31"} <= vias


def test_action_set_errors(model):
    cid = model.add({"FirstName": "Ada"})
    with pytest.raises(KeapFault) as excinfo:
        model.run_action_sequence(cid, 99)
    assert excinfo.value.code == 5
    with pytest.raises(KeapFault) as excinfo:
        model.run_action_sequence(99, 21)
    assert excinfo.value.code == 5
    assert model.action_set_runs() == []


# ------------------------------------------------------------------------------------------- merge


def test_merge_folds_the_duplicate_into_the_contact(model):
    keep = model.add({"Email": "ada@example.com", "FirstName": "Ada"})
    dup = model.add({"Email": "ada@old.example", "FirstName": "Augusta", "Company": "AE", "_Source": "shop"})
    model.add_to_group(keep, 100)
    model.add_to_group(dup, 201)
    model.add_to_campaign(keep, 11)
    model.add_to_campaign(dup, 11)
    model.reschedule_campaign_step([dup], 1101)
    model.add_to_campaign(dup, 12)
    assert model.merge(keep, dup) is True
    merged = model.get_contact(keep)
    assert merged["FirstName"] == "Ada"  # kept
    assert merged["Email"] == "ada@example.com"
    assert merged["Company"] == "AE"  # filled
    assert merged["_Source"] == "shop"
    assert model.contact_tags(keep) == {100, 201}
    assert state_of(model, keep, 11) == ("active", 1101)  # its own enrolment wins
    assert state_of(model, keep, 12) == ("active", 1201)  # moved
    assert model.get_contact(dup) is None
    assert model.enrolments(dup) == []
    assert model.contact_tags(dup) == set()


def test_merge_errors(model):
    cid = model.add({"FirstName": "Ada"})
    with pytest.raises(KeapFault) as excinfo:
        model.merge(cid, 99)
    assert fault_of(excinfo) == (5, "[RecordNotFound]Unable to perform merge. Record not found for Id:99")
    with pytest.raises(KeapFault) as excinfo:
        model.merge(cid, cid)
    assert excinfo.value.code == 12
    assert model.get_contact(cid) is not None


# ------------------------------------------------------------------------------------------- world, reset, storage


def test_snapshot_is_json_and_reset_returns_to_the_seeded_world(model):
    cid = model.add({"Email": "ada@example.com"})
    model.add_to_group(cid, 100)
    model.add_to_campaign(cid, 11)
    model.run_action_sequence(cid, 21)
    snap = json.loads(json.dumps(model.snapshot()))
    assert snap["contacts"][0]["Email"] == "ada@example.com"
    assert snap["contacts"][0]["tags"] == [100, 201]
    assert snap["enrolments"][0]["state"] == "active"
    assert len(snap["action_set_runs"]) == 1
    assert {t["id"] for t in snap["world"]["tags"]} >= {100, 209, 309}
    model.reset()
    assert model.contact_ids() == []
    assert model.sequence_starts() == [] and model.tag_applications() == []
    assert model.add({"FirstName": "again"}) == 1


def test_default_world(model):
    world = model.world
    assert set(world.tags) == set(range(100, 110)) | set(range(200, 210)) | set(range(300, 310))
    assert {s: world.sequences[s].steps for s in world.sequences} == {
        11: (1101, 1102, 1103),
        12: (1201, 1202, 1203),
        13: (1301, 1302, 1303),
    }
    assert set(world.action_sets) == {21, 31}
    assert set(world.custom_fields) == {
        "_LeadSource",
        "_OrderId",
        "_OrderTotal",
        "_UnsubscribeReason",
        "_Source",
    }


def test_a_custom_world_with_seeded_contacts(clock):
    world = {
        "format": 1,
        "tags": [{"id": 5, "name": "VIP"}],
        "sequences": [{"id": 3, "steps": [{"id": 31}, {"id": 32}]}],
        "action_sets": [{"id": 8, "actions": [{"type": "start_sequence", "sequence": 3}]}],
        "custom_fields": [{"name": "_Score", "type": "int"}],
        "contacts": [{"id": 40, "fields": {"Email": "seed@example.com", "_Score": 3}, "tags": [5]}],
    }
    m = ContactServiceModel(world=world, clock=clock)
    assert m.contact_ids() == [40]
    assert m.get_contact(40)["_Score"] == 3
    assert m.contact_tags(40) == {5}
    assert m.run_action_sequence(40, 8)[0]["Action"] == "Start/Stop Follow-up Sequence"
    assert m.get_next_campaign_step(40, 3) == 31
    assert m.add({"Email": "new@example.com"}) == 41
    m.reset()
    assert m.contact_ids() == [40]
    assert m.enrolments() == []


@pytest.mark.parametrize(
    "world",
    [
        {"tags": []},
        {"format": 1, "tags": [{"id": 1}, {"id": 1}]},
        {"format": 1, "sequences": [{"id": 1, "steps": []}]},
        {"format": 1, "action_sets": [{"id": 1, "actions": [{"type": "apply_tags", "tags": [7]}]}]},
        {"format": 1, "custom_fields": [{"name": "NoUnderscore"}]},
        {"format": 1, "custom_fields": [{"name": "_X", "type": "blob"}]},
    ],
)
def test_bad_worlds_are_refused(world):
    with pytest.raises(WorldError):
        load_world(world)


def test_a_file_database_persists_across_models(tmp_path, clock):
    path = tmp_path / "keap.sqlite"
    first = ContactServiceModel(path, clock=clock)
    cid = first.add({"Email": "ada@example.com"})
    first.add_to_group(cid, 100)
    first.close()
    second = ContactServiceModel(path, clock=clock)
    assert second.find_ids_by_email("ADA@example.com") == [cid]
    assert second.contact_tags(cid) == {100}
    second.close()
