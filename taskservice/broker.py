"""RabbitMQ: connecting, the topology (declared the same way by every process), publishing."""

import asyncio
import logging
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aio_pika
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from taskservice.lifecycle import wait_for
from taskservice.settings import Settings

log = logging.getLogger(__name__)

# What a broker call raises when RabbitMQ is unreachable or the connection or channel
# is gone (aio-pika raises RuntimeError for a closed one).
BROKER_ERRORS = (TimeoutError, OSError, RuntimeError, aio_pika.exceptions.AMQPError)

# How long a publish may wait for RabbitMQ's confirm.
PUBLISH_TIMEOUT_SECONDS = 10.0

# AMQP priority per task priority. Small values: RabbitMQ keeps one sub-queue per level.
MAX_PRIORITY = 10
AMQP_PRIORITY = {"LOW": 1, "MEDIUM": 5, "HIGH": 9}


# The queue of a task created without one (tasks.DEFAULT_QUEUE).
DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class Topology:
    exchange: AbstractExchange
    queues: Mapping[str, AbstractQueue]  # task queue name -> its RabbitMQ queue
    dead_letter_queue: AbstractQueue


def dead_letter_names(settings: Settings) -> tuple[str, str]:
    return f"{settings.amqp_exchange}.dead", f"{settings.amqp_queue}.dead"


def queue_name(settings: Settings, queue: str) -> str:
    """The RabbitMQ queue of task queue `queue`, also its routing key: AMQP_QUEUE for `default`
    (the one queue there was before named queues, so a deployment keeps its queue and messages),
    AMQP_QUEUE:<queue> for the others. The colon keeps every name apart from the dead-letter
    queue, AMQP_QUEUE.dead, which a task queue called "dead" would otherwise be."""
    return settings.amqp_queue if queue == DEFAULT_QUEUE else f"{settings.amqp_queue}:{queue}"


def process_connection_name() -> str:
    """What RabbitMQ shows for a connection that has no more specific name: which process made it."""
    return f"taskservice {socket.gethostname()}-{os.getpid()}"


async def connect(settings: Settings, stop: asyncio.Event,
                  name: str | None = None) -> AbstractRobustConnection | None:
    """A robust connection, retried with backoff until the broker answers; None if `stop` is set first.

    Once made, it reconnects by itself (every second) whenever it drops, and restores its
    channels' QoS, topology and consumers. `name` is what RabbitMQ shows for it.
    """
    name = name or process_connection_name()
    delay = 0.5
    while not stop.is_set():
        try:
            return await aio_pika.connect_robust(settings.amqp_url, timeout=10, reconnect_interval=1,
                                                 client_properties={"connection_name": name})
        except BROKER_ERRORS as exc:
            log.warning("RabbitMQ unreachable (%s); retrying in %.1fs", type(exc).__name__, delay)
            await wait_for(stop, delay)
            delay = min(delay * 2, 10)
    return None


async def close(connection: AbstractRobustConnection | None) -> None:
    """Close without hanging on a broker that is gone: a stopping process must still stop."""
    if connection is None:
        return
    try:
        async with asyncio.timeout(5):
            await connection.close()
    except BROKER_ERRORS as exc:
        log.warning("closing the RabbitMQ connection failed (%s)", type(exc).__name__)


async def settle(message: AbstractIncomingMessage, how: Literal["ack", "requeue", "reject"]) -> bool:
    """Ack a delivery, requeue it, or reject it to the dead-letter queue; False when the channel it
    came on has closed meanwhile. RabbitMQ has then put the message back in the queue itself, and
    its delivery tag means nothing on any other channel (the connection's reopened one included)."""
    try:
        if how == "ack":
            await message.ack()
        elif how == "requeue":
            await message.nack(requeue=True)
        else:
            await message.reject(requeue=False)
    except BROKER_ERRORS as exc:  # (a closed channel raises ChannelInvalidStateError, a RuntimeError)
        log.info("could not %s message %s (%s): its channel is gone and RabbitMQ redelivers it",
                 how, message.message_id, type(exc).__name__)
        return False
    return True


async def declare_topology(channel: AbstractChannel, settings: Settings,
                           queues: Iterable[str] = (DEFAULT_QUEUE,)) -> Topology:
    """Durable exchange, dead-letter queue, and a priority queue for each of the task `queues`."""
    dead_exchange_name, dead_queue_name = dead_letter_names(settings)
    dead_exchange = await channel.declare_exchange(dead_exchange_name, aio_pika.ExchangeType.FANOUT,
                                                   durable=True)
    dead_queue = await channel.declare_queue(dead_queue_name, durable=True)
    await dead_queue.bind(dead_exchange)
    exchange = await channel.declare_exchange(settings.amqp_exchange, aio_pika.ExchangeType.DIRECT,
                                              durable=True)
    declared = {queue: await declare_task_queue(channel, exchange, settings, queue) for queue in queues}
    return Topology(exchange=exchange, queues=declared, dead_letter_queue=dead_queue)


