"""The gRPC order stream through a real third-party client (grpcio), for scripts/check-grpc.sh.

Usage: grpc_stream_check.py <stubs dir> <grpc host:port> <customer token> <sku>

Places an order (PlaceOrder), follows it (StreamOrderEvents, replaying from seq 0), expects
`order.placed`, cancels it (CancelOrder) and expects `order.cancelled` on the same stream.
Every wait has a deadline. Exits non-zero with a message on any failure.
"""

import sys

stubs, target, token, sku = sys.argv[1:5]
sys.path.insert(0, stubs)

import grpc  # noqa: E402
from orderly.v1 import orders_pb2, orders_pb2_grpc  # noqa: E402

metadata = [("authorization", f"Bearer {token}")]
with grpc.insecure_channel(target) as channel:
    orders = orders_pb2_grpc.OrderServiceStub(channel)
    order = orders.PlaceOrder(
        orders_pb2.PlaceOrderRequest(line_items=[orders_pb2.LineItemRequest(sku=sku, quantity=1)]),
        metadata=metadata,
        timeout=20,
    )
    assert order.status == orders_pb2.ORDER_STATUS_PENDING_PAYMENT, order
    print(f"placed {order.number} ({order.id}), total {order.total_minor} {order.currency}")

    stream = orders.StreamOrderEvents(
        orders_pb2.StreamOrderEventsRequest(order_id=order.id, after_seq=0), metadata=metadata, timeout=60
    )
    first = next(stream)
    assert first.type == "order.placed" and first.aggregate_id == order.id, first
    print(f"stream: seq {first.seq} {first.type}")

    orders.CancelOrder(orders_pb2.OrderActionRequest(id=order.id), metadata=metadata, timeout=20)
    second = next(stream)
    assert second.type == "order.cancelled" and second.seq > first.seq, second
    print(f"stream: seq {second.seq} {second.type}")
    stream.cancel()

    # Another customer's order is NOT_FOUND, never a stream.
    try:
        next(orders.StreamOrderEvents(orders_pb2.StreamOrderEventsRequest(order_id=order.id), timeout=10))
        sys.exit("an anonymous caller got a stream")
    except grpc.RpcError as e:
        assert e.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND), e
        print(f"anonymous stream refused: {e.code().name}")
print("grpcio stream: ok")
