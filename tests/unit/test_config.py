from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from emulator.config import (
    DEFAULT,
    INSTANCE_TYPES,
    ClassConfig,
    Config,
    ConfigError,
    InstanceType,
    Overrides,
    as_json,
    default_port,
    describe,
    find_config,
    load_config,
)

SEED = Path(__file__).parent / "data" / "seed"


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    """A copy of the seed-style project (wrangler.jsonc, src/index.ts, container/Dockerfile)."""
    project = tmp_path / "research-api"
    shutil.copytree(SEED, project)
    return project


def only(config: Config) -> ClassConfig:
    assert len(config.classes) == 1
    return config.classes[0]


def origins(cls: ClassConfig) -> dict[str, str]:
    return {key: str(origin) for key, origin in cls.origins.items()}


def error(project: Path, overrides: Overrides = Overrides()) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides, cwd=project)
    return caught.value


SOURCE = """\
import { Container, getRandom } from "@cloudflare/containers";
export class MyContainer extends Container {
  defaultPort = 8080;
}
export default {
  fetch(request, env) { return getRandom(env.MY_CONTAINER, 2).then((c) => c.fetch(request)); },
};
"""


def project(
    root: Path,
    container: dict[str, object] | None = None,
    *,
    source: str | None = SOURCE,
    top: dict[str, object] | None = None,
    dockerfile: str | None = "Dockerfile",
) -> Path:
    """A minimal valid JSON project in `root`; `container`/`top` add or replace fields."""
    entry: dict[str, object] = {"class_name": "MyContainer", "image": "./Dockerfile"}
    entry.update(container or {})
    data: dict[str, object] = {
        "name": "app",
        "main": "src/index.ts",
        "durable_objects": {"bindings": [{"name": "MY_CONTAINER", "class_name": "MyContainer"}]},
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["MyContainer"]}],
        "containers": [entry],
    }
    data.update(top or {})
    root.mkdir(parents=True, exist_ok=True)
    (root / "wrangler.json").write_text(json.dumps(data, indent=2))
    if dockerfile is not None:
        (root / dockerfile).parent.mkdir(parents=True, exist_ok=True)
        (root / dockerfile).write_text("FROM nginx:1.27\n")
    if source is not None:
        (root / "src").mkdir(exist_ok=True)
        (root / "src" / "index.ts").write_text(source)
    return root


# --- the seed project ------------------------------------------------------------------------


def test_seed_project_jsonc(seed: Path) -> None:
    config = load_config(None, cwd=seed)
    assert config.path == seed / "wrangler.jsonc"
    assert config.project_dir == seed
    assert config.worker_name == "research-api"
    assert config.main == seed / "src" / "index.ts"
    cls = only(config)
    assert cls.class_name == "PythonExecutorContainer"
    assert cls.binding == "PYTHON_EXECUTOR"
    assert cls.name == "python-executor"
    assert cls.image == "./container/Dockerfile"
    assert cls.dockerfile == seed / "container" / "Dockerfile"
    assert cls.build_context == seed / "container"
    assert cls.image_vars == {}
    assert cls.max_instances == 10
    assert cls.instance_type == InstanceType("standard-2", 1.0, 6144, 12000)
    assert cls.default_port == 8000
    assert cls.required_ports == ()
    assert cls.sleep_after == 900.0
    assert cls.env_vars == {"LOG_LEVEL": "info", "UVICORN_WORKERS": "4"}
    assert cls.entrypoint is None
    assert cls.enable_internet is True
    assert cls.ping_endpoint == "ping"
    assert cls.instances == 10
    assert (config.host, config.port, config.seed) == ("127.0.0.1", 8787, None)
    assert (config.start_timeout, config.stop_grace) == (20.0, 900.0)
    assert config.warnings == ()


def test_seed_project_origins(seed: Path) -> None:
    config = load_config(None, cwd=seed)
    assert origins(only(config)) == {
        "class_name": "wrangler.jsonc:38",
        "binding": "wrangler.jsonc:22",
        "name": "wrangler.jsonc:37",
        "image": "wrangler.jsonc:39",
        "dockerfile": "wrangler.jsonc:39",
        "build_context": "default",
        "image_vars": "default",
        "max_instances": "wrangler.jsonc:42",
        "instance_type": "wrangler.jsonc:43",
        "default_port": "src/index.ts:8",
        "required_ports": "default",
        "sleep_after": "src/index.ts:9",
        "env_vars": "src/index.ts:10",
        "entrypoint": "default",
        "enable_internet": "default",
        "ping_endpoint": "default",
        "instances": "src/index.ts:23",
    }
    assert {k: str(v) for k, v in config.origins.items()} == {
        "env": "default",
        "worker_name": "wrangler.jsonc:7",
        "main": "wrangler.jsonc:8",
        "host": "default",
        "port": "default",
        "seed": "default",
        "start_timeout": "default",
        "stop_grace": "default",
        "header_timeout": "default",
        "keepalive_timeout": "default",
        "max_connections": "default",
    }


def test_origins_are_relative_to_cwd(seed: Path) -> None:
    config = load_config(Path("research-api/wrangler.jsonc"), cwd=seed.parent)
    assert origins(only(config))["max_instances"] == "research-api/wrangler.jsonc:42"
    assert origins(only(config))["sleep_after"] == "research-api/src/index.ts:9"


