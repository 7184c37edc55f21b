"""`wharf mcp` on the `mcp_types` guest (every WIT type, hostile functions), over stdio and HTTP:
tool names, JSON Schemas, values, argument errors with paths, `err` results, traps, timeouts,
the memory limit, and guest output that must not reach the transport."""

from __future__ import annotations

import copy
import math
import re
import time

import jsonschema
import pytest
from mcp.shared.exceptions import MCPError as McpError

from mcp_util import (
    SCHEMA_2020_12,
    Schema,
    assert_integer_schema,
    assert_object_schema,
    component,
    isclose,
    run,
    same_json,
    text_of,
)

TYPES = component("MCP_TYPES")
P = "mcp_types.types."

# Tool name -> parameter names, for every export of the mcp-types world.
PARAMS = {
    "mcp_types.add": ["a", "b"],
    P + "echo": ["value"],
    P + "total": ["items"],
    P + "area": ["shape"],
    P + "divide": ["a", "b"],
    P + "nothing": [],
    P + "spin": [],
    P + "chatty": ["lines"],
    P + "crash": [],
    P + "hog": ["mib"],
}
WITH_RESULT = {"mcp_types.add", P + "echo", P + "total", P + "area", P + "divide", P + "chatty", P + "hog"}
EVERYTHING = ["flag", "ints", "single", "double", "letter", "text", "items", "pair", "shape", "color", "perms",
              "maybe", "nested", "outcome", "bare"]
INT_BOUNDS = {
    "a": (0, 255, "u8"),
    "b": (0, 65535, "u16"),
    "c": (0, 4294967295, "u32"),
    "d": (0, 18446744073709551615, "u64"),
    "e": (-128, 127, "s8"),
    "f": (-32768, 32767, "s16"),
    "g": (-2147483648, 2147483647, "s32"),
    "h": (-9223372036854775808, 9223372036854775807, "s64"),
}
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")

# `everything` values for `echo`; each must come back unchanged.
MAXIMA = {
    "flag": True,
    "ints": {k: hi for k, (_, hi, _) in INT_BOUNDS.items()},
    "single": "NaN",
    "double": 0.1,
    "letter": "é",
    "text": 'héllo, wörld 🦀 "quoted" \\ \n\t',
    "items": [{"name": "a", "qty": 0, "tags": []}, {"name": "b", "qty": 255, "tags": ["x", "y"]}],
    "pair": [4294967295, ""],
    "shape": {"circle": 2.5},
    "color": "red",
    "perms": ["read", "write", "exec"],
    "maybe": 7,
    "nested": {"some": None},
    "outcome": {"ok": 4294967295},
    "bare": {"ok": None},
}
MINIMA = {
    "flag": False,
    "ints": {k: lo for k, (lo, _, _) in INT_BOUNDS.items()},
    "single": "Infinity",
    "double": "-Infinity",
    "letter": "🦀",
    "text": "",
    "items": [],
    "pair": [0, "zero"],
    "shape": "point",
    "color": "blue",
    "perms": [],
    "maybe": None,
    "nested": None,
    "outcome": {"err": "bad"},
    "bare": {"err": None},
}
MIXED = {
    "flag": True,
    "ints": {"a": 1, "b": 2, "c": 3, "d": 4, "e": -5, "f": -6, "g": -7, "h": -8},
    "single": 1.5,
    "double": "NaN",
    "letter": "x",
    "text": "日本語",
    "items": [{"name": "only", "qty": 9, "tags": ["t"]}],
    "pair": [1, "one"],
    "shape": {"rect": [3.0, 4.5]},
    "color": "green",
    "perms": ["write"],
    "maybe": 0,
    "nested": {"some": 5},
    "outcome": {"ok": 0},
    "bare": {"ok": None},
}


def item(name: str, qty, tags=()):
    return {"name": name, "qty": qty, "tags": list(tags)}


def with_change(path: list, value):
    """MIXED with the value at `path` replaced (or removed when `value` is REMOVE)."""
    result = copy.deepcopy(MIXED)
    target = result
    for key in path[:-1]:
        target = target[key]
    if value is REMOVE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return result


REMOVE = object()


