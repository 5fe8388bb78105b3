"""The python-versions bench section: round order and how rounds are merged."""

from __future__ import annotations

from bench.loadgen import Latencies
from bench.measure import ContestantResult, PayloadResult
from bench.python_versions import Interpreter, PythonVersions, merge, mirrored, rows


def interpreter(version: str) -> Interpreter:
    return Interpreter(f"/py/{version}", version, {}, 0.0)


def result(name: str, rps: float, cpu: float | None, millis: tuple[float, ...]) -> ContestantResult:
    latencies = Latencies(millis, 0, 100.0)
    row = PayloadResult(name, "small", 1, rps, 1, cpu, latencies, 1000.0, latencies)
    return ContestantResult(name, [row], [80.0])


def test_rounds_are_mirrored_so_a_drifting_load_weighs_on_each_alike() -> None:
    a, b, c = interpreter("3.11.7"), interpreter("3.12.1"), interpreter("3.13.0")
    assert [i.version for i in mirrored([a, b, c], 3)] == [
        *("3.11.7", "3.12.1", "3.13.0"),
        *("3.13.0", "3.12.1", "3.11.7"),
        *("3.11.7", "3.12.1", "3.13.0"),
    ]


def test_merge_averages_rates_and_cpu_and_pools_latencies() -> None:
    merged = merge([result("x", 100.0, 4.0, (1.0, 3.0)), result("x", 300.0, None, (2.0,))]).rows[0]
    assert merged.rps == 200.0
    # A round without a CPU figure does not drag the mean to zero.
    assert merged.cpu_per_10k == 4.0
    assert merged.errors == 2
    assert merged.single.millis == (1.0, 2.0, 3.0)


def test_rows_compare_each_interpreter_with_the_first() -> None:
    base = [result("meshgate w1, Python 3.11.7", 100.0, 10.0, (2.0,))] * 2
    newer = [
        result("meshgate w1, Python 3.12.1", 150.0, 7.0, (1.0,)),
        result("meshgate w1, Python 3.12.1", 150.0, 9.0, (1.0,)),
    ]
    found = PythonVersions(
        results=[merge(base), merge(newer)],
        rounds={base[0].name: base, newer[0].name: newer},
        same={newer[0].name: {"small": False}},
    )
    table = rows(found)
    assert [r[1] for r in table] == ["3.11.7", "3.12.1"]
    vs_base, c1_vs_base, cpu, cpu_vs_base, per_round, same = (
        table[1][3],
        table[1][5],
        table[1][6],
        table[1][7],
        table[1][8],
        table[1][10],
    )
    assert (vs_base, c1_vs_base, cpu, cpu_vs_base) == ("1.50x", "0.50x", "8.00", "0.80x")
    assert per_round == "7.00, 9.00"
    assert same == "**no**"
