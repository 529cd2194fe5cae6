"""An outside producer, as a user's Python code would be: publish requests to a
scale0 deployment with pika and read the replies through RabbitMQ's direct reply-to.

    python pika_client.py AMQP_URL DEPLOYMENT COUNT

Prints one JSON line per reply: correlation_id, status, headers, body.
Exits 1 if not every reply arrives within 30 s.
"""
import datetime
import datetime
import json
import sys
import time

import pika

url, deployment, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.confirm_delivery()

replies = {}


def on_reply(ch, method, props, body):
    headers = {
        k: (v.decode() if isinstance(v, bytes) else v) for k, v in (props.headers or {}).items()
    }
    replies[props.correlation_id] = {
        "correlation_id": props.correlation_id,
        "status": headers.get("x-scale0-status"),
        "headers": headers,
        "body": body.decode("utf-8", "replace"),
    }


# Direct reply-to: consume (no ack) before publishing.
channel.basic_consume("amq.rabbitmq.reply-to", on_reply, auto_ack=True)
deadline_ms = int(time.time() * 1000) + 20_000
# pika sends a datetime as an AMQP timestamp, which counts seconds.
deadline_at = datetime.datetime.fromtimestamp(time.time() + 20, datetime.timezone.utc)
for i in range(count):
    channel.basic_publish(
        exchange="scale0.requests",
        routing_key=deployment,
        body=json.dumps({"prompt": f"question {i}", "max_tokens": 4}),
        properties=pika.BasicProperties(
            reply_to="amq.rabbitmq.reply-to",
            correlation_id=f"py-{i}",
            message_id=f"{deployment}-py-{i}",
            content_type="application/json",
            priority=i % 10,
            # Half the requests give the deadline in ms, half as a datetime.
            headers={"x-scale0-deadline": deadline_ms if i % 2 else deadline_at},
        ),
    )

give_up = time.time() + 30
while len(replies) < count and time.time() < give_up:
    connection.process_data_events(time_limit=0.2)
connection.close()
for r in replies.values():
    print(json.dumps(r))
sys.exit(0 if len(replies) == count else 1)
