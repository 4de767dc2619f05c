"""`ctid customers import/import-quotes/import-cases FILE`: CSV into the customer book of a ctid.yaml's
database, all or nothing: any bad row is reported with its line number and nothing is imported."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from sqlalchemy.orm import Session

from ctid.cli import EXIT_INVALID, need_readable, open_config_database
from ctid.customers.book import CustomerImportError, ImportResult, create_schema, import_csv
from ctid.customers.imports import import_cases, import_quotes

Importer = Callable[[Session, IO[str]], ImportResult]


def add_customer_commands(sub: Any) -> None:
    """Register `ctid customers ...` on the `ctid` command's subparsers."""
    customers = sub.add_parser("customers", help="import customers, price quotes and cases from CSV")
    commands = customers.add_subparsers(dest="customers_command", required=True)
    importers: dict[str, tuple[str, Importer]] = {
        "import": ("customers (id,name,phones,revenue_12m,...): created or updated", import_csv),
        "import-quotes": (
            "price quotes (customer,product,price,currency,valid_until[,status,at,agent,user])",
            lambda session, handle: import_quotes(session, handle, time.time()),
        ),
        "import-cases": (
            "cases (customer,subject[,kind,status,opened_at])",
            lambda session, handle: import_cases(session, handle, time.time()),
        ),
    }
    for name, (help_text, importer) in importers.items():
        parser = commands.add_parser(name, help=help_text)
        parser.add_argument("file")
        parser.add_argument("-c", "--config", default="config/ctid.yaml")
        parser.set_defaults(func=lambda args, importer=importer: _run(args, importer))


def _run(args: argparse.Namespace, importer: Importer) -> int:
    path = need_readable(args.file)
    engine = open_config_database(args.config)
    if isinstance(engine, int):
        return engine
    try:
        create_schema(engine)
        with Session(engine) as session, open(path, newline="", encoding="utf-8-sig") as handle:
            try:
                result = importer(session, handle)
            except (CustomerImportError, UnicodeDecodeError) as exc:
                print(f"{path}: {exc}", file=sys.stderr)
                return EXIT_INVALID
            if result.rejected:
                session.rollback()
                for rejection in result.rejected:
                    print(f"{path}:{rejection.line}: {rejection.reason}", file=sys.stderr)
                print(f"{path}: nothing imported ({len(result.rejected)} bad row(s))", file=sys.stderr)
                return EXIT_INVALID
            session.commit()
    finally:
        engine.dispose()
    print(f"{path}: {result.created} created, {result.updated} updated")
    return 0