def test_seed_project_describe_and_json(seed: Path) -> None:
    config = load_config(None, cwd=seed)
    text = describe(config)
    assert "class PythonExecutorContainer" in text
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ")}
    assert lines["max_instances"] == ["max_instances", "10", "wrangler.jsonc:42"]
    assert lines["sleep_after"] == ["sleep_after", "15m", "src/index.ts:9"]
    assert lines["instances"] == ["instances", "10", "src/index.ts:23"]
    assert lines["port"] == ["port", "8787", "default"]
    assert lines["instance_type"][1] == "standard-2"
    assert "warnings" not in text

    data = as_json(config)
    assert json.loads(json.dumps(data)) == data
    settings = data["classes"][0]["settings"]
    assert settings["max_instances"] == {"value": 10, "origin": "wrangler.jsonc:42"}
    assert settings["instance_type"]["value"] == {
        "name": "standard-2",
        "vcpu": 1.0,
        "memory_mib": 6144,
        "disk_mb": 12000,
    }
    assert settings["sleep_after"] == {"value": 900.0, "origin": "src/index.ts:9"}
    assert settings["entrypoint"] == {"value": None, "origin": "default"}
    assert data["settings"]["stop_grace"] == {"value": 900.0, "origin": "default"}
    assert data["warnings"] == []


# --- finding and parsing ---------------------------------------------------------------------


def test_find_prefers_json_then_jsonc_then_toml(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "wrangler.jsonc").write_text("{ broken")
    (root / "wrangler.toml").write_text("broken =")
    assert load_config(None, cwd=root).path == root / "wrangler.json"
    (root / "wrangler.json").unlink()
    with pytest.raises(ConfigError, match=r"^wrangler\.jsonc:1:"):
        load_config(None, cwd=root)
    (root / "wrangler.jsonc").unlink()
    with pytest.raises(ConfigError, match=r"^wrangler\.toml:1:"):
        load_config(None, cwd=root)


def test_no_config_names_folder_and_file_names(tmp_path: Path) -> None:
    caught = error(tmp_path)
    assert str(tmp_path) in str(caught)
    for name in ("wrangler.json", "wrangler.jsonc", "wrangler.toml"):
        assert name in str(caught)


def test_explicit_path_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(Path("other.jsonc"), cwd=tmp_path)
    root = project(tmp_path / "app")
    assert load_config(Path("app"), cwd=tmp_path).path == root / "wrangler.json"


def test_broken_jsonc_gives_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "wrangler.jsonc").write_text('{\n  // comment\n  "name": "x",\n  "main": ,\n}\n')
    caught = error(tmp_path)
    assert caught.where == "wrangler.jsonc:4:11"
    assert "invalid JSONC" in caught.message
    assert "Traceback" not in str(caught)


def test_missing_comma_says_so(tmp_path: Path) -> None:
    (tmp_path / "wrangler.jsonc").write_text('{\n  "name": "x"\n  "main": "src/index.ts",\n}\n')
    caught = error(tmp_path)
    assert caught.where == "wrangler.jsonc:3:3"
    assert caught.message == "invalid JSONC: unexpected '\"': is a comma missing before it?"


def test_broken_toml_gives_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "wrangler.toml").write_text('name = "x"\nmain = \n')
    caught = error(tmp_path)
    assert caught.where == "wrangler.toml:2:8"
    assert "invalid TOML" in caught.message


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    (tmp_path / "wrangler.json").write_text("[1, 2]")
    assert "top level must be an object" in str(error(tmp_path))


def test_jsonc_comments_trailing_commas_and_field_lines(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "wrangler.json").unlink()
    (tmp_path / "wrangler.jsonc").write_text(
        textwrap.dedent(
            """\
            // leading comment with "containers": [ in it
            {
              name: 'app', /* "max_instances": 99 */
              "main": "src/index.ts",
              "durable_objects": { "bindings": [
                { "name": "MY_CONTAINER", "class_name": "MyContainer" },
              ] },
              "migrations": [{ "tag": "v1", "new_sqlite_classes": ["MyContainer"] }],
              "containers": [
                {
                  "class_name": "MyContainer",
                  "image": "./Dockerfile",
                  "image_vars": { "PY": 3.12, "DEBUG": false, "N": 2, },
                  "max_instances": 4, // four
                },
              ],
            }
            """
        )
    )
    config = load_config(None, cwd=tmp_path)
    cls = only(config)
    assert cls.max_instances == 4
    assert cls.image_vars == {"PY": "3.12", "DEBUG": "false", "N": "2"}
    assert origins(cls)["max_instances"] == "wrangler.jsonc:14"
    assert origins(cls)["image_vars"] == "wrangler.jsonc:13"
    assert origins(cls)["binding"] == "wrangler.jsonc:6"
    assert str(config.origins["worker_name"]) == "wrangler.jsonc:3"


def test_toml_config(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "wrangler.json").unlink()
    (tmp_path / "wrangler.toml").write_text(
        textwrap.dedent(
            """\
            name = "app"
            main = "src/index.ts"

            [[durable_objects.bindings]]
            name = "MY_CONTAINER"
            class_name = "MyContainer"

            [[migrations]]
            tag = "v1"
            new_sqlite_classes = ["MyContainer"]

            [[containers]]
            class_name = "MyContainer"
            image = "./Dockerfile"
            max_instances = 5
            instance_type = { vcpu = 2, memory_mib = 8192, disk_mb = 10000 }

            [containers.image_vars]
            VERSION = "1.2"
            """
        )
    )
    config = load_config(None, cwd=tmp_path)
    cls = only(config)
    assert cls.max_instances == 5
    assert cls.instance_type == InstanceType("custom", 2.0, 8192, 10000)
    assert cls.image_vars == {"VERSION": "1.2"}
    assert cls.binding == "MY_CONTAINER"
    assert origins(cls)["max_instances"] == "wrangler.toml:15"
    assert origins(cls)["instance_type"] == "wrangler.toml:16"
    assert origins(cls)["image_vars"] == "wrangler.toml:18"
    assert origins(cls)["binding"] == "wrangler.toml:5"
    assert origins(cls)["class_name"] == "wrangler.toml:13"
    assert str(config.origins["main"]) == "wrangler.toml:2"


def test_toml_error_points_at_the_field_line(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "wrangler.json").unlink()
    (tmp_path / "wrangler.toml").write_text(
        'name = "app"\n\n[[durable_objects.bindings]]\nname = "B"\nclass_name = "MyContainer"\n\n'
        '[[containers]]\nclass_name = "MyContainer"\nimage = "./Dockerfile"\n'
        'max_instances = "ten"\n'
    )
    caught = error(tmp_path)
    assert caught.where == "wrangler.toml:10"
    assert caught.field_name == "containers[0].max_instances"