def test_list_tools(connect):
    async def body():
        async with connect(TYPES) as s:
            tools = await s.list_tools()
            assert set(tools) == set(PARAMS), f"tool names: {sorted(tools)}"
            for name, tool in tools.items():
                assert TOOL_NAME.match(name), name
                schema = tool.input_schema
                jsonschema.Draft202012Validator.check_schema(schema)
                assert schema.get("$schema") == SCHEMA_2020_12, f"{name}: $schema is {schema.get('$schema')!r}"
                assert_object_schema(Schema(schema), PARAMS[name], f"{name} inputSchema")
                if name in WITH_RESULT:
                    out = tool.output_schema
                    assert out is not None, f"{name} returns a value but has no outputSchema"
                    jsonschema.Draft202012Validator.check_schema(out)
                    assert out.get("$schema") == SCHEMA_2020_12, f"{name}: outputSchema $schema {out.get('$schema')!r}"
                    assert_object_schema(Schema(out), ["result"], f"{name} outputSchema")
                else:
                    assert tool.output_schema is None, f"{name} returns nothing but has outputSchema {tool.output_schema}"

    run(body)


def test_schemas(connect):
    async def body():
        async with connect(TYPES) as s:
            tools = await s.tools()
            value = Schema(tools[P + "echo"].input_schema).prop("value")
            assert_object_schema(value, EVERYTHING, "everything")
            assert value.get("type") == "object"

            ints = value.prop("ints")
            assert_object_schema(ints, list(INT_BOUNDS), "ints")
            for field, (lo, hi, ty) in INT_BOUNDS.items():
                assert_integer_schema(ints.prop(field), lo, hi, f"ints.{field} ({ty})")
                assert ints.prop(field).accepts(lo) and ints.prop(field).accepts(hi)
                assert not ints.prop(field).accepts(lo - 1) and not ints.prop(field).accepts(hi + 1)
                assert not ints.prop(field).accepts(1.5), f"{ty} accepts 1.5"

            assert value.prop("flag").get("type") == "boolean"

            for field in ("single", "double"):
                f = value.prop(field)
                branches = f.get("anyOf")
                assert branches, f"{field}: no anyOf in {f.schema!r}"
                assert any(b.get("type") == "number" for b in branches), f"{field}: {f.schema!r}"
                assert any(set(b.get("enum", [])) == {"NaN", "Infinity", "-Infinity"} for b in branches), f.schema
                for ok in (0, 1.5, -2, "NaN", "Infinity", "-Infinity"):
                    assert f.accepts(ok), f"{field} rejects {ok!r}"
                for bad in ("nan", "inf", "1.5", None, True, [1.0]):
                    assert not f.accepts(bad), f"{field} accepts {bad!r}"

            letter = value.prop("letter")
            assert (letter.get("type"), letter.get("minLength"), letter.get("maxLength")) == ("string", 1, 1)
            assert letter.accepts("é") and letter.accepts("🦀") and not letter.accepts("ab")
            assert not letter.accepts("")
            assert value.prop("text").get("type") == "string"

            items = value.prop("items")
            assert items.get("type") == "array"
            rec = items.items()
            assert_object_schema(rec, ["name", "qty", "tags"], "item")
            assert_integer_schema(rec.prop("qty"), 0, 255, "item.qty")
            tags = rec.prop("tags")
            assert tags.get("type") == "array" and tags.items().get("type") == "string"

            pair = value.prop("pair").schema
            assert pair.get("type") == "array", pair
            # No `items`: draft-07 validators (TypeScript SDK, MCP Inspector) ignore `$schema`,
            # and to them `items: false` forbids every item. Both dialects must agree.
            assert "items" not in pair, f"tuple: no items keyword: {pair}"
            draft7 = jsonschema.Draft7Validator(pair)
            assert draft7.is_valid([1, "one"]) and not draft7.is_valid([1]) and not draft7.is_valid([1, "a", "b"])
            assert (pair.get("minItems"), pair.get("maxItems")) == (2, 2), pair
            prefix = [Schema(p, value.root) for p in pair.get("prefixItems", [])]
            assert len(prefix) == 2, pair
            assert_integer_schema(prefix[0], 0, 4294967295, "pair.0")
            assert prefix[1].get("type") == "string"
            assert not value.prop("pair").accepts([1]) and not value.prop("pair").accepts([1, "a", "b"])

            shape = value.prop("shape")
            assert len(shape.get("oneOf", [])) == 3, f"variant: {shape.schema}"
            for ok in ({"circle": 2.0}, {"rect": [3, 4]}, "point", {"circle": "NaN"}):
                assert shape.accepts(ok), f"shape rejects {ok!r}"
            for bad in ("circle", {"point": None}, {"circle": 1, "rect": [1, 2]}, {"square": 1}, {"rect": [1]}, {}):
                assert not shape.accepts(bad), f"shape accepts {bad!r}"

            color = value.prop("color")
            assert color.get("type") == "string" and color.get("enum") == ["red", "green", "blue"], color.schema

            perms = value.prop("perms")
            assert perms.get("type") == "array" and perms.get("uniqueItems") is True, perms.schema
            assert perms.items().get("type") == "string", perms.schema
            assert perms.items().get("enum") == ["read", "write", "exec"], perms.schema
            assert perms.accepts([]) and perms.accepts(["exec", "read"])
            assert not perms.accepts(["read", "read"]) and not perms.accepts(["delete"])

            maybe = value.prop("maybe")
            for ok in (None, 0, 4294967295):
                assert maybe.accepts(ok), f"option<u32> rejects {ok!r}"
            for bad in ({"some": 5}, -1, "5"):
                assert not maybe.accepts(bad), f"option<u32> accepts {bad!r}"

            nested = value.prop("nested")
            for ok in (None, {"some": None}, {"some": 5}):
                assert nested.accepts(ok), f"option<option<u32>> rejects {ok!r}"
            for bad in (5, {"some": {"some": 5}}, {}, {"some": 5, "x": 1}):
                assert not nested.accepts(bad), f"option<option<u32>> accepts {bad!r}"

            outcome = value.prop("outcome")
            assert len(outcome.get("oneOf", [])) == 2, f"result: {outcome.schema}"
            for ok in ({"ok": 5}, {"err": "bad"}):
                assert outcome.accepts(ok), f"result<u32, string> rejects {ok!r}"
            for bad in ({"ok": "x"}, {"err": 5}, {"ok": 1, "err": "x"}, {}, 5, None):
                assert not outcome.accepts(bad), f"result<u32, string> accepts {bad!r}"

            bare = value.prop("bare")
            for ok in ({"ok": None}, {"err": None}):
                assert bare.accepts(ok), f"result rejects {ok!r}"
            for bad in ({"ok": 1}, {}, None, "ok"):
                assert not bare.accepts(bad), f"result accepts {bad!r}"

            # The published schema accepts what echo accepts, and rejects the classic mistakes.
            whole = Schema(tools[P + "echo"].input_schema)
            for v in (MAXIMA, MINIMA, MIXED):
                errors = list(whole.validator().iter_errors({"value": v}))
                assert not errors, f"echo's inputSchema rejects a valid value: {errors[0].message}"
            assert not whole.accepts({"value": with_change(["ints", "a"], 256)})
            assert not whole.accepts({"value": with_change(["surplus"], 1)})
            assert not whole.accepts({"value": with_change(["color"], REMOVE)})

            # The other tools' parameters.
            for name, param in (("mcp_types.add", "a"), ("mcp_types.add", "b"), (P + "chatty", "lines"),
                                (P + "hog", "mib")):
                assert_integer_schema(Schema(tools[name].input_schema).prop(param), 0, 4294967295, f"{name} {param}")
            for param in ("a", "b"):
                assert_integer_schema(
                    Schema(tools[P + "divide"].input_schema).prop(param), -2147483648, 2147483647, f"divide {param}"
                )
            total = Schema(tools[P + "total"].input_schema).prop("items")
            assert_object_schema(total.items(), ["name", "qty", "tags"], "total's item")
            assert Schema(tools[P + "area"].input_schema).prop("shape").accepts({"rect": [1, 2]})

            # Output schemas: `{"result": S}` with S the return type's schema.
            assert_integer_schema(Schema(tools["mcp_types.add"].output_schema).prop("result"), 0, 4294967295, "add")
            divide = Schema(tools[P + "divide"].output_schema).prop("result")
            assert divide.accepts({"ok": -3}) and divide.accepts({"err": "x"}) and not divide.accepts(-3)
            area = Schema(tools[P + "area"].output_schema).prop("result")
            assert area.accepts(12.5) and area.accepts("NaN") and not area.accepts("12.5")
            echo_out = Schema(tools[P + "echo"].output_schema).prop("result")
            assert_object_schema(echo_out, EVERYTHING, "echo's result")

    run(body)


