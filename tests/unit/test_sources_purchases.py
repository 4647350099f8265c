"""Shop sources: each vendor's sample, signed the vendor's way, becomes the right purchase (once per order)."""

import functools
import json
from urllib.parse import urlencode

import pytest
import sources_support
from sources_support import ignored, only_event

from keap_relay.aws import ingest
from keap_relay.aws.http import Request
from keap_relay.events.errors import SignatureInvalid
from keap_relay.events.sources import sign_request, stripe

SECRET = "shop-secret-for-tests"
KIND = "purchase"


# Each request goes to this kind's URL, signed with SECRET unless a test says otherwise, and is checked with SECRET.
accept = functools.partial(sources_support.accept, KIND, secret=SECRET, verify_with=SECRET)
mapped = functools.partial(sources_support.one_mapped, kind=KIND)


# -- Shopify ---------------------------------------------------------------------------------------------
SHOPIFY = {  # Shopify's standard test notification order (from the facts file)
    "id": 820982911946154508,
    "email": "jon@doe.ca",
    "created_at": "2019-06-04T13:53:06-04:00",
    "number": 234,
    "test": True,
    "total_price": "403.00",
    "subtotal_price": "393.00",
    "total_tax": "0.00",
    "currency": "USD",
    "financial_status": "voided",
    "name": "#9999",
    "order_number": 1234,
    "contact_email": "jon@doe.ca",
    "line_items": [
        {
            "id": 866550311766439020,
            "variant_id": 808950810,
            "title": "IPod Nano - 8GB",
            "quantity": 1,
            "sku": "IPOD2008PINK",
            "product_id": 632910392,
            "name": "IPod Nano - 8GB",
            "price": "199.00",
        }
    ],
    "billing_address": {
        "first_name": "Bob",
        "address1": "123 Billing Street",
        "phone": "555-555-BILL",
        "city": "Billtown",
        "zip": "K2P0B0",
        "province": "Kentucky",
        "country": "United States",
        "last_name": "Biller",
        "company": "My Company",
        "country_code": "US",
        "province_code": "KY",
    },
    "customer": {
        "id": 115310627314723954,
        "email": "john@test.com",
        "first_name": "John",
        "last_name": "Smith",
        "phone": None,
    },
}


def test_shopify_orders_paid_becomes_a_purchase_keyed_on_the_order():
    assert mapped(accept("shopify", SHOPIFY, topic="orders/paid"), "shopify") == {
        "id": "order-820982911946154508",
        "occurred_at": "2019-06-04T13:53:06-04:00",
        "contact": {
            "email": "jon@doe.ca",
            "first_name": "John",
            "last_name": "Smith",
            "phone": "555-555-BILL",
            "company": "My Company",
            "address": {
                "line1": "123 Billing Street",
                "city": "Billtown",
                "region": "KY",
                "postal_code": "K2P0B0",
                "country_code": "US",
            },
        },
        "order": {
            "id": "820982911946154508",
            "total": "403.00",
            "currency": "USD",
            "items": [
                {
                    "sku": "IPOD2008PINK",
                    "product_id": "632910392",
                    "name": "IPod Nano - 8GB",
                    "quantity": 1,
                    "unit_price": "199.00",
                }
            ],
        },
    }


def test_shopify_orders_create_counts_only_when_already_paid_and_is_the_same_event():
    ignored(accept("shopify", SHOPIFY, topic="orders/create"), "voided", "not paid")
    paid = {**SHOPIFY, "financial_status": "paid"}
    created = only_event(accept("shopify", paid, topic="orders/create"))
    assert created["id"] == only_event(accept("shopify", paid, topic="orders/paid"))["id"]
    ignored(accept("shopify", paid, topic="customers/create"), "customers/create")
    ignored(accept("shopify", paid), "not a purchase")  # no topic header at all


def test_shopify_signature_is_base64_hmac_of_the_raw_body():
    raw = json.dumps(SHOPIFY).encode()
    signed = sign_request("shopify", raw, SECRET, topic="orders/paid").headers
    with pytest.raises(SignatureInvalid):
        accept("shopify", raw, headers={**signed, "x-shopify-hmac-sha256": signed["x-shopify-hmac-sha256"].lower()})
    with pytest.raises(SignatureInvalid):
        accept("shopify", raw, secret="someone-elses-app", topic="orders/paid")