# --- containers[] fields ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("lite", InstanceType("lite", 0.0625, 256, 2000)),
        ("basic", InstanceType("basic", 0.25, 1024, 4000)),
        ("standard-1", InstanceType("standard-1", 0.5, 4096, 8000)),
        ("standard-2", InstanceType("standard-2", 1.0, 6144, 12000)),
        ("standard-3", InstanceType("standard-3", 2.0, 8192, 16000)),
        ("standard-4", InstanceType("standard-4", 4.0, 12288, 20000)),
        ("dev", InstanceType("lite", 0.0625, 256, 2000)),
        ("standard", InstanceType("standard-1", 0.5, 4096, 8000)),
    ],
)
def test_instance_types_and_aliases(tmp_path: Path, written: str, expected: InstanceType) -> None:
    cls = only(load_config(None, cwd=project(tmp_path, {"instance_type": written})))
    assert cls.instance_type == expected
    assert INSTANCE_TYPES[expected.name] == expected


def test_default_instance_type_is_lite(tmp_path: Path) -> None:
    cls = only(load_config(None, cwd=project(tmp_path)))
    assert cls.instance_type.name == "lite"
    assert cls.origins["instance_type"] == DEFAULT


@pytest.mark.parametrize("written", ["Standard-2", "standard-5", "large", ""])
def test_unknown_instance_type_lists_allowed_names(tmp_path: Path, written: str) -> None:
    caught = error(project(tmp_path, {"instance_type": written}))
    assert caught.field_name == "containers[0].instance_type"
    for name in ("lite", "basic", "standard-1", "standard-2", "standard-3", "standard-4", "dev"):
        assert name in caught.message


def test_custom_instance_type_defaults(tmp_path: Path) -> None:
    cls = only(load_config(None, cwd=project(tmp_path, {"instance_type": {"memory_mib": 512}})))
    assert cls.instance_type == InstanceType("custom", 0.0625, 512, 2000)
    cls = only(load_config(None, cwd=project(tmp_path, {"instance_type": {}})))
    assert cls.instance_type == InstanceType("custom", 0.0625, 256, 2000)


@pytest.mark.parametrize(
    "custom",
    [
        {"vcpu": 4, "memory_mib": 12288, "disk_mb": 20000},
        {"vcpu": 0.0625, "memory_mib": 192, "disk_mb": 1},
        {"vcpu": 1, "memory_mib": 3072},
        {"vcpu": 0.5, "memory_mib": 1536},
    ],
)
def test_custom_instance_type_at_the_limits(tmp_path: Path, custom: dict[str, object]) -> None:
    cls = only(load_config(None, cwd=project(tmp_path, {"instance_type": custom})))
    assert cls.instance_type.name == "custom"


@pytest.mark.parametrize(
    ("custom", "named"),
    [
        ({"vcpu": 0.05, "memory_mib": 512}, ["vcpu 0.05 is outside 1/16"]),
        ({"vcpu": 5, "memory_mib": 12288}, ["vcpu 5 is outside", "under 3 GiB per vCPU"]),
        ({"vcpu": 1, "memory_mib": 16384}, ["memory_mib 16384 is over 12 GiB"]),
        ({"vcpu": 2, "memory_mib": 4096}, ["memory_mib 4096 is under 3 GiB per vCPU (6144"]),
        ({"disk_mb": 30000}, ["disk_mb 30000 is over 20 GB"]),
        (
            {"vcpu": 8, "memory_mib": 20000, "disk_mb": 25000},
            ["vcpu 8 is outside", "memory_mib 20000 is over", "under 3 GiB", "disk_mb 25000"],
        ),
        ({"vcpu": "1"}, ["vcpu must be a number"]),
        ({"vcpu": True}, ["vcpu must be a number"]),
        ({"memory_mib": 512.5, "disk_mb": "2GB"}, ["memory_mib must be a whole", "disk_mb must"]),
    ],
)
def test_custom_instance_type_names_each_violated_rule(
    tmp_path: Path, custom: dict[str, object], named: list[str]
) -> None:
    caught = error(project(tmp_path, {"instance_type": custom}))
    assert caught.field_name == "containers[0].instance_type"
    for fragment in named:
        assert fragment in caught.message
    assert caught.message.count(";") == len(named) - 1


def test_custom_instance_type_unknown_key(tmp_path: Path) -> None:
    caught = error(project(tmp_path, {"instance_type": {"vcpu": 1, "memory": 4096}}))
    assert "unknown field memory" in caught.message
    assert "vcpu, memory_mib and disk_mb" in caught.message


@pytest.mark.parametrize("value", [1, 20, 1000])
def test_max_instances_accepted(tmp_path: Path, value: int) -> None:
    assert only(
        load_config(None, cwd=project(tmp_path, {"max_instances": value}))
    ).max_instances == (value)


def test_max_instances_default(tmp_path: Path) -> None:
    cls = only(load_config(None, cwd=project(tmp_path)))
    assert cls.max_instances == 20 and cls.origins["max_instances"] == DEFAULT


@pytest.mark.parametrize("value", [0, -1, 2.5, 10.0, "10", True, None, [3]])
def test_max_instances_refused(tmp_path: Path, value: object) -> None:
    caught = error(project(tmp_path, {"max_instances": value}))
    assert caught.field_name == "containers[0].max_instances"
    wanted = "must not be null" if value is None else "whole number of at least 1"
    assert wanted in caught.message
    assert caught.where.startswith("wrangler.json:")


