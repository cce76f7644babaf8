"""The RabbitMQ ceiling: what the broker alone sustains on this machine for the pipeline's
messages, with no database behind them. The batch and drain rows read beside it.

One process publishes `messages` task messages (taskservice.broker.task_message: persistent,
with an AMQP priority) to a task queue declared as the service declares it (a priority queue
with its dead-letter exchange), `batch` at a time with publisher confirms awaited together, the
way the dispatcher publishes a claimed batch; another process consumes them with manual acks
and a prefetch of `prefetch`, acking each message (the worker's way) or, with `ack_every` > 1,
every that many with `multiple=True`. Rate = messages / (first publish to last ack); CPU per
message of the publisher, the consumer and RabbitMQ, from /proc.

    .venv/bin/python -m bench.broker_ceiling --messages 50000 --prefetch 16
"""

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any

import aio_pika

from bench import cpu
from taskservice import broker
from taskservice.settings import Settings

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/"


def settings_for(amqp_url: str, name: str) -> Settings:
    """Settings whose exchange and queue names are this run's own."""
    return Settings(amqp_url=amqp_url, amqp_exchange=name, amqp_queue=f"{name}.tasks")


async def consume(args: argparse.Namespace) -> None:
    """The consumer process: prints "ready" once consuming, then one JSON line when the last
    message is acked."""
    connection = await aio_pika.connect(args.amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=args.prefetch)
    queue = await channel.get_queue(args.queue)
    done = asyncio.Event()
    received = 0
    first: float | None = None

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal received, first
        first = first or time.time()
        received += 1
        broker.parse_task_message(message.body)
        if received % args.ack_every == 0 or received == args.messages:
            await message.ack(multiple=args.ack_every > 1)
        if received == args.messages:
            done.set()

    await queue.consume(on_message)
    print("ready", flush=True)
    await done.wait()
    print(json.dumps({"first_delivery": first, "last_ack": time.time(), "received": received}), flush=True)
    await connection.close()


async def measure(amqp_url: str, *, messages: int, batch: int, prefetch: int, ack_every: int = 1,
                  database: str = "") -> dict[str, Any]:
    """Publish and consume `messages` through a queue of this run's own (deleted afterwards)."""
    settings = settings_for(amqp_url, f"ceiling-{uuid.uuid4().hex[:8]}")
    connection = await aio_pika.connect(amqp_url)
    consumer = None
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        topology = await broker.declare_topology(channel, settings)
        queue = topology.queues[broker.DEFAULT_QUEUE]
        consumer = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.broker_ceiling", "--consume", "--queue", queue.name,
            "--messages", str(messages), "--prefetch", str(prefetch), "--ack-every", str(ack_every),
            "--amqp-url", amqp_url, stdout=asyncio.subprocess.PIPE)
        if (await consumer.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the ceiling's consumer did not start")
        processes = {"consumer": consumer.pid}
        rabbitmq = cpu.find_process("beam.smp")
        if rabbitmq is not None:
            processes["rabbitmq"] = rabbitmq
        before = cpu.snapshot(processes, database)
        started = time.time()
        task_id = uuid.uuid4()
        for first in range(0, messages, batch):
            rows = [{"id": n + 1, "task_id": task_id, "priority": ("LOW", "MEDIUM", "HIGH")[n % 3]}
                    for n in range(first, min(first + batch, messages))]
            await broker.publish_batch(topology.exchange, queue.name, rows)
        published = time.time()
        report = json.loads(await consumer.stdout.readline())
        after = cpu.snapshot(processes, database)
        await consumer.wait()
    finally:
        if consumer is not None and consumer.returncode is None:
            consumer.kill()
            await consumer.wait()
        cleanup = await connection.channel()
        for name in (settings.amqp_queue, broker.dead_letter_names(settings)[1]):
            await cleanup.queue_delete(name)
        for name in (settings.amqp_exchange, broker.dead_letter_names(settings)[0]):
            await cleanup.exchange_delete(name)
        await connection.close()
    seconds = report["last_ack"] - started
    usage = cpu.usage(before, after)
    per_message = {}
    if usage:
        window = after["wall"] - before["wall"]
        per_message = {key: round(usage[key] / 100 * window * 1000 / messages, 3)
                       for key in ("loadgen", "consumer", "rabbitmq") if key in usage}
        per_message["publisher"] = per_message.pop("loadgen", None)
    return {
        "messages": messages, "batch": batch, "prefetch": prefetch, "ack_every": ack_every,
        "seconds": round(seconds, 3),
        "rps": round(messages / seconds, 1),
        "publish_rps": round(messages / (published - started), 1),
        "cpu": usage,
        "cpu_ms_per_message": per_message,
    }


def format_result(result: dict[str, Any]) -> str:
    parts = ", ".join(f"{key} {value:.3f}" for key, value in result["cpu_ms_per_message"].items()
                      if value is not None)
    return (f"{result['rps']:,.0f} messages/s published and acked ({result['messages']:,} in "
            f"{result['seconds']} s; publishing alone {result['publish_rps']:,.0f}/s; batches of "
            f"{result['batch']} confirmed together, prefetch {result['prefetch']}, ack every "
            f"{result['ack_every']}); cpu ms per message: {parts}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=200, help="messages per batch of confirms (DISPATCH_BATCH_SIZE)")
    parser.add_argument("--prefetch", type=int, default=16, help="the consumer's prefetch (the worker's concurrency)")
    parser.add_argument("--ack-every", type=int, default=1, help="ack every N messages with multiple=True")
    parser.add_argument("--consume", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.consume:
        asyncio.run(consume(args))
        return
    result = asyncio.run(measure(args.amqp_url, messages=args.messages, batch=args.batch, prefetch=args.prefetch,
                                 ack_every=args.ack_every))
    print(format_result(result))


if __name__ == "__main__":
    main()
