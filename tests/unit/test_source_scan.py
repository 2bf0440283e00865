from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pytest

from emulator.config.source_scan import (
    ClassSettings,
    Located,
    WorkerScan,
    relative_imports,
    scan_file,
    scan_source,
)

T = TypeVar("T")


def only_class(scan: WorkerScan, name: str = "MyContainer") -> ClassSettings:
    assert list(scan.classes) == [name]
    return scan.classes[name]


def messages(scan: WorkerScan) -> list[str]:
    return [w.message for w in scan.warnings]


def at(found: Located[T] | None) -> tuple[T, int] | None:
    """(value, line) of a setting read from source, or None when it is not written."""
    return None if found is None else (found.value, found.line)


SEED_STYLE = """\
import { Container, getRandom } from "@cloudflare/containers";

export class PythonExecutorContainer extends Container {
  defaultPort = 8000;           // FastAPI server port
  sleepAfter = '15m';          // Keep warm for 15 minutes
  envVars = {
    LOG_LEVEL: 'info',
    "WORKERS": "4",
  };
}

export default {
  async fetch(request, env) {
    const container = await getRandom(env.PYTHON_EXECUTOR, 10);
    return container.fetch(request);
  },
};
"""


def test_seed_style_class_and_get_random() -> None:
    scan = scan_source(SEED_STYLE)
    cls = only_class(scan, "PythonExecutorContainer")
    assert cls.line == 3
    assert cls.default_port is not None and cls.default_port.value == 8000
    assert cls.default_port.line == 4
    assert cls.sleep_after is not None and cls.sleep_after.value == "15m"
    assert cls.sleep_after.line == 5
    assert cls.env_vars is not None
    assert cls.env_vars.value == {"LOG_LEVEL": "info", "WORKERS": "4"}
    assert cls.env_vars.line == 6
    assert cls.entrypoint is None and cls.enable_internet is None and cls.ping_endpoint is None
    assert cls.required_ports is None
    count = scan.random_counts["PYTHON_EXECUTOR"]
    assert (count.value, count.line) == (10, 14)
    assert scan.warnings == ()