def test_required_fields(tmp_path: Path) -> None:
    root = project(tmp_path, {"image": None})
    data = json.loads((root / "wrangler.json").read_text())
    del data["containers"][0]["image"]
    (root / "wrangler.json").write_text(json.dumps(data))
    assert error(root).field_name == "containers[0].image"
    del data["containers"][0]["class_name"]
    (root / "wrangler.json").write_text(json.dumps(data))
    assert error(root).field_name == "containers[0].class_name"
    data["containers"] = []
    (root / "wrangler.json").write_text(json.dumps(data))
    assert error(root).field_name == "containers"
    del data["containers"]
    (root / "wrangler.json").write_text(json.dumps(data))
    assert "missing" in error(root).message


def test_name_defaults_to_worker_and_class(tmp_path: Path) -> None:
    cls = only(load_config(None, cwd=project(tmp_path)))
    assert cls.name == "app-MyContainer" and cls.origins["name"] == DEFAULT
    assert error(project(tmp_path, top={"name": None})).field_name == "name"


def test_worker_name_default(tmp_path: Path) -> None:
    root = project(tmp_path)
    data = json.loads((root / "wrangler.json").read_text())
    del data["name"]
    (root / "wrangler.json").write_text(json.dumps(data))
    config = load_config(None, cwd=root)
    assert config.worker_name == "worker"
    assert only(config).name == "worker-MyContainer"


def test_image_reference(tmp_path: Path) -> None:
    for ref in ("nginx:1.22", "registry.example.com:5000/team/x:tag", "docker.io/library/nginx"):
        cls = only(load_config(None, cwd=project(tmp_path, {"image": ref}, dockerfile=None)))
        assert (cls.image, cls.dockerfile, cls.build_context) == (ref, None, None)


@pytest.mark.parametrize(
    "image", ["./container/Dockerfile", "container/Dockerfile", "../Dockerfile", "Dockerfile.dev"]
)
def test_missing_dockerfile(tmp_path: Path, image: str) -> None:
    caught = error(project(tmp_path / "p", {"image": image}, dockerfile=None))
    assert caught.field_name == "containers[0].image"
    assert "not found" in caught.message


def test_dockerfile_without_dot_slash_and_custom_context(tmp_path: Path) -> None:
    root = project(tmp_path, {"image": "docker/api.Dockerfile", "image_build_context": "."})
    (root / "docker").mkdir()
    (root / "docker" / "api.Dockerfile").write_text("FROM scratch\n")
    cls = only(load_config(None, cwd=root))
    assert cls.dockerfile == root / "docker" / "api.Dockerfile"
    assert cls.build_context == root
    assert str(cls.origins["build_context"]).startswith("wrangler.json:")


def test_missing_build_context(tmp_path: Path) -> None:
    caught = error(project(tmp_path, {"image_build_context": "./nope"}))
    assert caught.field_name == "containers[0].image_build_context"
    assert "not a folder" in caught.message


def test_image_folder_is_refused_with_a_hint(tmp_path: Path) -> None:
    root = project(tmp_path, {"image": "./container"}, dockerfile="container/Dockerfile")
    caught = error(root)
    assert "is a folder" in caught.message and "./container/Dockerfile" in caught.message


def test_neither_dockerfile_nor_reference(tmp_path: Path) -> None:
    caught = error(project(tmp_path, {"image": "Not A Ref!"}))
    assert "neither an existing Dockerfile nor an image reference" in caught.message


def test_image_vars_refuse_nested_values(tmp_path: Path) -> None:
    caught = error(project(tmp_path, {"image_vars": {"A": {"B": 1}}}))
    assert caught.field_name == "containers[0].image_vars.A"


def test_missing_binding(tmp_path: Path) -> None:
    caught = error(project(tmp_path, top={"durable_objects": {"bindings": []}}))
    assert caught.field_name == "containers[0].class_name"
    assert "no Durable Object binding" in caught.message
    assert "durable_objects.bindings" in caught.message


def test_missing_migration_is_only_a_warning(tmp_path: Path) -> None:
    config = load_config(None, cwd=project(tmp_path, top={"migrations": []}))
    assert any("new_sqlite_classes" in w for w in config.warnings)
    config = load_config(
        None, cwd=project(tmp_path, top={"migrations": [{"new_classes": ["MyContainer"]}]})
    )
    assert any("is in new_classes" in w for w in config.warnings)
    renamed = [{"renamed_classes": [{"from": "Old", "to": "MyContainer"}]}]
    config = load_config(None, cwd=project(tmp_path, top={"migrations": renamed}))
    assert config.warnings == ()


def test_unknown_container_field_warns(tmp_path: Path) -> None:
    config = load_config(None, cwd=project(tmp_path, {"max_instance": 3, "scheduling_policy": "x"}))
    assert len(config.warnings) == 1
    assert "containers[0].max_instance is unknown" in config.warnings[0]


def test_duplicate_class_or_name(tmp_path: Path) -> None:
    root = project(tmp_path)
    data = json.loads((root / "wrangler.json").read_text())
    data["containers"].append(dict(data["containers"][0]))
    (root / "wrangler.json").write_text(json.dumps(data))
    assert error(root).field_name == "containers[1].class_name"


# --- the Worker source -----------------------------------------------------------------------


def test_source_defaults_when_class_sets_nothing(tmp_path: Path) -> None:
    root = project(tmp_path, source="export class MyContainer extends Container {}\n")
    config = load_config(None, cwd=root)
    cls = only(config)
    assert cls.default_port is None
    assert cls.sleep_after == 600.0
    assert cls.ping_endpoint == "ping"
    assert cls.enable_internet is True
    assert cls.env_vars == {}
    assert cls.entrypoint is None
    assert cls.required_ports == ()
    assert cls.instances == 3
    for key in ("default_port", "sleep_after", "ping_endpoint", "instances", "env_vars"):
        assert cls.origins[key] == DEFAULT
    assert any("sets no defaultPort" in w for w in config.warnings)