# -- WooCommerce -----------------------------------------------------------------------------------------
WOO = {  # a real v3 order from the facts file
    "id": 897,
    "parent_id": 0,
    "status": "processing",
    "currency": "USD",
    "date_created": "2021-09-06T18:05:09",
    "total": "28.44",
    "customer_id": 1,
    "order_key": "wc_order_G2pZKu7ZWZj9Z",
    "number": "897",
    "billing": {
        "first_name": "Uyi",
        "last_name": "Moses",
        "company": "Penciledge",
        "address_1": "8623 Hemlock Hill Drive, Houston",
        "address_2": "",
        "city": "Lagos",
        "state": "TX",
        "postcode": "23401",
        "country": "US",
        "email": "uyi@penciledge.net",
        "phone": "08171263283",
    },
    "payment_method": "stripe",
    "transaction_id": "ch_3JWmBuLTUR9LBPfg1yeTj9DG",
    "date_paid": "2021-09-06T18:05:12",
    "line_items": [
        {
            "id": 58,
            "name": "Rhapsody of Realities- A Topical Compendium volume 5",
            "product_id": 753,
            "variation_id": 0,
            "quantity": 1,
            "subtotal": "14.99",
            "total": "14.99",
            "sku": "",
            "price": 14.99,
        }
    ],
    "date_paid_gmt": "2021-09-06T18:05:12",
    "date_modified_gmt": "2021-09-06T18:05:12",
}


def test_woocommerce_paid_order_becomes_a_purchase_keyed_on_the_order():
    assert mapped(accept("woocommerce", WOO, topic="order.updated"), "woocommerce") == {
        "id": "order-897",
        "occurred_at": "2021-09-06T18:05:12Z",
        "contact": {
            "email": "uyi@penciledge.net",
            "first_name": "Uyi",
            "last_name": "Moses",
            "phone": "08171263283",
            "company": "Penciledge",
            "address": {
                "line1": "8623 Hemlock Hill Drive, Houston",
                "city": "Lagos",
                "region": "TX",
                "postal_code": "23401",
                "country_code": "US",
            },
        },
        "order": {
            "id": "897",
            "total": "28.44",
            "currency": "USD",
            "items": [
                {
                    "product_id": "753",
                    "name": "Rhapsody of Realities- A Topical Compendium volume 5",
                    "quantity": 1,
                    "unit_price": "14.99",
                }
            ],
        },
    }


def test_woocommerce_unpaid_orders_and_other_topics_are_ignored_and_updates_map_to_one_event():
    ignored(accept("woocommerce", {**WOO, "status": "pending"}, topic="order.created"), "pending")
    ignored(accept("woocommerce", {**WOO, "status": "on-hold"}, topic="order.updated"), "on-hold")
    ignored(accept("woocommerce", WOO, topic="product.updated"), "product.updated")
    processing = only_event(accept("woocommerce", WOO, topic="order.created"))
    completed = only_event(
        accept(
            "woocommerce",
            {**WOO, "status": "completed", "date_modified_gmt": "2021-09-07T09:00:00"},
            topic="order.updated",
        )
    )
    assert processing["id"] == completed["id"] == "order-897"


def test_woocommerce_creation_ping_is_answered_200_unsigned_with_nothing_queued():
    request = Request(
        "POST",
        "/purchases/woocommerce",
        "woocommerce",
        {"content-type": "application/x-www-form-urlencoded"},
        {},
        b"webhook_id=12",
    )
    accepted = ingest.accept(request, KIND, lambda _source: None)  # before any secret is even configured
    assert accepted.events == [] and accepted.reply["status"] == "ok" and accepted.status == 200
    forged = Request(
        "POST",
        "/purchases/woocommerce",
        "woocommerce",
        {"content-type": "application/x-www-form-urlencoded"},
        {},
        b"webhook_id=12&status=processing",
    )
    with pytest.raises(SignatureInvalid):
        ingest.accept(forged, KIND, {"woocommerce": SECRET}.get)


