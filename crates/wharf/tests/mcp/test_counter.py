"""`wharf mcp` on the `mcp_counter` guest: a resource as opaque handles. One instance per MCP
session; handles round-trip within it, are refused in any other session (a second HTTP session on
the same server, a second stdio process), and an `own` argument consumes its handle."""

from __future__ import annotations

import jsonschema

from mcp_util import (
    HANDLE_RE,
    POLICY_FLAGS,
    SCHEMA_2020_12,
    Schema,
    assert_integer_schema,
    assert_object_schema,
    component,
    http_session,
    run,
    stdio_session,
)

COUNTER = component("MCP_COUNTER")
C = "mcp_counter.counters."
NEW, INCREMENT, GET, FORK, MERGE, SUM = (
    C + "counter.new",
    C + "counter.increment",
    C + "counter.get",
    C + "counter.fork",
    C + "counter.merge",
    C + "sum",
)
PARAMS = {
    NEW: ["start"],
    INCREMENT: ["self", "by"],
    GET: ["self"],
    FORK: ["self"],
    MERGE: ["into", "other"],
    SUM: ["counters"],
}
HANDLE_SCHEMA = {"type": "string", "pattern": "^counter-[0-9a-f]{32}$"}
U64 = (0, 18446744073709551615)
UNKNOWN = "counter-" + "0" * 32


def assert_handle_schema(schema: Schema, what: str) -> None:
    s = schema.schema
    assert {k: s.get(k) for k in HANDLE_SCHEMA} == HANDLE_SCHEMA, f"{what}: handle schema {s!r}"


def assert_handle(value, what: str) -> str:
    assert isinstance(value, str) and HANDLE_RE.match(value), f"{what}: {value!r} is not a counter handle"
    return value


def test_list_tools(connect):
    async def body():
        async with connect(COUNTER) as s:
            tools = await s.list_tools()
            assert set(tools) == set(PARAMS), f"tool names: {sorted(tools)}"
            for name, tool in tools.items():
                for schema in (tool.input_schema, tool.output_schema):
                    assert schema is not None, f"{name}: every counter function returns something"
                    jsonschema.Draft202012Validator.check_schema(schema)
                    assert schema.get("$schema") == SCHEMA_2020_12, f"{name}: {schema.get('$schema')!r}"
                assert_object_schema(Schema(tool.input_schema), PARAMS[name], f"{name} inputSchema")
                assert_object_schema(Schema(tool.output_schema), ["result"], f"{name} outputSchema")

            def param(name, p):
                return Schema(tools[name].input_schema).prop(p)

            def result(name):
                return Schema(tools[name].output_schema).prop("result")

            assert_integer_schema(param(NEW, "start"), *U64, "counter.new start")
            assert_handle_schema(result(NEW), "counter.new result (own<counter>)")
            for name in (INCREMENT, GET, FORK):
                assert_handle_schema(param(name, "self"), f"{name} self (borrow<counter>)")
            assert_integer_schema(param(INCREMENT, "by"), 0, 4294967295, "increment by")
            for name in (INCREMENT, GET, MERGE, SUM):
                assert_integer_schema(result(name), *U64, f"{name} result")
            assert_handle_schema(result(FORK), "fork result (own<counter>)")
            assert_handle_schema(param(MERGE, "into"), "merge into (borrow<counter>)")
            assert_handle_schema(param(MERGE, "other"), "merge other (own<counter>)")
            counters = param(SUM, "counters")
            assert counters.get("type") == "array", counters.schema
            assert_handle_schema(counters.items(), "sum counters[] (borrow<counter>)")
            assert not param(GET, "self").accepts("nope") and not param(GET, "self").accepts("counter-" + "0" * 31)
            assert param(GET, "self").accepts(UNKNOWN)

    run(body)