def test_all_source_settings(tmp_path: Path) -> None:
    source = """\
export class MyContainer extends Container<Env> {
  override defaultPort = 8000;
  requiredPorts = [8000, 8001];
  sleepAfter = 90;
  envVars = { A: 'x', N: 1 };
  entrypoint = ['python', '-m', 'app'];
  enableInternet = false;
  pingEndpoint = 'container/health';
}
const c = getRandom(this.env.MY_CONTAINER, 6);
"""
    cls = only(load_config(None, cwd=project(tmp_path, source=source)))
    assert cls.default_port == 8000
    assert cls.required_ports == (8000, 8001)
    assert cls.sleep_after == 90.0
    assert cls.env_vars == {"A": "x", "N": "1"}
    assert cls.entrypoint == ("python", "-m", "app")
    assert cls.enable_internet is False
    assert cls.ping_endpoint == "container/health"
    assert cls.instances == 6
    assert origins(cls)["instances"] == "src/index.ts:10"
    assert origins(cls)["ping_endpoint"] == "src/index.ts:8"


@pytest.mark.parametrize("bad", ["1h30m", "1.5h", "500ms", "1d", "10 m"])
def test_bad_sleep_after_in_source_is_an_error(tmp_path: Path, bad: str) -> None:
    source = "class MyContainer extends Container {\n  defaultPort = 80;\n"
    source += f"  sleepAfter = '{bad}';\n}}\n"
    caught = error(project(tmp_path, source=source))
    assert caught.where == "src/index.ts:3"
    assert caught.field_name == "MyContainer.sleepAfter"
    assert caught.message.startswith(f"invalid time expression {bad}; allowed:")


def test_bad_port_in_source_is_an_error(tmp_path: Path) -> None:
    source = "class MyContainer extends Container {\n  defaultPort = 70000;\n}\n"
    caught = error(project(tmp_path, source=source))
    assert (caught.where, caught.field_name) == ("src/index.ts:2", "MyContainer.defaultPort")


def test_non_literal_source_value_warns_and_uses_default(tmp_path: Path) -> None:
    source = "class MyContainer extends Container {\n  defaultPort = 80;\n  sleepAfter = SOME;\n}\n"
    config = load_config(None, cwd=project(tmp_path, source=source))
    assert only(config).sleep_after == 600.0
    assert only(config).origins["sleep_after"] == DEFAULT
    assert config.warnings == (
        "src/index.ts:3: MyContainer.sleepAfter = SOME is not a literal; emu ignores it",
    )


def test_missing_worker_source_is_a_warning_with_defaults(tmp_path: Path) -> None:
    config = load_config(None, cwd=project(tmp_path, source=None))
    cls = only(config)
    assert (cls.default_port, cls.sleep_after, cls.instances) == (None, 600.0, 3)
    assert len(config.warnings) == 1
    warning = config.warnings[0]
    assert warning.startswith("src/index.ts: Worker source not read")
    for default in ("sleepAfter 10m", 'pingEndpoint "ping"', "enableInternet true", "instances 3"):
        assert default in warning


def test_unreadable_worker_source_is_a_warning(tmp_path: Path) -> None:
    root = project(tmp_path, source=None)
    (root / "src").mkdir()
    (root / "src" / "index.ts").write_bytes(b"\xff\xfe\xfa class")
    config = load_config(None, cwd=root)
    assert "Worker source not read" in config.warnings[0]


def test_no_main_is_a_warning(tmp_path: Path) -> None:
    root = project(tmp_path)
    data = json.loads((root / "wrangler.json").read_text())
    del data["main"]
    (root / "wrangler.json").write_text(json.dumps(data))
    config = load_config(None, cwd=root)
    assert config.main is None
    assert "no `main`" in config.warnings[0]


def test_class_not_in_source_is_a_warning(tmp_path: Path) -> None:
    config = load_config(None, cwd=project(tmp_path, source="export default {};\n"))
    assert "class MyContainer extends Container is not found" in config.warnings[0]


def test_get_random_in_an_imported_module(tmp_path: Path) -> None:
    source = 'export { MyContainer } from "./container";\nimport "./workflows/run";\n'
    root = project(tmp_path, source=source)
    (root / "src" / "container.ts").write_text(
        "export class MyContainer extends Container {\n  defaultPort = 8000;\n}\n"
    )
    (root / "src" / "workflows").mkdir()
    (root / "src" / "workflows" / "run.ts").write_text(
        "\nconst c = await getRandom(this.env.MY_CONTAINER, 8);\n"
    )
    cls = only(load_config(None, cwd=root))
    assert (cls.default_port, cls.instances) == (8000, 8)
    assert origins(cls)["default_port"] == "src/container.ts:2"
    assert origins(cls)["instances"] == "src/workflows/run.ts:2"


def test_instances_above_max_instances_warns(tmp_path: Path) -> None:
    config = load_config(None, cwd=project(tmp_path, {"max_instances": 1}))
    assert any("max_instances is 1" in w for w in config.warnings)
    assert only(config).get_random


def test_a_worker_without_get_random_gets_no_warning_about_its_n(tmp_path: Path) -> None:
    source = SOURCE.replace("getRandom(env.MY_CONTAINER, 2)", "getContainer(env.MY_CONTAINER, 'a')")
    config = load_config(None, cwd=project(tmp_path, {"max_instances": 1}, source=source))
    assert not any("spreads" in w for w in config.warnings), config.warnings
    cls = only(config)
    assert not cls.get_random and origins(cls)["instances"] == "default"


# --- flags -----------------------------------------------------------------------------------


