"""The projection definitions in projections/ agree with the topology and the row mappings."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdb.domain.envelope import EventEnvelope
from cdb.errors import ConfigError
from cdb.eventstore.topology import load_topology
from cdb.projections.definitions import load_definitions, parse_definition, quote_ident
from cdb.projections.mapping import batch_rows
from cdb.projections.models import metadata
from cdb.projections.sample import cycle


def test_every_definition_reads_declared_topics_with_a_declared_group() -> None:
    topology = load_topology()
    definitions = load_definitions()
    assert set(definitions) == {"trading", "positions", "portfolio_snapshots", "alerts"}
    for definition in definitions.values():
        definition.check(topology)
        assert all(table in metadata.tables for table in definition.tables)


def test_each_statement_names_exactly_the_columns_its_rows_carry() -> None:
    events = [
        EventEnvelope(**event.model_dump(), stream_id=request.stream_id, sequence_number=n)
        for i in range(30)
        for request in cycle(i)
        for n, event in enumerate(request.events, start=1)
    ]
    rows = batch_rows(events)
    statements = {s.op: s for d in load_definitions().values() for s in d.statements}
    assert set(rows) == set(statements)
    for op, op_rows in rows.items():
        for row in op_rows:
            assert set(row) == set(statements[op].columns), op


def test_a_definition_with_an_unknown_op_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.v1.toml"
    path.write_text(
        'name = "x"\nversion = 1\ngroup = "g"\ntables = ["alerts"]\nops = ["nope"]\n'
        '[topics]\nalerts = ["ALERT_RAISED"]\n[sql]\nnope = "SELECT 1"\n'
    )
    with pytest.raises(ConfigError, match="op 'nope'"):
        parse_definition(path)


def test_identifiers_are_checked_before_they_reach_sql() -> None:
    assert quote_ident("cdb_build_trading") == '"cdb_build_trading"'
    with pytest.raises(ConfigError, match="identifier"):
        quote_ident('x"; DROP TABLE signals; --')


def test_a_percent_sign_in_a_statement_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.v1.toml"
    path.write_text(
        'name = "x"\nversion = 1\ngroup = "g"\ntables = ["alerts"]\nops = ["alert"]\n'
        '[topics]\nalerts = ["ALERT_RAISED"]\n[columns]\nalert = "id text"\n'
        '[sql]\nalert = "INSERT INTO {schema}.alerts (id) '
        "SELECT id FROM {rows} AS u WHERE id LIKE 'a%'\"\n"
    )
    with pytest.raises(ConfigError, match=r"sql.alert: '%'"):
        parse_definition(path)


def test_a_few_rows_are_read_from_a_values_list_named_like_the_rows_table() -> None:
    statement = load_definitions()["positions"].statements[0]
    sql = statement.render_with_values("public", 2)
    assert sql.startswith(
        f"WITH {statement.rows_table} ({', '.join(statement.columns)}) AS (VALUES "
    )
    assert sql.count("%s::numeric") == 2 * statement.types.count("numeric")
    assert sql.endswith(statement.render("public"))


_ALERTS = (
    'name = "x"\nversion = 1\ngroup = "g"\ntables = ["alerts"]\nops = ["alert"]\n'
    '[topics]\nalerts = ["ALERT_RAISED"]\n[columns]\nalert = "id text"\n'
    '[sql]\nalert = "INSERT INTO {schema}.alerts (id) SELECT id FROM {rows} AS u"\n'
)


@pytest.mark.parametrize(
    ("rebuild", "error"),
    [
        ('split = "aggregate"', "rebuild.split: 'aggregate' is not 'none' or 'stream'"),
        ('split = "stream"\nshards = 2', r"rebuild: unknown keys \['shards'\]"),
    ],
)
def test_a_rebuild_table_that_cannot_be_followed_is_refused(
    tmp_path: Path, rebuild: str, error: str
) -> None:
    path = tmp_path / "x.v1.toml"
    path.write_text(_ALERTS + f"[rebuild]\n{rebuild}\n")
    with pytest.raises(ConfigError, match=error):
        parse_definition(path)


def test_only_definitions_that_say_so_are_split_by_stream(tmp_path: Path) -> None:
    path = tmp_path / "x.v1.toml"
    path.write_text(_ALERTS)
    plain = parse_definition(path)
    assert (plain.splits_by_stream, plain.placeholders) == (False, ())
    trading = load_definitions()["trading"]
    assert (trading.splits_by_stream, trading.placeholders) == (True, ("signal_stub",))