def test_handles_round_trip(connect):
    async def body():
        async with connect(COUNTER) as s:
            a = assert_handle(await s.ok(NEW, {"start": 5}), "counter.new")
            assert await s.ok(INCREMENT, {"self": a, "by": 3}) == 8
            assert await s.ok(GET, {"self": a}) == 8
            b = assert_handle(await s.ok(FORK, {"self": a}), "fork")
            assert b != a
            assert await s.ok(GET, {"self": b}) == 8
            assert await s.ok(INCREMENT, {"self": b, "by": 10}) == 18
            assert await s.ok(GET, {"self": a}) == 8, "a fork must not share its state"
            assert await s.ok(SUM, {"counters": [a, b]}) == 26
            assert await s.ok(SUM, {"counters": [a, a, b]}) == 34
            assert await s.ok(SUM, {"counters": []}) == 0
            # merge(into: borrow, other: own): `other` is consumed.
            assert await s.ok(MERGE, {"into": a, "other": b}) == 26
            assert await s.ok(GET, {"self": a}) == 26
            await s.error(GET, {"self": b}, "unknown handle")
            await s.error(MERGE, {"into": a, "other": b}, "unknown handle")
            await s.error(SUM, {"counters": [a, b]}, "unknown handle")
            assert await s.ok(GET, {"self": a}) == 26, "a failed call must not disturb the other handles"
            big = assert_handle(await s.ok(NEW, {"start": 18446744073709551610}), "counter.new")
            assert await s.ok(GET, {"self": big}) == 18446744073709551610
            assert await s.ok(INCREMENT, {"self": big, "by": 5}) == 18446744073709551615

    run(body)


def test_bad_handles(connect):
    async def body():
        async with connect(COUNTER) as s:
            a = assert_handle(await s.ok(NEW, {"start": 1}), "counter.new")
            await s.error(GET, {"self": UNKNOWN}, "unknown handle")
            await s.error(SUM, {"counters": [a, UNKNOWN]}, "unknown handle")
            await s.error(GET, {"self": "nope"}, "invalid arguments", "self")
            await s.error(GET, {"self": 5}, "invalid arguments", "self")
            await s.error(GET, {"self": a.upper()}, "self")
            await s.error(INCREMENT, {"self": a, "by": -1}, "invalid arguments", "by")
            await s.error(SUM, {"counters": [a, "nope"]}, "invalid arguments", "counters[1]")
            await s.error(MERGE, {"into": a}, "invalid arguments", "missing field", "other")
            assert await s.ok(GET, {"self": a}) == 1

    run(body)


def test_handles_die_with_the_http_session(http_servers):
    """Two sessions on one `wharf mcp --http` server: each its own instance and handles."""
    server = http_servers.get((COUNTER,))

    async def body():
        async with http_session(server) as one, http_session(server) as two:
            a = assert_handle(await one.ok(NEW, {"start": 5}), "counter.new")
            await two.error(GET, {"self": a}, "unknown handle")
            await two.error(INCREMENT, {"self": a, "by": 1}, "unknown handle")
            await two.error(MERGE, {"into": a, "other": a}, "unknown handle")
            b = assert_handle(await two.ok(NEW, {"start": 100}), "counter.new")
            await one.error(GET, {"self": b}, "unknown handle")
            await one.error(SUM, {"counters": [a, b]}, "unknown handle")
            assert await one.ok(INCREMENT, {"self": a, "by": 1}) == 6
            assert await two.ok(GET, {"self": b}) == 100
        # A third session, after the first two ended, knows neither handle.
        async with http_session(server) as three:
            await three.error(GET, {"self": a}, "unknown handle")
            await three.error(GET, {"self": b}, "unknown handle")
        assert server.alive(), server.tail()

    run(body)


def test_handles_die_with_the_stdio_process():
    async def body():
        async with stdio_session([COUNTER], POLICY_FLAGS) as one, stdio_session([COUNTER], POLICY_FLAGS) as two:
            a = assert_handle(await one.ok(NEW, {"start": 5}), "counter.new")
            await two.error(GET, {"self": a}, "unknown handle")
            b = assert_handle(await two.ok(NEW, {"start": 7}), "counter.new")
            await one.error(GET, {"self": b}, "unknown handle")
            assert await one.ok(GET, {"self": a}) == 5
            assert await two.ok(GET, {"self": b}) == 7

    run(body)