def test_calls(connect):
    async def body():
        async with connect(TYPES) as s:
            assert await s.ok("mcp_types.add", {"a": 2, "b": 3}) == 5
            assert await s.ok("mcp_types.add", {"a": 4294967295, "b": 2}) == 1
            items = [item("a", 1), item("b", 255, ["x", "y"]), item("c", 0)]
            assert await s.ok(P + "total", {"items": items}) == 256
            assert await s.ok(P + "total", {"items": []}) == 0
            assert isclose(await s.ok(P + "area", {"shape": {"circle": 2.0}}), math.pi * 4)
            assert isclose(await s.ok(P + "area", {"shape": {"rect": [3, 4.5]}}), 13.5)
            assert await s.ok(P + "area", {"shape": "point"}) == 0
            assert await s.ok(P + "area", {"shape": {"circle": "Infinity"}}) == "Infinity"
            assert await s.ok(P + "area", {"shape": {"rect": ["Infinity", 0]}}) == "NaN"
            assert same_json(await s.ok(P + "divide", {"a": 7, "b": 2}), {"ok": 3})
            assert same_json(await s.ok(P + "divide", {"a": -7, "b": 2}), {"ok": -3})
            assert await s.ok(P + "chatty", {"lines": 3}) == 3
            assert await s.ok(P + "hog", {"mib": 16}) == 16

            nothing = await s.call(P + "nothing", {})
            assert not nothing.is_error, text_of(nothing)
            assert nothing.structured_content == {} and text_of(nothing).strip() == "{}", nothing

    run(body)