def test_overrides(tmp_path: Path) -> None:
    overrides = Overrides(
        instances=4,
        sleep_after="30s",
        start_timeout="0.5",
        stop_grace="1m",
        header_timeout="2s",
        keepalive_timeout="1m",
        max_connections=50,
        seed=7,
        host="0.0.0.0",
        port=0,
    )
    config = load_config(None, overrides, cwd=project(tmp_path))
    cls = only(config)
    assert (cls.instances, cls.sleep_after) == (4, 30.0)
    assert origins(cls)["instances"] == "flag --instances"
    assert origins(cls)["sleep_after"] == "flag --sleep-after"
    assert (config.start_timeout, config.stop_grace, config.seed) == (0.5, 60.0, 7)
    assert (config.host, config.port) == ("0.0.0.0", 0)
    assert {
        k: str(v) for k, v in config.origins.items() if k not in ("env", "worker_name", "main")
    } == {
        "host": "flag --host",
        "port": "flag --port",
        "seed": "flag --seed",
        "start_timeout": "flag --start-timeout",
        "stop_grace": "flag --stop-grace",
        "header_timeout": "flag --header-timeout",
        "keepalive_timeout": "flag --keepalive-timeout",
        "max_connections": "flag --max-connections",
    }
    assert (config.header_timeout, config.keepalive_timeout, config.max_connections) == (
        2.0,
        60.0,
        50,
    )


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        (Overrides(sleep_after="1h30m"), "flag --sleep-after"),
        (Overrides(sleep_after="10 m"), "flag --sleep-after"),
        (Overrides(start_timeout="soon"), "flag --start-timeout"),
        (Overrides(start_timeout="0"), "flag --start-timeout"),
        (Overrides(stop_grace="1d"), "flag --stop-grace"),
        (Overrides(instances=0), "flag --instances"),
        (Overrides(port=70000), "flag --port"),
        (Overrides(port=-1), "flag --port"),
        (Overrides(host=""), "flag --host"),
        (Overrides(header_timeout="0"), "flag --header-timeout"),
        (Overrides(keepalive_timeout="1d"), "flag --keepalive-timeout"),
        (Overrides(max_connections=0), "flag --max-connections"),
    ],
)
def test_bad_flags(tmp_path: Path, overrides: Overrides, where: str) -> None:
    caught = error(project(tmp_path), overrides)
    assert caught.where == where
    assert str(caught).startswith(f"{where}: ")


def test_bad_sleep_after_flag_message(tmp_path: Path) -> None:
    caught = error(project(tmp_path), Overrides(sleep_after="1h30m"))
    assert caught.message.startswith("invalid time expression 1h30m; allowed:")


def test_describe_lists_warnings(tmp_path: Path) -> None:
    config = load_config(None, cwd=project(tmp_path, source=None))
    text = describe(config)
    assert "\nwarnings\n  - src/index.ts: Worker source not read" in text


# --- wrangler environments (--env) -----------------------------------------------------------

ENV_CONFIG = """\
{
  "name": "app",
  "main": "src/index.ts",
  "durable_objects": {"bindings": [{"name": "MY_CONTAINER", "class_name": "MyContainer"}]},
  "migrations": [{"tag": "v1", "new_sqlite_classes": ["MyContainer"]}],
  "containers": [{"class_name": "MyContainer", "image": "./Dockerfile", "max_instances": 3}],
  "env": {
    "staging": {
      "durable_objects": {"bindings": [{"name": "MY_CONTAINER", "class_name": "MyContainer"}]},
      "containers": [
        {"class_name": "MyContainer", "image": "./Dockerfile", "max_instances": 7},
      ],
    },
    "bare": {"name": "bare-app"},
    "broken": {
      "durable_objects": {"bindings": [{"name": "MY_CONTAINER", "class_name": "MyContainer"}]},
      "containers": [{"class_name": "MyContainer", "image": "./Dockerfile", "max_instances": 0}],
    },
  },
}
"""


def env_project(root: Path, without: str = "") -> Path:
    """A project whose wrangler.jsonc is ENV_CONFIG, minus the text `without`."""
    project(root)
    (root / "wrangler.json").unlink()
    assert without in ENV_CONFIG
    (root / "wrangler.jsonc").write_text(ENV_CONFIG.replace(without, "", 1))
    return root


def test_env_reads_the_environments_containers_and_bindings(tmp_path: Path) -> None:
    root = env_project(tmp_path)
    assert only(load_config(None, cwd=root)).max_instances == 3
    config = load_config(None, Overrides(env="staging"), cwd=root)
    cls = only(config)
    assert cls.max_instances == 7
    assert origins(cls)["max_instances"] == "wrangler.jsonc:11"
    assert origins(cls)["binding"] == "wrangler.jsonc:9"
    # As wrangler names an environment's Worker, and so the container's default name.
    assert (config.worker_name, cls.name) == ("app-staging", "app-staging-MyContainer")
    assert str(config.origins["env"]) == "flag --env"
    assert config.env == "staging"
    assert re.search(r"env +staging +flag --env", describe(config))


def test_env_does_not_inherit_containers(tmp_path: Path) -> None:
    caught = error(env_project(tmp_path), Overrides(env="bare"))
    assert caught.where == "wrangler.jsonc:14"
    assert caught.field_name == "env.bare.containers"
    assert "not inherited by environments" in caught.message


def test_env_errors_name_the_environments_field(tmp_path: Path) -> None:
    caught = error(env_project(tmp_path), Overrides(env="broken"))
    assert caught.where == "wrangler.jsonc:17"
    assert caught.field_name == "env.broken.containers[0].max_instances"


def test_unknown_env_lists_the_environments(tmp_path: Path) -> None:
    caught = error(env_project(tmp_path), Overrides(env="prod"))
    assert caught.where == "flag --env"
    assert 'no environment "prod"' in caught.message
    assert "bare, broken, staging" in caught.message

    caught = error(project(tmp_path / "list", top={"env": ["staging"]}), Overrides(env="staging"))
    assert caught.field_name == "env"
    assert "must be an object of environments, not an array" in caught.message


def test_env_without_environments_reads_the_top_level_as_wrangler_does(tmp_path: Path) -> None:
    config = load_config(None, Overrides(env="staging"), cwd=project(tmp_path))
    assert only(config).max_instances == 20
    assert config.worker_name == "app-staging"
    assert config.warnings == (
        'wrangler.json defines no environments; for "staging" (flag --env) emu reads the top '
        "level, as wrangler does",
    )


