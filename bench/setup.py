#!/usr/bin/env python3
"""Creates the benchmark's data through the public API (stdlib only).

Logs in as the admin made by `orderly user create-admin`, creates products with large
stock, registers customers, checks that one order goes through, and writes into OUT_DIR:
  product_id.txt  the product read by the GET scenario
  skus.txt        SKUs the order scenario buys, one per line
  tokens.txt      one customer bearer token per line
  setup.json      what was created, and the GET body size
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

PASSWORD = "bench-password-123"
CARD = "4242424242424242"


def call(base, method, path, body=None, token=None, expect=(200,)):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=15) as res:
            status, raw = res.status, res.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    if status not in expect:
        sys.exit(f"setup: {method} {path} answered {status}: {raw[:500]!r}")
    return raw


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--admin-email", required=True)
    p.add_argument("--admin-password", required=True)
    p.add_argument("--customers", type=int, default=64)
    p.add_argument("--products", type=int, default=16)
    p.add_argument("--stock", type=int, default=100_000_000)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    if not (1 <= a.customers <= 2000 and 1 <= a.products <= 1000):
        sys.exit("setup: --customers must be 1..2000 and --products 1..1000")

    api = a.base + "/api/v1"
    admin = json.loads(call(api, "POST", "/auth/login", {"email": a.admin_email, "password": a.admin_password}))
    staff_token = admin["access_token"]

    skus, product_id = [], None
    for i in range(a.products):
        sku = f"BENCH-{i:04d}"
        product = json.loads(call(api, "POST", "/products", {
            "sku": sku,
            "name": f"Benchmark product {i}",
            "description": "A product created by bench/setup.py for load tests.",
            "price_minor": 1999,
            "currency": "USD",
            "initial_stock": a.stock,
        }, token=staff_token, expect=(201,)))
        skus.append(sku)
        if product_id is None:
            product_id = product["id"]

    started = time.monotonic()
    tokens = []
    run = int(time.time())
    for i in range(a.customers):
        session = json.loads(call(api, "POST", "/auth/register", {
            "email": f"bench-{run}-{i}@example.com", "password": PASSWORD, "name": f"Bench Customer {i}",
        }, expect=(201,)))
        tokens.append(session["access_token"])
    register_s = time.monotonic() - started

    # One order end to end, so a broken checkout stops the run here rather than
    # producing a benchmark of error responses.
    order = json.loads(call(api, "POST", "/orders", {
        "line_items": [{"sku": skus[0], "quantity": 1}], "payment": {"card_number": CARD},
    }, token=tokens[0], expect=(201,)))
    if order.get("status") != "paid":
        sys.exit(f"setup: the smoke-test order is {order.get('status')!r}, not 'paid'")

    body = call(api, "GET", f"/products/{product_id}")
    with open(f"{a.out}/product_id.txt", "w") as f:
        f.write(product_id + "\n")
    with open(f"{a.out}/skus.txt", "w") as f:
        f.write("\n".join(skus) + "\n")
    with open(f"{a.out}/tokens.txt", "w") as f:
        f.write("\n".join(tokens) + "\n")
    with open(f"{a.out}/setup.json", "w") as f:
        json.dump({
            "customers": a.customers, "products": a.products, "stock_per_product": a.stock,
            "register_ms_per_customer": round(register_s * 1000 / a.customers, 1),
            "product_get_body_bytes": len(body),
        }, f, indent=1)
    print(f"setup: {a.products} products, {a.customers} customers "
          f"({register_s * 1000 / a.customers:.0f} ms per registration), product body {len(body)} bytes")


if __name__ == "__main__":
    main()