@pytest.mark.parametrize("name", ["maxima", "minima", "mixed"])
def test_echo_round_trips(connect, name):
    value = {"maxima": MAXIMA, "minima": MINIMA, "mixed": MIXED}[name]

    async def body():
        async with connect(TYPES) as s:
            got = await s.ok(P + "echo", {"value": value})
            assert same_json(got, value), f"echo changed the value:\n sent {value!r}\n got  {got!r}"

    run(body)


def test_flags_come_back_in_declaration_order(connect):
    async def body():
        async with connect(TYPES) as s:
            got = await s.ok(P + "echo", {"value": with_change(["perms"], ["exec", "read"])})
            assert got["perms"] == ["read", "exec"], got["perms"]
            got = await s.ok(P + "echo", {"value": with_change(["perms"], ["exec", "write", "read"])})
            assert got["perms"] == ["read", "write", "exec"], got["perms"]

    run(body)


# (tool, arguments, needles the error text must contain)
BAD_ARGUMENTS = [
    (P + "total", {"items": [item("a", 1), item("b", 2), item("c", 300)]},
     ["invalid arguments", "items[2].qty", "300", "255", "u8"]),
    (P + "total", {"items": [item("a", 1), {**item("b", 2), "color": "red"}]},
     ["invalid arguments", "items[1]", "unknown field", "color"]),
    (P + "total", {"items": [{"name": "a", "tags": []}]}, ["invalid arguments", "items[0]", "missing field", "qty"]),
    (P + "total", {"items": {"name": "a"}}, ["invalid arguments", "items", "expected", "got object"]),
    (P + "total", {"items": [item("a", -1)]}, ["invalid arguments", "items[0].qty", "-1", "u8"]),
    ("mcp_types.add", {"a": 1, "b": 2, "c": 3}, ["invalid arguments", "unknown field", "c"]),
    ("mcp_types.add", {"a": 1}, ["invalid arguments", "missing field", "b"]),
    ("mcp_types.add", {}, ["invalid arguments", "missing field"]),
    ("mcp_types.add", {"a": "1", "b": 2}, ["invalid arguments: a: ", "expected", "got string"]),
    ("mcp_types.add", {"a": 1.5, "b": 2}, ["invalid arguments: a: "]),
    ("mcp_types.add", {"a": None, "b": 2}, ["invalid arguments: a: ", "got null"]),
    ("mcp_types.add", {"a": 4294967296, "b": 2}, ["invalid arguments: a: ", "4294967296", "4294967295", "u32"]),
    ("mcp_types.add", {"a": -1, "b": 2}, ["invalid arguments: a: ", "-1", "u32"]),
    (P + "divide", {"a": 2147483648, "b": 1}, ["invalid arguments: a: ", "2147483648", "s32"]),
    (P + "echo", {"value": with_change(["letter"], "ab")}, ["invalid arguments", "value.letter"]),
    (P + "echo", {"value": with_change(["letter"], "")}, ["invalid arguments", "value.letter"]),
    (P + "echo", {"value": with_change(["ints", "e"], -129)}, ["invalid arguments", "value.ints.e", "-129", "-128", "s8"]),
    (P + "echo", {"value": with_change(["ints", "d"], 18446744073709551616)},
     ["invalid arguments", "value.ints.d", "18446744073709551616", "u64"]),
    (P + "echo", {"value": with_change(["ints", "h"], -9223372036854775809)}, ["invalid arguments", "value.ints.h", "s64"]),
    (P + "echo", {"value": with_change(["ints", "z"], 1)}, ["invalid arguments", "value.ints", "unknown field", "z"]),
    (P + "echo", {"value": with_change(["ints", "a"], REMOVE)}, ["invalid arguments", "value.ints", "missing field", "a"]),
    (P + "echo", {"value": with_change(["flag"], 1)}, ["invalid arguments", "value.flag", "expected"]),
    (P + "echo", {"value": with_change(["single"], 1e39)}, ["invalid arguments", "value.single"]),
    (P + "echo", {"value": with_change(["double"], "nan")}, ["invalid arguments", "value.double"]),
    (P + "echo", {"value": with_change(["items", 0, "qty"], 256)}, ["invalid arguments", "value.items[0].qty", "256"]),
    (P + "echo", {"value": with_change(["items", 0, "tags", 0], 5)}, ["invalid arguments", "value.items[0].tags[0]"]),
    (P + "echo", {"value": with_change(["pair"], [1])}, ["invalid arguments", "value.pair"]),
    (P + "echo", {"value": with_change(["pair"], [1, "one", "two"])}, ["invalid arguments", "value.pair"]),
    (P + "echo", {"value": with_change(["pair"], ["1", "one"])}, ["invalid arguments", "value.pair[0]"]),
    (P + "echo", {"value": with_change(["shape"], {"square": 1})}, ["invalid arguments", "value.shape"]),
    (P + "echo", {"value": with_change(["shape"], {"circle": "big"})}, ["invalid arguments", "value.shape.circle"]),
    (P + "echo", {"value": with_change(["shape"], {"rect": [1]})}, ["invalid arguments", "value.shape.rect"]),
    (P + "echo", {"value": with_change(["shape"], "circle")}, ["invalid arguments", "value.shape"]),
    (P + "echo", {"value": with_change(["color"], "purple")}, ["invalid arguments", "value.color", "purple"]),
    (P + "echo", {"value": with_change(["perms"], ["read", "delete"])}, ["invalid arguments", "value.perms", "delete"]),
    (P + "echo", {"value": with_change(["perms"], "read")}, ["invalid arguments", "value.perms"]),
    (P + "echo", {"value": with_change(["maybe"], -1)}, ["invalid arguments", "value.maybe"]),
    (P + "echo", {"value": with_change(["nested"], 5)}, ["invalid arguments", "value.nested"]),
    (P + "echo", {"value": with_change(["outcome"], {"ok": "x"})}, ["invalid arguments", "value.outcome.ok"]),
    (P + "echo", {"value": with_change(["outcome"], {"ok": 1, "err": "x"})}, ["invalid arguments", "value.outcome"]),
    (P + "echo", {"value": with_change(["bare"], {"ok": 1})}, ["invalid arguments", "value.bare.ok"]),
    (P + "echo", {"value": with_change(["text"], REMOVE)}, ["invalid arguments", "value", "missing field", "text"]),
    (P + "echo", {"value": None}, ["invalid arguments", "value", "got null"]),
]


