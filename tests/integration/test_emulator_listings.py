"""The emulator's listing calls over HTTP: REST v2 tags, campaigns, a campaign's sequences and goals, the contact
model; XML-RPC DataService.query on the tables routes checks read. REST answers are checked against
keap-core-v2-sdk's models: no property the SDK's model does not have."""

import pytest

from keap_relay.keap.client import ContactService
from keap_relay.keap.errors import KeapError
from keap_relay.keap.rest import RestClient

KEY = "listings-key"


@pytest.fixture
def rest(emu):
    with RestClient(emu.rest_url, KEY) as client:
        yield client


@pytest.fixture
def rpc(emu):
    with ContactService(emu.url, KEY) as client:
        yield client


# ---------------------------------------------------------------- REST v2


def test_tags_are_listed_in_pages_and_filtered_by_id(emu, rest):
    first = rest.request("GET", "/tags", "rest.listTags", query={"page_size": 20})
    assert len(first["tags"]) == 20 and first["next_page_token"]
    rest_of = rest.request(
        "GET", "/tags", "rest.listTags", query={"page_size": 20, "page_token": first["next_page_token"]}
    )
    assert "next_page_token" not in rest_of
    names = {t["id"]: t["name"] for t in first["tags"] + rest_of["tags"]}
    assert len(names) == 30 and names["101"] == "Lead: webinar sign-up"
    assert first["tags"][0]["category"] == {"id": "1"}

    chosen = rest.request("GET", "/tags", "rest.listTags", query={"filter": "tag_ids==101,300,999"})
    assert [t["id"] for t in chosen["tags"]] == ["101", "300"]
    with pytest.raises(KeapError, match="unsupported filter"):
        rest.request("GET", "/tags", "rest.listTags", query={"filter": "colour==red"})


def test_campaigns_their_sequences_and_goals(emu, rest):
    campaigns = rest.request("GET", "/campaigns", "rest.listCampaigns")["campaigns"]
    assert [(c["id"], c["name"]) for c in campaigns] == [("5", "New leads nurture"), ("6", "Re-engagement")]
    assert "sequences" not in campaigns[0]  # v2 lists a campaign's sequences apart

    sequences = rest.request("GET", "/campaigns/5/sequences", "rest.getCampaignSequences")
    assert sequences["campaign_id"] == "5"
    assert [(s["id"], s["name"]) for s in sequences["sequences"]] == [("11", "Welcome"), ("12", "Onboarding")]

    goals = rest.request("GET", "/campaigns/6/goals", "rest.getCampaignGoals")["goals"]
    assert [(g["id"], g["name"]) for g in goals] == [("42", "Unsubscribed (API goal)")]
    assert not {"integration", "call_name"} & set(goals[0])  # as real Keap: no way to match an API goal

    with pytest.raises(KeapError) as missing:
        rest.request("GET", "/campaigns/77/sequences", "rest.getCampaignSequences")
    assert missing.value.error_class == "KeapNotFound"
    assert [c["method"] for c in emu.calls()] == [
        "rest.listCampaigns",
        "rest.getCampaignSequences",
        "rest.getCampaignGoals",
        "rest.getCampaignSequences",
    ]


def test_contact_model_gives_labels_and_database_names(emu, rest):
    fields = rest.request("GET", "/contacts/model", "rest.retrieveContactModel")["custom_fields"]
    assert {f["field_name"]: f["label"] for f in fields}["LeadSource"] == "Lead source"


# ---------------------------------------------------------------- XML-RPC DataService.query


def test_data_service_query_reads_the_tables(emu, rpc):
    def query(table, fields, data=None, limit=1000, page=0):
        return rpc.call("DataService.query", table, limit, page, data or {}, fields)

    groups = query("ContactGroup", ["Id", "GroupName", "GroupDescription"])
    assert len(groups) == 30 and groups[1] == {"Id": 101, "GroupName": "Lead: webinar sign-up"}
    assert query("ContactGroup", ["Id"], {"GroupName": "Status:%"}, limit=4, page=2) == [{"Id": 308}, {"Id": 309}]
    assert query("ActionSequence", ["Id", "TemplateName"]) == [
        {"Id": 21, "TemplateName": "New customer"},
        {"Id": 31, "TemplateName": "Unsubscribe clean-up"},
    ]
    assert [r["Name"] for r in query("Campaign", ["Id", "Name", "Status"])] == ["Welcome", "Onboarding", "Win-back"]
    assert query("CampaignStep", ["Id"], {"CampaignId": 13}) == [{"Id": 1301}, {"Id": 1302}, {"Id": 1303}]
    fields = query("DataFormField", ["Name", "Label"], {"FormId": -1})
    assert fields[0] == {"Name": "LeadSource", "Label": "Lead source"} and len(fields) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Invoice", 10, 0, {}, ["Id"]), "NoTableFound"),
        (("ContactGroup", 1001, 0, {}, ["Id"]), "InvalidParameter"),
        (("ContactGroup", 10, 0, {}, ["Colour"]), "NoFieldFound"),
    ],
)
def test_data_service_query_refuses_what_keap_refuses(emu, rpc, args, message):
    with pytest.raises(KeapError, match=message):
        rpc.call("DataService.query", *args)


# ---------------------------------------------------------------- the SDK's models


def test_listings_carry_nothing_the_sdk_models_lack(emu):
    pytest.importorskip("keap_core_v2_client", reason="keap-core-v2-sdk (the dev extra) is not installed")
    from keap_core_v2_client import ApiClient, Configuration
    from keap_core_v2_client.api.campaign_api import CampaignApi
    from keap_core_v2_client.api.contact_api import ContactApi
    from keap_core_v2_client.api.tags_api import TagsApi

    with ApiClient(Configuration(host=emu.rest_url, access_token=KEY)) as client:
        tags = TagsApi(client).list_tags(filter="tag_ids==101,102", page_size=1)
        campaigns = CampaignApi(client).list_campaigns(page_size=1000)
        sequences = CampaignApi(client).get_campaign_sequences("5")
        goals = CampaignApi(client).get_campaign_goals("5")
        model = ContactApi(client).retrieve_contact_model()

    assert [t.name for t in tags.tags] == ["Lead: webinar sign-up"] and tags.next_page_token == "1"
    assert [c.name for c in campaigns.campaigns] == ["New leads nurture", "Re-engagement"]
    assert [s.id for s in sequences.sequences] == ["11", "12"] and [g.id for g in goals.goals] == ["41"]
    objects = [tags, *tags.tags, campaigns, *campaigns.campaigns, sequences, *sequences.sequences, goals]
    objects += [*goals.goals, model, *model.custom_fields]
    extra = {type(o).__name__: o.additional_properties for o in objects if o.additional_properties}
    assert extra == {}


def test_a_world_without_campaign_names_still_lists_its_campaigns():
    from keap_emulator.listings import rest_campaigns
    from keap_emulator.world import load_world

    world = load_world(
        {
            "format": 1,
            "sequences": [{"id": 7, "name": "S", "campaign": 3, "steps": [{"id": 70}]}],
            "goals": [{"id": 9, "automation_id": 4, "integration": "i", "call_name": "c"}],
        }
    )
    assert [(c["id"], c["name"]) for c in rest_campaigns(world)] == [("3", "Campaign 3"), ("4", "Campaign 4")]