# -- Stripe ----------------------------------------------------------------------------------------------
CHECKOUT = {  # checkout.session.completed from the facts file
    "id": "evt_1KboHJJ01yyFZ0ZA2BcnaacN",
    "object": "event",
    "api_version": "2020-08-27",
    "created": 1646927505,
    "data": {
        "object": {
            "id": "cs_test_a11PduYxe7O1AfeDFU2WAyjw2FEv2PLG58ttdtieZr8hx6cJzkULYUiLoQ",
            "object": "checkout.session",
            "amount_subtotal": 500,
            "amount_total": 500,
            "currency": "usd",
            "customer": "cus_LIP5IRhcFCA5PK",
            "customer_details": {"email": "ktruong008@gmail.com", "phone": None, "tax_exempt": "none", "tax_ids": []},
            "customer_email": None,
            "metadata": {},
            "mode": "payment",
            "payment_intent": "pi_3KboGzJ01yyFZ0ZA0ezqQmJw",
            "payment_status": "paid",
            "status": "complete",
        }
    },
    "livemode": False,
    "pending_webhooks": 2,
    "request": {"id": None, "idempotency_key": None},
    "type": "checkout.session.completed",
}
INVOICE = {  # the live invoice event of the facts file, as invoice.paid
    "id": "evt_1SVC8JHOQNg4XnOM2WgGoBj8",
    "type": "invoice.paid",
    "created": 1763500000,
    "data": {
        "object": {
            "id": "in_1SVC87HOQNg4XnOMdHAlqDva",
            "object": "invoice",
            "amount_paid": 2990,
            "currency": "brl",
            "number": "M8V0KX57-0001",
            "customer": "cus_TS6KX04w045BN9",
            "customer_email": "marissandrasousa@icloud.com",
            "customer_name": "Marissandra Sousa de Deus",
            "customer_phone": "(62) 99700-5200",
            "customer_address": {
                "city": "Formoso",
                "country": "BR",
                "line1": "Saint clair Valadares",
                "line2": "",
                "postal_code": "38690000",
                "state": "Minas Gerais",
            },
            "lines": {
                "data": [
                    {
                        "id": "il_1SVC86HOQNg4XnOMdluq1xyJ",
                        "amount": 2990,
                        "currency": "brl",
                        "quantity": 1,
                        "description": "1 \u00d7 noMami - Assinatura Mensal (a R$ 29.90 / month)",
                        "pricing": {
                            "price_details": {
                                "price": "price_1SUyGiHOQNg4XnOMHSqLxNl9",
                                "product": "prod_TRs00eb9Wd4ZEJ",
                            }
                        },
                    }
                ]
            },
            "status": "paid",
            "total": 2990,
        }
    },
}


def test_stripe_checkout_session_becomes_a_purchase_in_major_units():
    assert mapped(accept("stripe", CHECKOUT), "stripe") == {
        "id": CHECKOUT["data"]["object"]["id"],
        "occurred_at": "2022-03-10T15:51:45Z",
        "contact": {"email": "ktruong008@gmail.com"},
        "order": {"id": CHECKOUT["data"]["object"]["id"], "total": "5.00", "currency": "USD"},
    }


def test_stripe_invoice_paid_becomes_a_purchase_with_its_lines_and_split_name():
    event = only_event(accept("stripe", INVOICE))
    assert event["id"] == "in_1SVC87HOQNg4XnOMdHAlqDva"
    assert event["contact"] == {
        "email": "marissandrasousa@icloud.com",
        "first_name": "Marissandra",
        "last_name": "Sousa de Deus",
        "phone": "(62) 99700-5200",
        "address": {
            "line1": "Saint clair Valadares",
            "city": "Formoso",
            "region": "Minas Gerais",
            "postal_code": "38690000",
            "country_code": "BR",
        },
    }
    assert event["order"] == {
        "id": "M8V0KX57-0001",
        "total": "29.90",
        "currency": "BRL",
        "items": [
            {
                "product_id": "prod_TRs00eb9Wd4ZEJ",
                "name": "1 \u00d7 noMami - Assinatura Mensal (a R$ 29.90 / month)",
                "quantity": 1,
                "unit_price": "29.90",
            }
        ],
    }


def test_stripe_subscription_checkout_and_its_first_invoice_are_one_purchase():
    session = json.loads(json.dumps(CHECKOUT))
    session["data"]["object"].update(mode="subscription", invoice="in_1SVC87HOQNg4XnOMdHAlqDva")
    assert only_event(accept("stripe", session))["id"] == only_event(accept("stripe", INVOICE))["id"]


def test_stripe_unpaid_sessions_and_other_event_types_are_ignored():
    unpaid = json.loads(json.dumps(CHECKOUT))
    unpaid["data"]["object"]["payment_status"] = "unpaid"
    ignored(accept("stripe", unpaid), "unpaid", "async_payment_succeeded")
    ignored(accept("stripe", {**CHECKOUT, "type": "charge.refunded"}), "charge.refunded")


def test_stripe_signature_accepts_any_v1_within_300_seconds_and_ignores_v0():
    raw = json.dumps(CHECKOUT).encode()
    good = stripe.sign(raw, SECRET, timestamp=1_700_000_000)["stripe-signature"]
    stamp, v1 = good.split(",")
    rolled = {"stripe-signature": f"{stamp},v1={'0' * 64},{v1},v0=abc"}  # two secrets during a roll
    stripe.verify(rolled, raw, SECRET, now=1_700_000_300)
    with pytest.raises(SignatureInvalid, match="tolerance"):
        stripe.verify(rolled, raw, SECRET, now=1_700_000_301)
    for header in (f"{stamp},v0={v1[3:]}", v1, f"t=abc,{v1}", f"{stamp},{stamp},{v1}", "", f"{stamp},v1={'0' * 64}"):
        with pytest.raises(SignatureInvalid):
            stripe.verify({"stripe-signature": header}, raw, SECRET, now=1_700_000_000)