def test_invalid_arguments(connect):
    async def body():
        async with connect(TYPES) as s:
            failures = []
            for name, args, needles in BAD_ARGUMENTS:
                result = await s.call(name, args)
                text = text_of(result)
                missing = [n for n in needles if n not in text]
                if not result.is_error or missing:
                    failures.append(f"{name}({args}): isError={result.is_error}, missing {missing} in {text!r}")
            assert not failures, "\n".join(failures)
            assert await s.ok("mcp_types.add", {"a": 1, "b": 1}) == 2

    run(body)


def test_err_result(connect):
    async def body():
        async with connect(TYPES) as s:
            result = await s.call(P + "divide", {"a": 1, "b": 0})
            assert result.is_error, text_of(result)
            assert "division by zero" in text_of(result)
            assert same_json(result.structured_content, {"result": {"err": "division by zero"}}), result
            result = await s.call(P + "divide", {"a": -2147483648, "b": -1})
            assert result.is_error and same_json(result.structured_content, {"result": {"err": "overflow"}}), result
            assert same_json(await s.ok(P + "divide", {"a": 9, "b": 3}), {"ok": 3})

    run(body)


def test_timeout_then_next_call(connect):
    async def body():
        async with connect(TYPES) as s:
            start = time.monotonic()
            await s.error(P + "spin", {}, "timed out", timeout=60)
            elapsed = time.monotonic() - start
            assert 1.5 < elapsed < 15, f"spin with --timeout 2s ended after {elapsed:.1f}s"
            assert await s.ok("mcp_types.add", {"a": 20, "b": 22}) == 42

    run(body)