def test_every_property_with_modifiers_types_and_quotes() -> None:
    source = """\
class MyContainer extends Container<Env> {
  override defaultPort = 8080;
  sleepAfter: string = "2s"
  public envVars: Record<string, string> = { KEY: 'v', "K2": "v2", N: 3, B: true, T: `t`, };
  protected readonly entrypoint: string[] = ['python', "-m", `app`,];
  private enableInternet: boolean = false;
  pingEndpoint = `container/health`;
  requiredPorts: number[] = [8080, 9090];
}
"""
    cls = only_class(scan_source(source))
    assert cls.default_port is not None and cls.default_port.value == 8080
    assert cls.sleep_after is not None and cls.sleep_after.value == "2s"
    assert cls.env_vars is not None
    assert cls.env_vars.value == {"KEY": "v", "K2": "v2", "N": "3", "B": "true", "T": "t"}
    assert cls.entrypoint is not None and cls.entrypoint.value == ("python", "-m", "app")
    assert cls.enable_internet is not None and cls.enable_internet.value is False
    assert cls.ping_endpoint is not None and cls.ping_endpoint.value == "container/health"
    assert cls.required_ports is not None and cls.required_ports.value == (8080, 9090)
    lines = [
        cls.default_port.line,
        cls.sleep_after.line,
        cls.env_vars.line,
        cls.entrypoint.line,
        cls.enable_internet.line,
        cls.ping_endpoint.line,
        cls.required_ports.line,
    ]
    assert lines == [2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize(
    ("literal", "value"),
    [("900", 900), ("1.5", 1.5), ("'15m'", "15m"), ('"15m"', "15m"), ("`15m`", "15m")],
)
def test_sleep_after_literal_kinds(literal: str, value: object) -> None:
    cls = only_class(
        scan_source(f"class MyContainer extends Container {{ sleepAfter = {literal} }}")
    )
    assert cls.sleep_after is not None and cls.sleep_after.value == value


def test_commented_out_code_is_ignored() -> None:
    source = """\
// class Old extends Container { defaultPort = 1 }
/* class Older extends Container {
     defaultPort = 2
   } */
class MyContainer extends Container {
  // defaultPort = 3;
  /* sleepAfter = '1h'; */ defaultPort = 4; /* envVars = { A: 'b' } */
  sleepAfter = '5m' // sleepAfter = '6m'
}
// const c = getRandom(env.OLD, 99);
/* getRandom(env.OLDER, 98) */
const c = getRandom(env.MY, 7); // getRandom(env.MY, 50)
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert at(cls.default_port) == (4, 7)
    assert cls.sleep_after is not None and cls.sleep_after.value == "5m"
    assert cls.env_vars is None
    assert {b: c.value for b, c in scan.random_counts.items()} == {"MY": 7}


def test_strings_regexes_and_templates_do_not_confuse_braces() -> None:
    source = """\
class MyContainer extends Container {
  note = "} class Fake extends Container { defaultPort = 1";
  pattern = /[}{]"'/g;
  tmpl = `${"}"} // not a comment`;
  defaultPort = 8000;
  async fetch(request) {
    const sleepAfter = '1h';   // a local, not the field
    this.defaultPort = 9;      // not a literal field declaration
    return new Response(`}`);
  }
  configure() {
    const options = {
      defaultPort: 1,
    };
    sleepAfter = '1h';
  }
  envVars = { URL: "http://example.com/*not a comment*/" };
}
"""
    cls = only_class(scan_source(source))
    assert cls.default_port is not None and cls.default_port.value == 8000
    assert cls.sleep_after is None
    assert cls.env_vars is not None
    assert cls.env_vars.value == {"URL": "http://example.com/*not a comment*/"}


def test_non_literals_are_skipped_with_a_warning() -> None:
    source = """\
const SOME_CONST = '5m';
class MyContainer extends Container {
  sleepAfter = SOME_CONST;
  defaultPort = 8000 + 1;
  envVars = { A: env.SECRET };
  entrypoint = [...BASE, 'x'];
  pingEndpoint = `health/${VERSION}`;
  enableInternet = !OFFLINE;
  requiredPorts = [8000]
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert cls.sleep_after is None
    assert cls.default_port is None
    assert cls.env_vars is None
    assert cls.entrypoint is None
    assert cls.ping_endpoint is None
    assert cls.enable_internet is None
    assert cls.required_ports is not None and cls.required_ports.value == (8000,)
    assert [w.line for w in scan.warnings] == [3, 4, 5, 6, 7, 8]
    assert "MyContainer.sleepAfter = SOME_CONST is not a literal" in messages(scan)[0]
    assert "MyContainer.defaultPort = 8000 + 1 is not a literal" in messages(scan)[1]


def test_wrong_types_are_skipped_with_a_warning() -> None:
    source = """\
class MyContainer extends Container {
  defaultPort = '8000';
  enableInternet = 'no';
  entrypoint = 'python app.py';
  envVars = { NESTED: { A: 1 }, OK: 'yes' };
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert cls.default_port is None
    assert cls.enable_internet is None
    assert cls.entrypoint is None
    assert cls.env_vars is not None and cls.env_vars.value == {"OK": "yes"}
    assert len(scan.warnings) == 4
    assert "defaultPort should be a whole number" in messages(scan)[0]


def test_null_and_undefined_mean_unset_and_declarations_without_values() -> None:
    source = """\
class MyContainer extends Container {
  declare defaultPort: number;
  entrypoint = undefined;
  envVars = null;
  sleepAfter?: string
  pingEndpoint!: string;
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert (cls.default_port, cls.entrypoint, cls.env_vars, cls.sleep_after) == (None,) * 4
    assert cls.ping_endpoint is None
    assert scan.warnings == ()


def test_null_or_undefined_clears_what_a_field_or_a_base_class_set() -> None:
    source = """\
class Base extends Container {
  defaultPort = 8000;
  sleepAfter = '5m';
  pingEndpoint = 'health';
}
class Mid extends Base { defaultPort = undefined; }
export class MyContainer extends Mid {
  sleepAfter = '1m';
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sleepAfter = null;
  }
}
"""
    scan = scan_source(source)
    cls = scan.classes["MyContainer"]
    # Cleared in Mid and in the constructor: the library's defaults, not Base's values.
    assert (cls.default_port, cls.sleep_after) == (None, None)
    assert at(cls.ping_endpoint) == ("health", 4)  # neither cleared nor written: inherited
    assert cls.cleared == {"default_port", "sleep_after"}
    assert scan.warnings == ()


def test_multiline_values_and_as_const() -> None:
    source = """\
class MyContainer extends Container {
  entrypoint = [
    'uvicorn',  // the server
    'app:app',
  ] as const;
  envVars: {
    A: string;
  } = {
    A: 'x',
  }
  defaultPort = 8000
}
"""
    cls = only_class(scan_source(source))
    assert cls.entrypoint is not None and cls.entrypoint.value == ("uvicorn", "app:app")
    assert cls.env_vars is not None and cls.env_vars.value == {"A": "x"}
    assert cls.env_vars.line == 6
    assert cls.default_port is not None and cls.default_port.line == 11


def test_only_container_subclasses_are_read() -> None:
    source = """\
class Helper { defaultPort = 1; }
class Mine extends DurableObject { defaultPort = 2; }
export default class Sub extends containers.Container<{ A: string }> implements Foo {
  defaultPort = 3;
}
class ContainerLike extends ContainerBase { defaultPort = 4; }
"""
    scan = scan_source(source)
    assert list(scan.classes) == ["Sub"]
    port = scan.classes["Sub"].default_port
    assert port is not None and port.value == 3


def test_static_fields_are_not_the_instance_setting() -> None:
    scan = scan_source("class MyContainer extends Container { static defaultPort = 8000 }")
    assert only_class(scan).default_port is None
    assert "static" in messages(scan)[0]


def test_get_random_forms() -> None:
    source = """\
const a = getRandom(env.A, 5);
const b = await getRandom(this.env.B, 8);
const c = getRandom(env.C);
const d = getRandom(c.env.D, 2,);
const e = getRandom<MyContainer>(env["E"], 4);
const f = getRandom(
  this.env.F,
  6,
);
"""
    scan = scan_source(source)
    found = {b: (c.value, c.line) for b, c in scan.random_counts.items()}
    assert found == {"A": (5, 1), "B": (8, 2), "C": (3, 3), "D": (2, 4), "E": (4, 5), "F": (6, 6)}
    assert scan.warnings == ()


def test_get_random_disagreeing_counts_take_the_largest_with_a_warning() -> None:
    source = """\
getRandom(env.X, 8);
getRandom(env.X, 10);
getRandom(env.X, 4);
"""
    scan = scan_source(source)
    assert (scan.random_counts["X"].value, scan.random_counts["X"].line) == (10, 2)
    assert len(scan.warnings) == 2
    assert "emu uses the larger, 10" in messages(scan)[0]


def test_get_random_with_a_non_literal_count_is_ignored_with_a_warning() -> None:
    scan = scan_source("getRandom(env.X, COUNT);\ngetRandom(env.Y, 0);\n")
    assert dict(scan.random_counts) == {}
    assert [w.line for w in scan.warnings] == [1, 2]


def test_get_random_definition_in_a_bundle_is_not_a_call() -> None:
    source = "async function getRandom(binding, instances = 3) { return 1 }\ngetRandom(env.X, 2);\n"
    scan = scan_source(source)
    assert {b: c.value for b, c in scan.random_counts.items()} == {"X": 2}
    assert scan.warnings == ()


def test_get_container_is_ignored() -> None:
    scan = scan_source("const c = getContainer(env.X, 'session-1');")
    assert dict(scan.random_counts) == {} and scan.warnings == ()


def test_relative_imports_skip_comments_and_packages() -> None:
    source = """\
import { Container } from "@cloudflare/containers";
import { A } from './a';
export { B } from "../b.js";
// import { C } from './c';
const d = await import('./d');
import './side-effect';
"""
    assert relative_imports(source) == ["./a", "../b.js", "./d", "./side-effect"]


def test_scan_file_follows_relative_imports(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "workflows").mkdir(parents=True)
    (src / "index.ts").write_text(
        'export { PythonExecutorContainer } from "./container";\n'
        'import { run } from "./workflows/pdf-parser.js";\n'
        'import { missing } from "./missing";\n'
    )
    (src / "container.ts").write_text(
        "export class PythonExecutorContainer extends Container {\n  defaultPort = 8000;\n}\n"
    )
    (src / "workflows" / "pdf-parser.ts").write_text(
        "\n\nconst c = await getRandom(this.env.PYTHON_EXECUTOR, 10);\n"
    )
    scan = scan_file(src / "index.ts")
    cls = scan.classes["PythonExecutorContainer"]
    assert cls.path == src / "container.ts"
    assert cls.default_port is not None and cls.default_port.path == src / "container.ts"
    count = scan.random_counts["PYTHON_EXECUTOR"]
    assert (count.value, count.line, count.path) == (10, 3, src / "workflows" / "pdf-parser.ts")
    assert set(scan.files) == {
        src / "index.ts",
        src / "container.ts",
        src / "workflows" / "pdf-parser.ts",
    }

    alone = scan_file(src / "index.ts", follow_imports=False)
    assert dict(alone.classes) == {} and dict(alone.random_counts) == {}


def test_scan_file_raises_for_a_missing_main(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        scan_file(tmp_path / "nope.ts")


def test_constructor_assignments_are_read() -> None:
    source = """\
export class MyContainer extends Container {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    this.defaultPort = 8080
    this.sleepAfter = "2m";
    this.envVars = {
      A: 'x',
    };
  }
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert at(cls.default_port) == (8080, 4)
    assert at(cls.sleep_after) == ("2m", 5)
    assert cls.env_vars is not None and cls.env_vars.value == {"A": "x"}
    assert scan.warnings == ()


def test_a_constructor_assignment_wins_over_the_field() -> None:
    source = """\
class MyContainer extends Container<Env> {
  defaultPort = 8000;
  sleepAfter = '15m';
  private constructor(ctx: DurableObjectState, env: Env);
  private constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.defaultPort = 8080;
  }
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert at(cls.default_port) == (8080, 7)
    assert at(cls.sleep_after) == ("15m", 3)
    assert scan.warnings == ()  # not "set twice": that is the constructor's job


def test_assignments_in_other_methods_are_not_settings() -> None:
    source = """\
class MyContainer extends Container {
  defaultPort = 8000;
  async fetch(request: Request) {
    this.defaultPort = 9;
    return super.fetch(request);
  }
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sleepAfter = '3m';
  }
  override onStart() { this.sleepAfter = '1h'; }
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert cls.default_port is not None and cls.default_port.value == 8000
    assert cls.sleep_after is not None and cls.sleep_after.value == "3m"
    assert scan.warnings == ()


def test_nested_or_computed_constructor_assignments_are_skipped_with_a_warning() -> None:
    source = """\
class MyContainer extends Container {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    if (env.DEBUG) { this.envVars = { DEBUG: '1' }; }
    if (env.FAST) this.sleepAfter = '1m';
    if (env.SLOW)
      this.pingEndpoint = 'ping';
    else this.enableInternet = false;
    ctx.blockConcurrencyWhile(async () => { this.entrypoint = ['x']; });
    this.defaultPort = env.PORT;
    this.requiredPorts = [8080];
  }
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert (cls.env_vars, cls.sleep_after, cls.ping_endpoint, cls.enable_internet) == (None,) * 4
    assert (cls.entrypoint, cls.default_port) == (None, None)
    assert cls.required_ports is not None and cls.required_ports.value == (8080,)
    assert [w.line for w in scan.warnings] == [4, 5, 7, 8, 9, 10]
    assert all("inside a block" in m for m in messages(scan)[:5])
    assert "MyContainer.defaultPort = env.PORT is not a literal" in messages(scan)[5]


def test_statements_after_do_while_and_increments_are_top_level() -> None:
    source = """\
class MyContainer extends Container {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    let i = 0
    do { i++ } while (i < 3)
    this.sleepAfter = '1m'
    i++
    this.defaultPort = 8080
  }
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert at(cls.sleep_after) == ("1m", 6)
    assert cls.default_port is not None and cls.default_port.value == 8080
    assert scan.warnings == ()


def test_a_subclass_of_a_subclass_inherits_and_overrides() -> None:
    source = """\
export class Executor extends Mid {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.pingEndpoint = 'ready';
  }
}
class Mid extends Base { sleepAfter = '2s'; }
class Base extends Container {
  defaultPort = 8000;
  sleepAfter = "5m";
  pingEndpoint = 'health';
}
"""
    scan = scan_source(source)
    assert list(scan.classes) == ["Executor", "Mid", "Base"]
    executor = scan.classes["Executor"]
    assert executor.line == 1
    assert executor.default_port is not None
    assert (executor.default_port.value, executor.default_port.line) == (8000, 9)
    assert executor.sleep_after is not None
    assert (executor.sleep_after.value, executor.sleep_after.line) == ("2s", 7)
    assert executor.ping_endpoint is not None
    assert (executor.ping_endpoint.value, executor.ping_endpoint.line) == ("ready", 4)
    base = scan.classes["Base"]
    assert base.sleep_after is not None and base.sleep_after.value == "5m"
    assert base.ping_endpoint is not None and base.ping_endpoint.value == "health"
    assert scan.warnings == ()


def test_a_base_class_in_an_imported_file(tmp_path: Path) -> None:
    (tmp_path / "index.ts").write_text(
        'import { Base } from "./base";\n'
        "\n"
        "export class Executor extends Base {\n"
        "  sleepAfter = '2s';\n"
        "  envVars = { A: env.SECRET };\n"
        "}\n"
    )
    (tmp_path / "base.ts").write_text(
        "export class Base extends Container {\n  defaultPort = 8000;\n  sleepAfter = '5m';\n}\n"
    )
    scan = scan_file(tmp_path / "index.ts")
    executor = scan.classes["Executor"]
    assert executor.path == tmp_path / "index.ts"
    assert executor.default_port is not None
    assert (executor.default_port.value, executor.default_port.line) == (8000, 2)
    assert executor.default_port.path == tmp_path / "base.ts"
    assert executor.sleep_after is not None
    assert (executor.sleep_after.value, executor.sleep_after.path) == ("2s", tmp_path / "index.ts")
    # Executor's warning is held back until Base is known to be a Container class, then given once.
    assert [(w.path, w.line) for w in scan.warnings] == [(tmp_path / "index.ts", 5)]

    alone = scan_file(tmp_path / "index.ts", follow_imports=False)
    assert dict(alone.classes) == {} and alone.warnings == ()


def test_cycles_and_unknown_bases_are_not_container_classes() -> None:
    source = """\
class A extends B { defaultPort = 1; }
class B extends A { defaultPort = 2; }
class Self extends Self { defaultPort = 3; }
class Worker extends WorkerEntrypoint { sleepAfter = computed(); }
class Sub extends Worker { defaultPort = 4; }
class Leaf extends A { defaultPort = 5; }
class MyContainer extends Container { defaultPort = 6; }
class Mine extends MyContainer {}
"""
    scan = scan_source(source)
    assert list(scan.classes) == ["MyContainer", "Mine"]
    port = scan.classes["Mine"].default_port
    assert port is not None and (port.value, port.line) == (6, 7)
    assert scan.warnings == ()  # nothing about the classes that are not Container classes


# Sources the hand-written lexer misread; each is read whole now that the scan parses.


def test_generics_in_get_random_and_a_type_assertion() -> None:
    source = """\
class MyContainer<E extends Env = Env> extends Container<E> {
  defaultPort = <number>8000;
}
const a = getRandom<ReturnType<() => MyContainer>>(env.A, 6);
const b = await getRandom<MyContainer>(env.B, 2);
"""
    scan = scan_source(source)
    assert at(only_class(scan).default_port) == (8000, 2)
    assert {b: (c.value, c.line) for b, c in scan.random_counts.items()} == {
        "A": (6, 4),
        "B": (2, 5),
    }
    assert scan.warnings == ()


def test_decorators() -> None:
    source = """\
@registered({ name: "x" })
export class MyContainer extends Container {
  @tracked defaultPort = 8000;
  @log("}") sleepAfter = '5m';
  @deco({ a: [1, 2] })
  envVars = { A: 'b' };
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert cls.line == 2
    assert at(cls.default_port) == (8000, 3)
    assert at(cls.sleep_after) == ("5m", 4)
    assert cls.env_vars is not None and at(cls.env_vars) == ({"A": "b"}, 6)
    assert scan.warnings == ()


def test_template_literals_holding_braces() -> None:
    source = """\
class MyContainer extends Container {
  banner = `${ {a: `}`}.a.replace(/}/g, '') }}`;
  html = `<div>${items.map((i) => `<b>${i}}</b>`).join("")}</div>`;
  pingEndpoint = `health}`;
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const note = `${env.A ?? "}"}}{`;
    this.defaultPort = 8080;
  }
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert at(cls.ping_endpoint) == ("health}", 4)
    assert at(cls.default_port) == (8080, 8)
    assert scan.warnings == ()


def test_a_regex_literal_after_a_parenthesis() -> None:
    source = """\
class MyContainer extends Container {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    if (env.RAW) /`}/.test(env.RAW);
    this.defaultPort = 8080;
  }
  sleepAfter = '3m';
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert at(cls.default_port) == (8080, 5)
    assert at(cls.sleep_after) == ("3m", 7)
    assert scan.warnings == ()


def test_satisfies_as_const_and_parentheses() -> None:
    source = """\
class MyContainer extends Container {
  defaultPort = 8000 satisfies number;
  envVars = { A: 'x' } satisfies Record<string, string>;
  entrypoint = ['a', 'b'] as const satisfies readonly string[];
  sleepAfter = ('5m' satisfies string);
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert at(cls.default_port) == (8000, 2)
    assert cls.env_vars is not None and cls.env_vars.value == {"A": "x"}
    assert at(cls.entrypoint) == (("a", "b"), 4)
    assert at(cls.sleep_after) == ("5m", 5)
    assert scan.warnings == ()


def test_a_class_expression_is_named_by_its_variable() -> None:
    source = """\
export const MyContainer = class extends Container {
  defaultPort = 8000;
  sleepAfter = '1m';
};
export const Named = class Inner extends MyContainer { sleepAfter = '2m' };
"""
    scan = scan_source(source)
    assert list(scan.classes) == ["MyContainer", "Named"]
    assert at(scan.classes["MyContainer"].default_port) == (8000, 2)
    assert at(scan.classes["Named"].default_port) == (8000, 2)
    assert at(scan.classes["Named"].sleep_after) == ("2m", 5)
    assert scan.warnings == ()


def test_escapes_numbers_and_keys_are_read_as_javascript_reads_them() -> None:
    source = """\
class MyContainer extends Container {
  requiredPorts = [8080.0, 0x1F90, 8_082];
  envVars = { 'A-B': "x\\u0041\\x41\\u{1F600}\\n", 7: 'seven', C: null, D: 1.5 };
  pingEndpoint = "a\\
b";
}
"""
    cls = only_class(scan_source(source))
    assert cls.required_ports is not None and cls.required_ports.value == (8080, 8080, 8082)
    assert cls.env_vars is not None
    assert cls.env_vars.value == {"A-B": "xAA\U0001f600\n", "7": "seven", "C": "null", "D": "1.5"}
    assert cls.ping_endpoint is not None and cls.ping_endpoint.value == "ab"


def test_a_class_that_does_not_parse_is_read_with_a_warning() -> None:
    source = """\
class MyContainer extends Container {
  defaultPort = 8000;
  sleepAfter = ;
  pingEndpoint = 'ok';
}
"""
    scan = scan_source(source)
    cls = only_class(scan)
    assert at(cls.default_port) == (8000, 2)
    assert scan.warnings[0].line == 1
    assert "line 3 does not parse" in messages(scan)[0]


def test_jsx_in_a_jsx_file(tmp_path: Path) -> None:
    main = tmp_path / "index.jsx"
    main.write_text(
        "const page = () => <div className={`a}`}>{'}'}</div>;\n"
        "export class MyContainer extends Container { defaultPort = 8000 }\n"
    )
    scan = scan_file(main)
    assert at(only_class(scan).default_port) == (8000, 2)
    assert scan.warnings == ()


def test_many_classes_and_a_long_constructor() -> None:
    # Linear: about 0.4 s on the project's machine. No time is asserted (it is shared).
    classes = "".join(
        f"class C{k} extends Container {{ defaultPort = {k}; sleepAfter = '{k}s' }}\n"
        for k in range(5000)
    )
    body = "".join(f"    const v{k} = {{ a: [{k}, `}}`], b: /{{/ }};\n" for k in range(5000))
    source = (
        classes + "class MyContainer extends Container {\n  constructor() {\n    super();\n"
        f"{body}    this.defaultPort = 1;\n  }}\n}}\n"
    )
    scan = scan_source(source)
    assert len(scan.classes) == 5001
    assert at(scan.classes["C4999"].default_port) == (4999, 5000)
    assert at(scan.classes["MyContainer"].default_port) == (1, 5000 + 4 + 5000)
    assert scan.warnings == ()
