"""Command line: `python -m taskservice api | dispatcher | worker | run`."""

import argparse
import asyncio
import logging
import sys

from taskservice.settings import SettingsError, load_settings

log = logging.getLogger("taskservice")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="taskservice", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("api", help="serve the HTTP API (with the embedded dispatcher unless disabled)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"taskservice: {exc}", file=sys.stderr)
        return 2

    from taskservice.logs import configure_logging
    configure_logging(settings.log_level, settings.log_format)
    try:
        import uvloop
    except ImportError:
        uvloop = None

    if args.command == "api":
        from taskservice.api.server import serve
        runner = serve(settings)
    else:  # argparse only accepts the commands above
        raise AssertionError(args.command)

    if uvloop is not None:
        uvloop.run(runner)
    else:
        asyncio.run(runner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