def test_stripe_replayed_old_delivery_is_401_through_ingest():
    with pytest.raises(SignatureInvalid, match="tolerance"):
        accept("stripe", CHECKOUT, timestamp=1_646_927_505)


# -- Gumroad ---------------------------------------------------------------------------------------------
GUMROAD = {  # the captured ping from the facts file, with the sale id and name a full ping carries
    "seller_id": "2-X8GHFaL0qLyzuSriD=",
    "product_id": "r4qDRsQVn3U16i_2iNJcjA==",
    "product_name": "SuperDMs Subscription",
    "permalink": "superdms",
    "short_product_id": "EqHa",
    "email": "superdmsapp@gmail.com",
    "price": "4900",
    "gumroad_fee": "471",
    "currency": "usd",
    "quantity": "1",
    "discover_fee_charged": "false",
    "can_contact": "true",
    "referrer": "https://app.gumroad.com/",
    "order_number": "12421",
    "sale_id": "FQ9M8l3KdV0d_yzwQyWmYQ==",
    "full_name": "Dana Scully",
}


def test_gumroad_ping_becomes_a_purchase_answered_200():
    accepted = accept("gumroad", urlencode(GUMROAD).encode())
    assert accepted.status == 200
    assert mapped(accepted, "gumroad") == {
        "id": "FQ9M8l3KdV0d_yzwQyWmYQ==",
        "contact": {"email": "superdmsapp@gmail.com", "first_name": "Dana", "last_name": "Scully"},
        "order": {
            "id": "12421",
            "total": "49.00",
            "currency": "USD",
            "items": [
                {
                    "product_id": "r4qDRsQVn3U16i_2iNJcjA==",
                    "name": "SuperDMs Subscription",
                    "quantity": 1,
                    "unit_price": "49.00",
                }
            ],
        },
    }


def test_gumroad_needs_the_url_token_and_ignores_refunds():
    body = urlencode(GUMROAD).encode()
    with pytest.raises(SignatureInvalid, match="token"):
        accept("gumroad", body, query={})
    ignored(accept("gumroad", urlencode({**GUMROAD, "refunded": "true"}).encode()), "refund")


# -- Lemon Squeezy ---------------------------------------------------------------------------------------
LEMON = {  # Lemon Squeezy's documented sample
    "meta": {"event_name": "order_created"},
    "data": {
        "type": "orders",
        "id": "1",
        "attributes": {
            "store_id": 1,
            "identifier": "636f855c-1fb9-4c07-b75c-3a10afef010a",
            "order_number": 1,
            "user_name": "Darlene Daugherty",
            "user_email": "gernser@yahoo.com",
            "currency": "USD",
            "currency_rate": "1.0000",
            "subtotal": 999,
            "discount_total": 0,
            "tax": 200,
            "total": 1199,
            "subtotal_usd": 999,
            "discount_total_usd": 0,
            "tax_usd": 200,
            "total_usd": 1199,
            "tax_name": "VAT",
            "tax_rate": "20.00",
            "status": "paid",
        },
    },
}


def test_lemonsqueezy_order_created_becomes_a_purchase_answered_200():
    accepted = accept("lemonsqueezy", LEMON)
    assert accepted.status == 200
    assert mapped(accepted, "lemonsqueezy") == {
        "id": "order-1",
        "contact": {"email": "gernser@yahoo.com", "first_name": "Darlene", "last_name": "Daugherty"},
        "order": {"id": "1", "total": "11.99", "currency": "USD"},
    }


def test_lemonsqueezy_signature_is_hex_and_other_events_are_ignored():
    raw = json.dumps(LEMON).encode()
    assert len(sign_request("lemonsqueezy", raw, SECRET).headers["x-signature"]) == 64
    with pytest.raises(SignatureInvalid):
        accept("lemonsqueezy", raw, secret="wrong")
    ignored(accept("lemonsqueezy", {**LEMON, "meta": {"event_name": "subscription_created"}}), "subscription_created")
    pending = json.loads(json.dumps(LEMON))
    pending["data"]["attributes"]["status"] = "pending"
    ignored(accept("lemonsqueezy", pending), "pending")
