"""`load_config`: the document, the Worker source and the flags, checked and merged into one
`Config`, from typed partial results."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emulator.config.durations import parse_duration
from emulator.config.jsvalue import is_integer, literal

from . import fields, rehearsal
from .bindings import Binding, Exports, Migrations, bindings, exports, migration_warning, migrations
from .document import Document, locate, read_document, select_env
from .formats import FieldPath
from .model import (
    DEFAULT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_PORT,
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_GRACE,
    DEFAULT_WORKER_NAME,
    GLOBAL_FLAGS,
    INSTANCE_TYPES,
    ClassConfig,
    Config,
    ConfigError,
    ConfigWarning,
    FileOrigin,
    InstanceType,
    Origin,
    Overrides,
)
from .source import (
    Worker,
    default_instances,
    random_instances,
    scan_worker,
    source_settings,
)


def load_config(
    path: Path | None, overrides: Overrides = Overrides(), cwd: Path | None = None
) -> Config:
    """Find (when `path` is None: wrangler.json, wrangler.jsonc, wrangler.toml in `cwd`), read,
    validate and merge. Raises ConfigError."""
    cwd = (cwd if cwd is not None else Path.cwd()).absolute()
    top = read_document(locate(path, cwd), cwd)
    warnings: list[str] = []
    doc = select_env(top, overrides.env, overrides.env_from, warnings)
    worker_name, worker_name_origin = _worker_name(doc, overrides)
    containers = _containers(doc, top, overrides)
    # Flags are checked before the Worker source is read, so a bad flag is reported first.
    flags = _class_flags(overrides)
    settings = _global_settings(top, overrides)
    class_bindings = bindings(doc)
    worker = scan_worker(doc, warnings)
    loader = _ContainerLoader(
        doc=doc,
        worker_name=worker_name,
        bindings=class_bindings,
        migrations=migrations(doc),
        exports=exports(doc),
        worker=worker,
        flags=flags,
        warnings=warnings,
    )
    classes = tuple(loader.load(index, entry) for index, entry in enumerate(containers))
    loader.check_links()
    origins = {
        "worker_name": worker_name_origin,
        "main": worker.origin,
        "env": Origin(overrides.env_from) if overrides.env is not None else DEFAULT,
        **settings.origins,
    }
    return Config(
        path=doc.path,
        project_dir=doc.path.parent,
        env=overrides.env,
        worker_name=worker_name,
        main=worker.main,
        classes=classes,
        host=settings.host,
        port=settings.port,
        seed=settings.seed,
        start_timeout=settings.start_timeout,
        stop_grace=settings.stop_grace,
        header_timeout=settings.header_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        max_connections=settings.max_connections,
        origins=origins,
        warnings=tuple(warnings),
    )


def find_config(path: Path | None = None, cwd: Path | None = None) -> Path:
    """The config file `emu` would read: `path`, or the first of wrangler.json, wrangler.jsonc,
    wrangler.toml in `path` (a folder) or `cwd`. Raises ConfigError."""
    return locate(path, (cwd if cwd is not None else Path.cwd()).absolute())


def default_port(path: Path | None = None, cwd: Path | None = None) -> int:
    """The port `emu up` of this config listens on without --port: dev.port, else 8787.
    Reads only that, so a config broken elsewhere still answers. Raises ConfigError."""
    cwd = (cwd if cwd is not None else Path.cwd()).absolute()
    dev_port = fields.dev_port(read_document(locate(path, cwd), cwd))
    return dev_port[0] if dev_port is not None else DEFAULT_PORT


def _worker_name(doc: Document, overrides: Overrides) -> tuple[str, Origin]:
    name, origin = DEFAULT_WORKER_NAME, DEFAULT
    if "name" in doc.data:
        name = fields.string(doc, ("name",), doc.data["name"], required=True)
        origin = doc.origin(("name",))
    if overrides.env is None or "name" in doc.moved:
        return name, origin
    # As wrangler names an environment's Worker: "<top-level name>-<env>".
    also = f" and {overrides.env_from}"
    if isinstance(origin, FileOrigin):
        return f"{name}-{overrides.env}", FileOrigin.at(origin.path, origin.line, doc.cwd, also)
    return f"{name}-{overrides.env}", Origin(f"{origin}{also}")


def _containers(doc: Document, top: Document, overrides: Overrides) -> list[Any]:
    containers = doc.data.get("containers")
    if containers is None:
        hint = (
            "; containers are not inherited by environments"
            if overrides.env is not None and "containers" in top.data
            else ""
        )
        if overrides.env is None and isinstance(top.data.get("env"), dict):
            envs = ", ".join(sorted(str(name) for name in top.data["env"]))
            hint = f"; or pick an environment with --env ({envs})"
        raise doc.error(
            ("containers",),
            "missing: emu runs the containers listed there "
            '(e.g. "containers": [{"class_name": "MyContainer", "image": "./Dockerfile"}])' + hint,
        )
    if not isinstance(containers, list) or not containers:
        raise doc.error(("containers",), "must be a non-empty array of containers")
    return containers


# ---------------------------------------------------------------------------------------------
# Flags


@dataclass(frozen=True)
class _ClassFlags:
    """The flags that override a setting of every class."""

    instances: int | None
    sleep_after: float | None
    max_instances: int | None = None
    instance_type: InstanceType | None = None
    env_vars: Mapping[str, str] = field(default_factory=dict)
    origin: Origin = DEFAULT  # of the three above


def _class_flags(overrides: Overrides) -> _ClassFlags:
    where = overrides.overrides_from
    return _ClassFlags(
        max_instances=(
            rehearsal.whole_number(where, "max_instances", overrides.max_instances)
            if overrides.max_instances is not None
            else None
        ),
        instance_type=(
            rehearsal.instance_type(where, overrides.instance_type)
            if overrides.instance_type is not None
            else None
        ),
        env_vars=dict(overrides.env_vars),
        origin=Origin(where),
        instances=(
            _flag_int("instances", overrides.instances, 1)
            if overrides.instances is not None
            else None
        ),
        sleep_after=(
            _flag_duration("sleep-after", overrides.sleep_after)
            if overrides.sleep_after is not None
            else None
        ),
    )


@dataclass(frozen=True)
class _Globals:
    """The Config fields that flags (and dev.port) set, typed, with their origins."""

    host: str
    port: int
    seed: int | None
    start_timeout: float
    stop_grace: float
    header_timeout: float
    keepalive_timeout: float
    max_connections: int
    origins: Mapping[str, Origin]


def _global_settings(doc: Document, overrides: Overrides) -> _Globals:
    origins: dict[str, Origin] = {}
    for key in GLOBAL_FLAGS:
        given = getattr(overrides, key) is not None
        origins[key] = Origin(f"flag --{key.replace('_', '-')}") if given else DEFAULT
    host = DEFAULT_HOST
    if overrides.host is not None:
        if not isinstance(overrides.host, str) or not overrides.host.strip():
            raise ConfigError("flag --host", "", "must be a host name or address")
        host = overrides.host
    port = DEFAULT_PORT
    if overrides.port is not None:
        port = _flag_int("port", overrides.port, 0, 65535)
    elif (dev_port := fields.dev_port(doc)) is not None:
        port, origins["port"] = dev_port
    if overrides.seed is not None and not is_integer(overrides.seed):
        raise ConfigError("flag --seed", "", "must be a whole number")
    return _Globals(
        host=host,
        port=port,
        seed=overrides.seed,
        start_timeout=(
            _flag_duration("start-timeout", overrides.start_timeout, positive=True)
            if overrides.start_timeout is not None
            else DEFAULT_START_TIMEOUT
        ),
        stop_grace=(
            _flag_duration("stop-grace", overrides.stop_grace)
            if overrides.stop_grace is not None
            else DEFAULT_STOP_GRACE
        ),
        header_timeout=(
            _flag_duration("header-timeout", overrides.header_timeout, positive=True)
            if overrides.header_timeout is not None
            else DEFAULT_HEADER_TIMEOUT
        ),
        keepalive_timeout=(
            _flag_duration("keepalive-timeout", overrides.keepalive_timeout, positive=True)
            if overrides.keepalive_timeout is not None
            else DEFAULT_KEEPALIVE_TIMEOUT
        ),
        max_connections=(
            _flag_int("max-connections", overrides.max_connections, 1)
            if overrides.max_connections is not None
            else DEFAULT_MAX_CONNECTIONS
        ),
        origins=origins,
    )


def _flag_duration(name: str, value: str, *, positive: bool = False) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(
            f"flag --{name}",
            "",
            f'{exc}; allowed: "30s", "15m", "1h" or a number of seconds like 20 or 0.5',
        ) from None
    if positive and seconds <= 0:
        raise ConfigError(f"flag --{name}", "", f"must be more than 0, not {value}")
    return seconds


def _flag_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if (
        not is_integer(value)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        allowed = f"{low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(
            f"flag --{name}", "", f"must be a whole number, {allowed}; not {literal(value)}"
        )
    return value


# ---------------------------------------------------------------------------------------------
# containers[]


@dataclass
class _ContainerLoader:
    """Builds one ClassConfig per containers[] entry; collects warnings as it goes."""

    doc: Document
    worker_name: str
    bindings: Mapping[str, list[Binding]]
    migrations: Migrations
    exports: Exports
    worker: Worker
    flags: _ClassFlags
    warnings: list[str]
    seen_classes: dict[str, int] = field(default_factory=dict)
    seen_names: dict[str, int] = field(default_factory=dict)

    def load(self, index: int, entry: object) -> ClassConfig:
        doc, base = self.doc, ("containers", index)
        if not isinstance(entry, dict):
            raise doc.error(base, f"must be an object, not {literal(entry)}")
        class_name, class_path = self.class_name(index, entry)
        self.warnings += fields.unknown_container_fields(doc, index, entry)
        if "image" not in entry:
            raise doc.error(
                (*base, "image"), 'missing; a Dockerfile path like "./Dockerfile" or an image'
            )
        origins: dict[str, Origin] = {"class_name": doc.origin(class_path)}
        setting = _Settings(doc, index, entry, origins)
        image = fields.image(doc, index, entry, self.warnings)
        origins["image"] = doc.origin((*base, "image"))
        origins["dockerfile"] = origins["image"] if image.dockerfile is not None else DEFAULT
        origins["build_context"] = image.build_context_origin
        image_vars = fields.image_vars(doc, index, setting("image_vars"))
        name = self.container_name(index, class_name, class_path, setting("name"))
        max_instances, instance_type = self.limits(setting, origins)
        binding = self.binding(class_name, class_path, origins)
        source = source_settings(self.worker, class_name, doc.cwd, origins, self.warnings)
        source = rehearsal.with_env(source, self.flags.env_vars, self.flags.origin, origins)
        if self.flags.sleep_after is not None:
            source = replace(source, sleep_after=self.flags.sleep_after)
            origins["sleep_after"] = Origin("flag --sleep-after")
        instances, get_random = self.instances(class_name, max_instances, origins)
        return ClassConfig(
            class_name=class_name,
            binding=binding,
            name=name,
            image=str(entry["image"]),
            dockerfile=image.dockerfile,
            build_context=image.build_context,
            image_vars=image_vars,
            max_instances=max_instances,
            instance_type=instance_type,
            default_port=source.default_port,
            required_ports=source.required_ports,
            sleep_after=source.sleep_after,
            env_vars=source.env_vars,
            entrypoint=source.entrypoint,
            enable_internet=source.enable_internet,
            ping_endpoint=source.ping_endpoint,
            instances=instances,
            origins=origins,
            forced_env=dict(self.flags.env_vars),
            get_random=get_random,
        )

    def limits(self, setting: _Settings, origins: dict[str, Origin]) -> tuple[int, InstanceType]:
        """max_instances and instance_type: the entry's, or what `emu load --set` says."""
        doc, index = self.doc, setting.index
        base = ("containers", index)
        max_value = setting("max_instances")
        max_instances = (
            fields.max_instances(doc, index, max_value)
            if max_value is not None
            else DEFAULT_MAX_INSTANCES
        )
        type_value = setting("instance_type")
        instance_type = (
            fields.instance_type(doc, (*base, "instance_type"), type_value)
            if type_value is not None
            else INSTANCE_TYPES[DEFAULT_INSTANCE_TYPE]
        )
        if self.flags.max_instances is not None:
            max_instances, origins["max_instances"] = self.flags.max_instances, self.flags.origin
        if self.flags.instance_type is not None:
            instance_type, origins["instance_type"] = self.flags.instance_type, self.flags.origin
        return max_instances, instance_type

    def class_name(self, index: int, entry: Mapping[str, Any]) -> tuple[str, FieldPath]:
        """containers[index].class_name, or the class whose export names this container."""
        doc = self.doc
        class_path: FieldPath = ("containers", index, "class_name")
        if "class_name" in entry:
            class_name = fields.string(doc, class_path, entry["class_name"], required=True)
        else:
            name = entry.get("name")
            link = self.exports.links.get(name) if isinstance(name, str) else None
            if link is None:
                raise doc.error(
                    class_path,
                    "missing; name the Durable Object class here, or name this container in "
                    'its export (exports.MyClass.container = "<containers[].name>")',
                )
            class_name, class_path = link.class_name, link.path
        if class_name in self.seen_classes:
            raise doc.error(
                class_path,
                f"{class_name} is already in containers[{self.seen_classes[class_name]}]; "
                "each class has one container entry",
            )
        self.seen_classes[class_name] = index
        return class_name, class_path

    def container_name(
        self, index: int, class_name: str, class_path: FieldPath, written: object
    ) -> str:
        doc, path = self.doc, ("containers", index, "name")
        name = (
            fields.string(doc, path, written, required=True)
            if written is not None
            else f"{self.worker_name}-{class_name}"
        )
        if name in self.seen_names:
            raise doc.error(
                path,
                f"{json.dumps(name)} is already the name of containers[{self.seen_names[name]}]",
            )
        self.seen_names[name] = index
        link = self.exports.links.get(name)
        if link is not None and link.class_name != class_name:
            raise doc.error(
                class_path,
                f"{class_name}, but {doc.shown(link.path)} gives container {json.dumps(name)} "
                f"to {link.class_name}",
            )
        return name

    def binding(self, class_name: str, class_path: FieldPath, origins: dict[str, Origin]) -> str:
        doc = self.doc
        found = self.bindings.get(class_name)
        if not found:
            raise doc.error(
                class_path,
                f"class {class_name} has no Durable Object binding; add "
                f'{{"name": "MY_BINDING", "class_name": "{class_name}"}} to '
                f"{doc.shown(('durable_objects', 'bindings'))}",
            )
        origins["binding"] = doc.origin(found[0].path)
        warning = migration_warning(doc, class_name, self.migrations, self.exports)
        if warning is not None:
            self.warnings.append(warning)
        return found[0].name

    def instances(
        self, class_name: str, max_instances: int, origins: dict[str, Origin]
    ) -> tuple[int, bool]:
        """N of getRandom(env.BINDING, N) for the class's bindings, or the flag, or 3; and
        whether the Worker calls getRandom on them."""
        names = [b.name for b in self.bindings.get(class_name, [])]
        found = random_instances(self.worker, names, self.doc.cwd)
        if self.flags.instances is not None:
            count, origins["instances"] = self.flags.instances, Origin("flag --instances")
        else:
            count, origins["instances"] = found or default_instances()
        # Only about a spread the Worker (or the flag) asks for: a Worker without getRandom
        # spreads nothing.
        if count > max_instances and (found is not None or self.flags.instances is not None):
            self.warnings.append(
                ConfigWarning(
                    origins["instances"],
                    f"{class_name} spreads requests over {count} instances but max_instances "
                    f"is {max_instances} ({{mention}}); requests to a further instance get 503, "
                    "as on the platform",
                    mention=origins["max_instances"],
                )
            )
        return count, found is not None

    def check_links(self) -> None:
        """Every export's `container` names a containers[] entry."""
        for container, link in self.exports.links.items():
            if container not in self.seen_names:
                names = ", ".join(json.dumps(name) for name in self.seen_names)
                raise self.doc.error(
                    link.path,
                    f"no container is named {json.dumps(container)}; the names are {names}",
                )


@dataclass(frozen=True)
class _Settings:
    """containers[index]'s optional fields: each value, its origin recorded (default when
    absent)."""

    doc: Document
    index: int
    entry: Mapping[str, Any]
    origins: dict[str, Origin]

    def __call__(self, key: str) -> object:
        path: FieldPath = ("containers", self.index, key)
        if key not in self.entry:
            self.origins[key] = DEFAULT
            return None
        if self.entry[key] is None:
            raise self.doc.error(path, "must not be null; leave the field out for the default")
        self.origins[key] = self.doc.origin(path)
        return self.entry[key]
