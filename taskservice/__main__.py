"""Command line: `python -m taskservice api | dispatcher | worker | run | migrate`."""

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys

from taskservice.api.processes import reuse_port_available
from taskservice.handlers import HandlerModuleError
from taskservice.lifecycle import stop_on_signals
from taskservice.settings import Settings, SettingsError, describe_environment, load_settings, parse_queues


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="taskservice", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Configured by environment variables (NAME=default):\n" + describe_environment()
               + "\n\nMore in docs/operations.md.")
    commands = parser.add_subparsers(dest="command", required=True)
    api = commands.add_parser("api", help="serve the HTTP API (with the embedded dispatcher unless disabled)")
    api.add_argument("--processes", type=int, metavar="N",
                     help="API processes sharing the port, each with its own pool and embedded dispatcher "
                          "(default: API_PROCESSES)")
    api.add_argument("--child-of", type=int, help=argparse.SUPPRESS)  # set by the parent of --processes N
    commands.add_parser("dispatcher", help="drain the outbox into RabbitMQ and reap expired leases")
    worker = commands.add_parser("worker", help="consume and execute tasks")
    run = commands.add_parser("run", help="api + dispatcher + worker in one process, for local use")
    for consumer in (worker, run):
        consumer.add_argument("--concurrency", type=int, metavar="N",
                              help="tasks run at once (default: WORKER_CONCURRENCY)")
        consumer.add_argument("--queues", metavar="A,B",
                              help="comma-separated task queues to consume (default: WORKER_QUEUES, else default)")
    migrate = commands.add_parser("migrate", help="run dbmate on the packaged migrations against DATABASE_URL")
    migrate.add_argument("--wait", action="store_true", help="wait for the database to accept connections")
    migrate.add_argument("--dump-schema", metavar="FILE", help="write the resulting schema to FILE (needs pg_dump)")
    migrate.add_argument("dbmate_args", nargs=argparse.REMAINDER, metavar="COMMAND",
                         help="a dbmate command and its arguments (default: up)")
    return parser.parse_args(argv)


def with_options(settings: Settings, args: argparse.Namespace) -> Settings:
    """`settings` with the command line's --concurrency, --queues and --processes, which win over
    the environment; SettingsError naming a bad one."""
    if getattr(args, "concurrency", None) is not None:
        if not 1 <= args.concurrency <= 256:
            raise SettingsError("--concurrency must be between 1 and 256")
        settings = dataclasses.replace(settings, worker_concurrency=args.concurrency)
    if getattr(args, "queues", None) is not None:
        settings = dataclasses.replace(settings, worker_queues=parse_queues(args.queues, "--queues"))
    if getattr(args, "processes", None) is not None:
        if not 1 <= args.processes <= 256:
            raise SettingsError("--processes must be between 1 and 256")
        settings = dataclasses.replace(settings, api_processes=args.processes)
    return settings


async def run_command(command: str, settings: Settings, child_of: int | None = None) -> None:
    from taskservice import dispatcher, worker
    from taskservice.api.processes import serve_as_child
    from taskservice.api.server import serve

    stop = asyncio.Event()
    stop_on_signals(stop)
    if command == "api" and child_of is not None:
        await serve_as_child(settings, child_of, stop)
    elif command == "api":
        await serve(settings, stop)
    elif command == "dispatcher":
        await dispatcher.main(settings, stop)
    elif command == "worker":
        await worker.main(settings, stop)
    else:  # run: the API (with its embedded dispatcher) and a worker
        api_settings = dataclasses.replace(settings, dispatcher_embedded=True)
        await asyncio.gather(serve(api_settings, stop), worker.main(settings, stop))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"taskservice: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        from taskservice.migrations import migrate
        return migrate(settings.database_url, args.dbmate_args, wait=args.wait, dump_schema=args.dump_schema)
    try:
        settings = with_options(settings, args)
    except SettingsError as exc:
        print(f"taskservice: {exc}", file=sys.stderr)
        return 2
    several = args.command == "api" and (settings.api_processes > 1 or args.child_of is not None)
    if several and not reuse_port_available():
        print("taskservice: --processes above 1 needs SO_REUSEPORT, which this platform lacks", file=sys.stderr)
        return 2

    from taskservice.logs import configure_logging, log_context
    configure_logging(settings.log_level, settings.log_format)
    try:
        import uvloop
    except ImportError:
        run = asyncio.run
    else:
        run = uvloop.run
    # With several processes writing one stream, every line says which one wrote it.
    with log_context(pid=os.getpid()) if several else contextlib.nullcontext():
        if several and args.child_of is None:
            from taskservice.api.processes import supervise
            return run(supervise(settings, settings.api_processes))
        try:
            run(run_command(args.command, settings, getattr(args, "child_of", None)))
        except HandlerModuleError as exc:
            print(f"taskservice: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