def test_trap_then_next_call(connect):
    async def body():
        async with connect(TYPES) as s:
            await s.error(P + "crash", {}, "trapped")
            assert await s.ok("mcp_types.add", {"a": 1, "b": 2}) == 3
            await s.error(P + "crash", {}, "trapped")
            assert await s.ok(P + "total", {"items": [item("x", 5)]}) == 5

    run(body)


def test_memory_limit_then_next_call(connect):
    async def body():
        async with connect(TYPES) as s:
            await s.error(P + "hog", {"mib": 200}, "memory limit")
            assert await s.ok("mcp_types.add", {"a": 1, "b": 2}) == 3
            assert await s.ok(P + "hog", {"mib": 16}) == 16

    run(body)


def test_guest_output_stays_off_the_transport(connect):
    # 2000 JSON-RPC-looking lines on the guest's stdout and stderr: none may reach the client.
    async def body():
        async with connect(TYPES) as s:
            assert await s.ok(P + "chatty", {"lines": 2000}, timeout=120) == 2000
            assert await s.ok("mcp_types.add", {"a": 1, "b": 2}) == 3
            assert await s.ok(P + "chatty", {"lines": 10}) == 10
            s.assert_clean()

    run(body)


def test_unknown_tool_is_a_protocol_error(connect):
    async def body():
        async with connect(TYPES) as s:
            with pytest.raises(McpError):
                await s.session.call_tool("mcp_types.types.nope", {})
            with pytest.raises(McpError):
                await s.session.call_tool("echo", {"value": MIXED})
            assert await s.ok("mcp_types.add", {"a": 1, "b": 2}) == 3

    run(body)


def test_several_components(connect):
    async def body():
        async with connect(TYPES, component("MCP_COUNTER"), component("MCP_DOCS")) as s:
            tools = await s.list_tools()
            expected = set(PARAMS) | {
                "mcp_counter.counters.counter.new",
                "mcp_counter.counters.counter.increment",
                "mcp_counter.counters.counter.get",
                "mcp_counter.counters.counter.fork",
                "mcp_counter.counters.counter.merge",
                "mcp_counter.counters.sum",
                "mcp_docs.greet",
                "mcp_docs.notes.reverse",
                "mcp_docs.notes.word-count",
            }
            assert set(tools) == expected, f"tool names: {sorted(tools)}"
            assert await s.ok("mcp_types.add", {"a": 1, "b": 2}) == 3
            assert await s.ok("mcp_docs.greet", {"name": "all"}) == "Hello, all!"
            handle = await s.ok("mcp_counter.counters.counter.new", {"start": 1})
            assert await s.ok("mcp_counter.counters.counter.get", {"self": handle}) == 1

    run(body)
