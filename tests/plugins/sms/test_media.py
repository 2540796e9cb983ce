"""Media: MMS and WhatsApp links out (MediaUrl, repeated; how many and what type checked
before queueing) and in (NumMedia, MediaUrlN, MediaContentTypeN: the provider's links of
an accepted type kept, shown in the conversation and on the timeline)."""

from __future__ import annotations

from crm_plugins.channels.models import Message
from crmcore.sdk import Activity
from tests.plugins.channels.conftest import drain, in_tenant
from tests.plugins.sms.conftest import make_lead

PHOTO = "https://cdn.acme.example/offers/kitchen.jpg"
PLAN = "https://cdn.acme.example/offers/plan.png"


def send_media(admin, lead, links, status=201, channel="sms", body="Here is the offer"):
    payload = {"channel": channel, "entity": "lead", "record_id": lead.id, "channel_options": {"media": links}}
    if body is not None:
        payload["body"] = body
    return admin("POST", "/messages", json=payload, status=status)


def test_an_mms_carries_its_links_as_repeated_media_url(env, admin, provider):
    lead = make_lead(env)
    queued = send_media(admin, lead, [PHOTO, PLAN])
    only_media = send_media(admin, lead, [PHOTO], body=None)  # a picture alone is a message
    drain(env)
    assert [(m.get("Body"), m["MediaUrl"]) for m in provider.sent] == [("Here is the offer", [PHOTO, PLAN]), (None, [PHOTO])]
    with in_tenant(env):
        stored = Message.get_by_id(queued["id"])
        assert stored.headers["attachments"] == [{"url": PHOTO, "content_type": "image/jpeg"}, {"url": PLAN, "content_type": "image/png"}]
        assert Activity.get_by_id(stored.activity_id).content == f"Here is the offer\n[image/jpeg] {PHOTO}\n[image/png] {PLAN}"
        assert Message.get_by_id(only_media["id"]).status == "sent"


def test_media_of_a_type_or_number_the_channel_does_not_carry_is_refused_before_queueing(env, admin, provider, callbacks):
    lead = make_lead(env)
    tiff = send_media(admin, lead, ["https://cdn.acme.example/scan.tiff"], status=422)
    assert "1: image/tiff is not a type sms carries" in str(tiff["errors"]["json"]["media"])
    assert "a file of unknown type" in str(send_media(admin, lead, ["https://cdn.acme.example/download?id=4"], status=422))
    assert "not a public http(s) link" in str(send_media(admin, lead, ["ftp://cdn.acme.example/a.jpg"], status=422))
    assert "at most 10 media" in str(send_media(admin, lead, [PHOTO] * 11, status=422))
    assert "a list of links" in str(send_media(admin, lead, "https://x/a.jpg", status=422))
    callbacks.inbound("whatsapp:+447911123456", "hi", "SMwa-m1")  # the window is open
    assert "whatsapp carries at most 1 media" in str(send_media(admin, lead, [PHOTO, PLAN], channel="whatsapp", status=422))
    pdf = send_media(admin, lead, ["https://cdn.acme.example/offer.pdf"], channel="whatsapp")  # WhatsApp takes a PDF
    drain(env)
    assert [m["MediaUrl"] for m in provider.sent] == [["https://cdn.acme.example/offer.pdf"]]
    assert admin("GET", f"/messages/{pdf['id']}")["status"] == "sent"


def test_inbound_media_is_kept_when_it_is_the_providers_and_shown_in_the_conversation(env, callbacks, provider):
    lead = make_lead(env)
    mine = f"{provider.url}/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    answer = callbacks.inbound("+447911123456", "Photo of the damage", "SMmms1", NumMedia="3",
                               MediaUrl0=mine, MediaContentType0="image/jpeg",
                               MediaUrl1="https://elsewhere.example/x.jpg", MediaContentType1="image/jpeg",
                               MediaUrl2=f"{provider.url}/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME3", MediaContentType2="application/x-msdownload")
    assert answer.status_code == 200
    with in_tenant(env):
        message = Message.get(Message.message_id == "SMmms1")
        assert message.headers["attachments"] == [
            {"url": mine, "content_type": "image/jpeg"},
            {"content_type": "image/jpeg", "refused": "not a link of the provider"},
            {"content_type": "application/x-msdownload", "refused": "a type we do not accept"},
        ]
        assert Activity.get_by_id(message.activity_id).content.splitlines()[1] == f"[image/jpeg] {mine}"
    client = env.client("acme")
    env.login(client)
    page = client.get(f"/app/conversations/{message.conversation_id}").get_data(as_text=True)
    assert f'<a href="{mine}" rel="noopener noreferrer nofollow" target="_blank">image/jpeg 1</a>' in page
    assert "application/x-msdownload 3: a type we do not accept" in page
    lead_page = client.get(f"/app/leads/{lead.id}").get_data(as_text=True)
    assert f"[image/jpeg] {mine}" in lead_page