def test_env_only_config_without_env_suggests_the_flag(tmp_path: Path) -> None:
    top_containers = (
        '  "containers": [{"class_name": "MyContainer", "image": "./Dockerfile", '
        '"max_instances": 3}],\n'
    )
    caught = error(env_project(tmp_path, without=top_containers))
    assert caught.field_name == "containers"
    assert "--env (bare, broken, staging)" in caught.message


def test_env_missing_bindings_names_the_environments_field(tmp_path: Path) -> None:
    staging_bindings = (  # the first one: env.staging's
        '      "durable_objects": {"bindings": [{"name": "MY_CONTAINER", '
        '"class_name": "MyContainer"}]},\n'
    )
    root = env_project(tmp_path, without=staging_bindings)
    caught = error(root, Overrides(env="staging"))
    assert "env.staging.durable_objects.bindings" in caught.message


# --- exports (wrangler 4.124 and later) --------------------------------------------------------


def test_sqlite_export_stands_for_the_migration(tmp_path: Path) -> None:
    exports = {"MyContainer": {"type": "durable-object", "storage": "sqlite"}}
    config = load_config(None, cwd=project(tmp_path, top={"migrations": [], "exports": exports}))
    assert config.warnings == ()
    exports = {"MyContainer": {"type": "durable-object", "storage": "legacy-kv"}}
    config = load_config(
        None, cwd=project(tmp_path / "kv", top={"migrations": [], "exports": exports})
    )
    assert any('storage "legacy-kv", but containers need "sqlite"' in w for w in config.warnings)
    # Without storage, or a tombstone: not a live sqlite class, so wrangler deploy needs more.
    for i, entry in enumerate(
        [
            {"type": "durable-object"},
            {"type": "durable-object", "storage": "sqlite", "state": "deleted"},
        ]
    ):
        top: dict[str, object] = {"migrations": [], "exports": {"MyContainer": entry}}
        config = load_config(None, cwd=project(tmp_path / str(i), top=top))
        assert any("no sqlite export" in w for w in config.warnings), entry


def test_export_names_the_container_of_a_class(tmp_path: Path) -> None:
    exports = {
        "MyContainer": {"type": "durable-object", "storage": "sqlite", "container": "runner"}
    }
    root = project(tmp_path, {"name": "runner"}, top={"exports": exports})
    data = json.loads((root / "wrangler.json").read_text())
    del data["containers"][0]["class_name"]
    (root / "wrangler.json").write_text(json.dumps(data, indent=2))
    cls = only(load_config(None, cwd=root))
    assert (cls.class_name, cls.name, cls.binding) == ("MyContainer", "runner", "MY_CONTAINER")
    assert origins(cls)["class_name"] == "wrangler.json:30"  # exports.MyContainer.container


def test_export_container_must_exist_and_agree(tmp_path: Path) -> None:
    link = {"type": "durable-object", "storage": "sqlite", "container": "nope"}
    caught = error(project(tmp_path / "a", top={"exports": {"MyContainer": link}}))
    assert caught.field_name == "exports.MyContainer.container"
    assert 'no container is named "nope"' in caught.message
    other = {"type": "durable-object", "storage": "sqlite", "container": "app-MyContainer"}
    caught = error(project(tmp_path / "b", top={"exports": {"Other": other}}))
    assert caught.field_name == "containers[0].class_name"
    assert "exports.Other.container gives container" in caught.message


# --- dev.port and the helpers for ps, down and status ----------------------------------------


def test_dev_port_is_the_default_port_and_the_flag_wins(tmp_path: Path) -> None:
    root = project(tmp_path, top={"dev": {"port": 8790}})
    config = load_config(None, cwd=root)
    assert config.port == 8790
    assert str(config.origins["port"]).startswith("wrangler.json:")
    assert load_config(None, Overrides(port=9000), cwd=root).port == 9000
    assert default_port(cwd=root) == 8790
    assert default_port(cwd=project(tmp_path / "plain")) == 8787
    caught = error(project(tmp_path / "bad", top={"dev": {"port": "x"}}))
    assert caught.field_name == "dev.port"


def test_find_config_does_not_validate(tmp_path: Path) -> None:
    root = project(tmp_path, {"max_instances": 0})
    assert find_config(cwd=root) == root / "wrangler.json"
    with pytest.raises(ConfigError):
        find_config(cwd=tmp_path / "nowhere")


# --- nearest names, and `emu config` paths relative to the config file -----------------------


@pytest.mark.parametrize(
    ("written", "suggested"),
    [
        ("standard-9", "standard-1"),
        ("Standard-2", "standard-2"),
        ("lit", "lite"),
        ("stndard", "standard"),
    ],
)
def test_unknown_instance_type_suggests_the_nearest(
    tmp_path: Path, written: str, suggested: str
) -> None:
    caught = error(project(tmp_path, {"instance_type": written}))
    assert f"did you mean {suggested}? allowed: lite, basic" in caught.message


def test_unknown_instance_type_far_from_any_name_suggests_nothing(tmp_path: Path) -> None:
    caught = error(project(tmp_path, {"instance_type": "large"}))
    assert "did you mean" not in caught.message


def test_unknown_fields_suggest_the_nearest(tmp_path: Path) -> None:
    caught = error(project(tmp_path, {"instance_type": {"vcpu": 1, "memory": 4096}}))
    assert caught.field_name == "containers[0].instance_type.memory"
    assert "unknown field memory; did you mean memory_mib?" in caught.message
    config = load_config(None, cwd=project(tmp_path / "b", {"max_instance": 3}))
    assert config.warnings[0].endswith(
        "containers[0].max_instance is unknown to emu and ignored; did you mean max_instances?"
    )
    config = load_config(None, cwd=project(tmp_path / "c", {"colour": "blue"}))
    assert config.warnings[0].endswith("containers[0].colour is unknown to emu and ignored")