async def declare_task_queue(channel: AbstractChannel, exchange: AbstractExchange, settings: Settings,
                             queue: str) -> AbstractQueue:
    """Task queue `queue`: a durable priority queue bound to the exchange under its own name.

    The one place a task queue's arguments are written: redeclaring a queue with
    other arguments fails with PRECONDITION_FAILED (docs/design.md, Known pitfalls).
    """
    name = queue_name(settings, queue)
    declared = await channel.declare_queue(name, durable=True, arguments={
        "x-max-priority": MAX_PRIORITY,
        "x-dead-letter-exchange": dead_letter_names(settings)[0],
    })
    await declared.bind(exchange, routing_key=name)
    return declared


def task_message(outbox_id: int, task_id, priority: str) -> aio_pika.Message:
    return aio_pika.Message(
        orjson.dumps({"task_id": str(task_id), "outbox_id": outbox_id}),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=AMQP_PRIORITY[priority],
        message_id=str(outbox_id),
    )


def parse_task_message(body: bytes) -> tuple[str, int]:
    """(task id, outbox id) from a message body; ValueError when it is not one of ours."""
    data = orjson.loads(body)
    outbox_id = data.get("outbox_id") if isinstance(data, dict) else None
    # A bigint id (bool is an int to Python): anything else would fail the worker's whole claim batch.
    if type(outbox_id) is not int or not 0 < outbox_id < 2**63 or "task_id" not in data:
        raise ValueError("not a task message")
    return str(data["task_id"]), outbox_id


async def publish_batch(exchange: AbstractExchange, routing_key: str, rows: Sequence) -> None:
    """Publish every row and wait for all confirms; raises if any is nacked or returned."""
    await publish_each(exchange, [(routing_key, row) for row in rows])


async def publish_each(exchange: AbstractExchange, routed: Sequence[tuple[str, Any]]) -> None:
    """Publish each (routing key, row) and wait for all confirms; raises if any is nacked or
    returned. A lone message is published in the caller's own task: a gather's task for it would
    start a turn of the event loop later, after whatever else is ready (the create's HTTP answer,
    say)."""
    publishes = [exchange.publish(task_message(row["id"], row["task_id"], row["priority"]), routing_key,
                                  mandatory=True, timeout=PUBLISH_TIMEOUT_SECONDS)
                 for routing_key, row in routed]
    await (publishes[0] if len(publishes) == 1 else asyncio.gather(*publishes))


@dataclass
class Publisher:
    """The dispatcher's confirming channel, and the task queues declared on it so far.

    A queue is declared (with its binding) before the first message routed to it: the
    exchange would otherwise drop a message for a queue nobody declared, and `mandatory`
    would fail every publish to it. Forgotten after a failed publish and after a
    reconnect, so a queue deleted meanwhile is declared again.
    """
    channel: AbstractChannel
    exchange: AbstractExchange
    settings: Settings
    declared: set[str] = field(default_factory=set)

    def forget_declared(self, *_args: object) -> None:
        self.declared.clear()


async def publish_routed(publisher: Publisher, rows: Sequence) -> None:
    """Publish every row (with its `queue`) to its task queue and wait for all confirms;
    raises if any is nacked or returned."""
    try:
        for queue in {row["queue"] for row in rows} - publisher.declared:
            # Bounded like a publish: on a channel waiting to reconnect a declare waits for good,
            # and a stopping dispatcher must still stop.
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await declare_task_queue(publisher.channel, publisher.exchange, publisher.settings, queue)
            publisher.declared.add(queue)
        await publish_each(publisher.exchange, [(queue_name(publisher.settings, row["queue"]), row) for row in rows])
    except BaseException:
        publisher.forget_declared()
        raise


async def queue_depth(connection: AbstractConnection, queue_name: str) -> int:
    """Messages ready in the queue, as RabbitMQ reports them. A passive declare, on a channel of
    its own: it never creates the queue, and a missing one (NOT_FOUND) closes only that channel."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(queue_name, passive=True)
        return queue.declaration_result.message_count
    finally:
        if not channel.is_closed:
            await channel.close()
