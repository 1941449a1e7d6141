"""A third-party GraphQL client (gql) against a running orderly: a query, mutations and a
subscription over graphql-transport-ws, each asserted. Run by scripts/check-graphql.sh."""

import asyncio
import json
import os
import urllib.request
import uuid

from gql import Client, gql
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

BASE = os.environ["ORDERLY_BASE"]
WS = BASE.replace("http://", "ws://", 1) + "/graphql"


def rest(path, body):
    req = urllib.request.Request(BASE + path, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.load(res)


def token_of(session):
    return session["access_token"]


async def main():
    admin = token_of(rest("/api/v1/auth/login", {"email": os.environ["ORDERLY_ADMIN_EMAIL"],
                                                 "password": os.environ["ORDERLY_ADMIN_PASSWORD"]}))
    email = f"gql-{uuid.uuid4().hex[:8]}@example.com"
    customer = token_of(rest("/api/v1/auth/register", {"email": email, "password": "correct horse battery",
                                                       "name": "gql client"}))
    sku = f"GQL-{uuid.uuid4().hex[:8]}"

    def http(token):
        return Client(transport=AIOHTTPTransport(url=BASE + "/graphql", headers={"Authorization": f"Bearer {token}"}),
                      fetch_schema_from_transport=True)

    # Mutation (staff): a product, validated against the schema gql fetched by introspection.
    async with http(admin) as s:
        p = (await s.execute(gql("mutation($sku: String!) { createProduct(input: {sku: $sku, name: $sku, "
                                 "priceMinor: 1999, currency: \"USD\", initialStock: 5}) { id sku priceMinor available } }"),
                             variable_values={"sku": sku}))["createProduct"]
        assert p["sku"] == sku and p["priceMinor"] == 1999 and p["available"] == 5, p
    print("mutation createProduct:", p)

    async with http(customer) as s:
        # Query: the connection with a filter (`q` matches the name, which is the SKU here).
        page = (await s.execute(gql("query($q: String) { products(first: 5, q: $q) { edges { cursor node { sku } } "
                                    "pageInfo { hasNextPage endCursor } } }"), variable_values={"q": sku}))["products"]
        assert [e["node"]["sku"] for e in page["edges"]] == [sku], page
        print("query products:", page["edges"][0]["node"])
        # A staff mutation with a customer token: FORBIDDEN, from the service.
        try:
            await s.execute(gql("mutation { createCategory(name: \"nope\") { id } }"))
            raise AssertionError("a customer created a category")
        except TransportQueryError as e:
            assert e.errors[0]["extensions"]["code"] == "FORBIDDEN", e.errors
        print("customer createCategory: FORBIDDEN")
        # Mutation: checkout without paying (the subscription sees it paid below).
        order = (await s.execute(gql("mutation($sku: String!) { checkout(input: {lineItems: [{sku: $sku, quantity: 1}]}) "
                                     "{ id status totalMinor } }"), variable_values={"sku": sku}))["checkout"]
        assert order["status"] == "PENDING_PAYMENT" and order["totalMinor"] == 1999, order
    print("mutation checkout:", order)

    # Subscription over graphql-transport-ws: replay from 0 (order.placed), then live (order.paid).
    ws = WebsocketsTransport(url=WS, subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
                             init_payload={"authorization": f"Bearer {customer}"})
    seen = []
    async with Client(transport=ws) as s:
        sub = gql("subscription($id: ID!) { orderEvents(orderId: $id, lastEventId: 0) { seq type aggregateId } }")
        async for event in s.subscribe(sub, variable_values={"id": order["id"]}):
            e = event["orderEvents"]
            assert e["aggregateId"] == order["id"], e
            seen.append(e["type"])
            if e["type"] == "order.placed":
                async with http(customer) as h:
                    paid = await h.execute(gql("mutation($id: ID!) { payOrder(id: $id, payment: "
                                               "{cardNumber: \"4242424242424242\"}) { status } }"),
                                           variable_values={"id": order["id"]})
                    assert paid["payOrder"]["status"] == "PAID", paid
            if e["type"] == "order.paid":
                break
    assert seen == ["order.placed", "order.paid"], seen
    print("subscription orderEvents:", seen)


asyncio.run(asyncio.wait_for(main(), 90))