def test_unknown_env_suggests_the_nearest(tmp_path: Path) -> None:
    caught = error(env_project(tmp_path), Overrides(env="stagin"))
    assert 'no environment "stagin"; did you mean staging? it has bare' in caught.message


def test_describe_shows_paths_relative_to_the_config_file(seed: Path) -> None:
    (seed / "src" / "index.ts").write_text(
        (seed / "src" / "index.ts").read_text().replace("sleepAfter", "sleepAfter = SOME;\n  x")
    )
    config = load_config(Path("research-api/wrangler.jsonc"), cwd=seed.parent)
    # Config keeps what `emu up` prints: relative to where emu runs.
    assert str(only(config).origins["max_instances"]) == "research-api/wrangler.jsonc:42"
    assert config.warnings[0].startswith("research-api/src/index.ts:")
    text = describe(config)
    header, rest = text.split("\n", 1)
    assert header == f"config {seed / 'wrangler.jsonc'}"  # the one absolute path: the anchor
    assert "research-api/" not in rest
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith("  ")}
    assert lines["max_instances"] == ["max_instances", "10", "wrangler.jsonc:42"]
    assert lines["dockerfile"] == ["dockerfile", "container/Dockerfile", "wrangler.jsonc:39"]
    assert lines["main"] == ["main", "src/index.ts", "wrangler.jsonc:8"]
    assert lines["instances"][-1] == "src/index.ts:24"  # a line was added above
    assert "\nwarnings\n  - src/index.ts:" in text
    data = as_json(config)
    assert data["classes"][0]["settings"]["max_instances"]["origin"] == "wrangler.jsonc:42"
    assert data["settings"]["worker_name"]["origin"] == "wrangler.jsonc:7"
    assert data["warnings"][0].startswith("src/index.ts:")


def test_describe_env_worker_name_origin_is_relative_too(tmp_path: Path) -> None:
    root = env_project(tmp_path / "app")
    config = load_config(Path("app"), Overrides(env="staging"), cwd=tmp_path)
    assert str(config.origins["worker_name"]) == "app/wrangler.jsonc:2 and flag --env"
    assert as_json(config)["settings"]["worker_name"]["origin"] == "wrangler.jsonc:2 and flag --env"
    assert root.name == "app"


# --- positions and messages from the parsers (json-five, tree-sitter-toml) --------------------


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ('{\n  "name" "x"\n}\n', "2:10", "unexpected '\"': is a colon missing before it?"),
        (
            '{\n  "main": src/index.ts,\n}\n',
            "2:11",
            "unexpected 'src': is it a string without quotes?",
        ),
        (
            '{\n  "name": "x,\n  "main": "y"\n}\n',
            "2:11",
            "this string runs past the end of its line",
        ),
        ('{\n  "a": [1, 2,\n', "2:14", "unexpected end of file: the '[' on line 2 is not closed"),
        ('{\n  "a": 1\n}\n}\n', "4:1", "unexpected '}' after the end of the top-level value"),
        ('{\n  "a": 1, /* no end\n}\n', "2:11", "this /* comment is not closed with */"),
        ("{\n  'a': 1,\n  \"b\": @,\n}\n", "3:8", "unexpected '@'"),
        ("", "1:1", "the file is empty"),
    ],
)
def test_jsonc_syntax_errors_are_short_and_placed(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    (tmp_path / "wrangler.jsonc").write_text(text)
    caught = error(tmp_path)
    assert caught.where == f"wrangler.jsonc:{where}"
    assert caught.message.startswith(f"invalid JSONC: {message}")
    assert "\n" not in str(caught)


def test_jsonc_repeated_key_points_at_the_value_that_wins(tmp_path: Path) -> None:
    root = project(tmp_path, {"max_instances": 2})
    text = (root / "wrangler.json").read_text()
    (root / "wrangler.json").write_text(
        text.replace('"max_instances": 2', '"max_instances": 2,\n      "max_instances": 5')
    )
    cls = only(load_config(None, cwd=root))
    line = 1 + text.count("\n", 0, text.index('"max_instances"')) + 1
    assert (cls.max_instances, origins(cls)["max_instances"]) == (5, f"wrangler.json:{line}")


def test_toml_lines_of_inline_arrays_dotted_and_quoted_keys(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "wrangler.json").unlink()
    (tmp_path / "wrangler.toml").write_text(
        textwrap.dedent(
            """\
            "name" = "app"
            main = "src/index.ts"
            durable_objects.bindings = [
              # the one binding
              { name = "MY_CONTAINER", class_name = "MyContainer" },
            ]

            [[containers]]
            class_name = "MyContainer"
            'image' = "./Dockerfile"
            image_vars.VERSION = "1.2"
            """
        )
    )
    config = load_config(None, cwd=tmp_path)
    cls = only(config)
    assert origins(cls)["binding"] == "wrangler.toml:5"
    assert origins(cls)["image"] == "wrangler.toml:10"
    assert origins(cls)["image_vars"] == "wrangler.toml:11"
    assert str(config.origins["worker_name"]) == "wrangler.toml:1"


@pytest.mark.timeout(10)
def test_unclosed_block_comment_in_a_long_file_fails_fast(seed: Path) -> None:
    # json-five's own comment pattern backtracks exponentially in the lines after an unclosed
    # /*: this file (the seed's last comment, its */ lost) never finished with it.
    path = seed / "wrangler.jsonc"
    text = path.read_text()
    start = text.index("/* Durable Objects")
    path.write_text(text[:start] + text[start:].replace("*/", "", 1))
    caught = error(seed)
    assert caught.where == "wrangler.jsonc:17:3"
    assert caught.message == "invalid JSONC: this /* comment is not closed with */"


def test_describe_warning_naming_a_second_file_is_relative_too(seed: Path) -> None:
    config = load_config(Path("research-api"), Overrides(instances=30), cwd=seed.parent)
    assert "max_instances is 10 (research-api/wrangler.jsonc:42)" in config.warnings[0]
    assert "max_instances is 10 (wrangler.jsonc:42)" in describe(config)
