"""``node.toml``: the daemon's configuration, read with ``tomllib`` and checked key by key
(an unknown or mistyped key is an error naming it, never silently ignored)."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.hints import did_you_mean

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the key."""


@dataclass
class Input:
    endpoint: str = "tcp://127.0.0.1:5555"
    type: str = "pull"  # "pull", or "sub" where a source publishes
    bind: bool = True
    hwm: int = 1000  # messages, not bytes: 1000 x 16 KB queues ~16 MB per peer


@dataclass
class NodeSection:
    name: str = "node"
    id: int = 0
    workers: int = 1  # builder processes; worker k uses input/publish ports + k
    sources: list[int] = field(default_factory=lambda: [0])
    status_file: str = "node-status.json"
    status_interval_s: float = 1.0
    log_level: str = "info"
    # messages taken from one socket per poll (and at most 16 MB): each drain costs ~70 NumPy
    # calls however small, so at 1 KB messages 4096 (~1,000 events a drain) built 5-10% more
    # events/s than 1024 here, 8192 no more; 16 KB messages stop at the 16 MB first
    drain_max: int = 4096
    # a drain starts at most this often: what arrives sooner after the last one's start waits
    # for the next, so a moderate rate pays a drain's fixed cost (~0.2 ms of NumPy calls here,
    # however small) once per interval, not once per message burst (at 99k events/s here the
    # loop's CPU fell from 0.85 to 0.53 s/s); it adds at most this much latency; 0: drain
    # whenever a message is there
    coalesce_ms: float = 1.0


@dataclass
class Fragment:
    n_inputs: int | None = None  # default: from the manifest
    n_outputs: int | None = None
    raw_bytes: int | None = None


@dataclass
class BuilderSection:
    window: int = 8192  # event numbers in flight (rounded up to a power of two): events x their spacing
    timeout_s: float = 1.0
    max_event_jump: int = 1 << 24


@dataclass
class FallbackSection:
    manifest: str = ""  # manifest folder (build/emulator of a synthesized project)
    source_manifests: list[str] = field(default_factory=list)  # one per node.sources entry: a firmware per source
    validate_every: int = 100  # 0: no validation sample
    batch: int = 256
    max_delay_ms: float = 2.0


@dataclass
class OffloadSection:
    boards: list[str] = field(default_factory=list)
    max_in_flight: int = 4
    batch: int = 256
    timeout_ms: float = 500.0
    retry_s: float = 2.0
    board_keys: list[str] = field(default_factory=list)  # each board's public NAME.key: CURVE to the boards


@dataclass
class SinkSection:
    directory: str = "node-output"
    format: str = "hdf5"
    max_events_per_file: int = 1_000_000
    max_seconds_per_file: float = 300.0
    write_files: bool = True  # false: publish only (no event or late files)
    late: bool = True
    publish: str = ""  # PUB endpoint for downstream consumers; empty: none
    direct_io: bool = True  # HDF5 chunks written by a thread with O_DIRECT (less CPU per MB); false: page cache
    fsync: bool = True  # files (each HDF5 chunk; ROOT: every 4 MB or 1 s) on the disk before log entries name them


@dataclass
class MetricsSection:
    port: int = 0  # Prometheus HTTP port; 0: off
    host: str = "127.0.0.1"


@dataclass
class SecuritySection:
    allow_remote: bool = False  # bind only to loopback unless this is true
    max_message_bytes: int = 4 << 20
    curve_secret_key: str = ""  # the node's NAME.key_secret: enables CURVE on the inputs
    curve_clients: str = ""  # folder of allowed clients' public NAME.key files


@dataclass
class Config:
    node: NodeSection = field(default_factory=NodeSection)
    inputs: list[Input] = field(default_factory=lambda: [Input()])
    fragment: Fragment = field(default_factory=Fragment)
    builder: BuilderSection = field(default_factory=BuilderSection)
    fallback: FallbackSection = field(default_factory=FallbackSection)
    offload: OffloadSection = field(default_factory=OffloadSection)
    sink: SinkSection = field(default_factory=SinkSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    security: SecuritySection = field(default_factory=SecuritySection)
    path: Path = Path(".")  # the folder relative paths resolve against

    def resolve(self, p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else self.path / q


SECTIONS = {
    "node": NodeSection,
    "fragment": Fragment,
    "builder": BuilderSection,
    "fallback": FallbackSection,
    "offload": OffloadSection,
    "sink": SinkSection,
    "metrics": MetricsSection,
    "security": SecuritySection,
}


# the element type of each list-valued key (a list of anything else is refused, naming the element)
LIST_ITEMS = {"sources": int, "source_manifests": str, "boards": str, "board_keys": str}

# (key, lowest, highest) of every number with a range (None: unbounded); a value outside
# would crash the daemon deep in NumPy or ZeroMQ, or run with silently wrong behaviour
RANGES: list[tuple[str, float | None, float | None]] = [
    ("node.id", 0, 65535),  # the header's u16 source field of what the node publishes
    ("node.workers", 1, 256),
    ("node.status_interval_s", 0.01, 1e6),  # times: at most 11 days (seconds) / 1e9 s (ms) ...
    ("node.drain_max", 1, 1 << 20),
    ("node.coalesce_ms", 0, 100),
    ("fragment.n_inputs", 0, 65535),  # u16 header fields
    ("fragment.n_outputs", 0, 65535),
    ("builder.window", 1, 1 << 24),  # rounded up to a power of two; each slot holds a whole event
    ("builder.timeout_s", 1e-6, 1e6),  # ... as nanoseconds they must fit in 64 bits
    ("builder.max_event_jump", 1, None),
    ("fallback.validate_every", 0, None),
    ("fallback.batch", 1, None),
    ("fallback.max_delay_ms", 0, 1e9),
    ("offload.max_in_flight", 1, ((1 << 31) - 1) // 2),  # ZeroMQ's HWM (an int) is 2 x this
    ("offload.batch", 1, None),
    ("offload.timeout_ms", 1e-3, 1e9),
    ("offload.retry_s", 0, 1e6),
    ("sink.max_events_per_file", 1, None),
    ("sink.max_seconds_per_file", 1e-3, 1e9),
    ("metrics.port", 0, 65535),
    ("security.max_message_bytes", 64, 1 << 30),  # one receive buffer holds 16 MB plus one of these
]
HWM_MAX = (1 << 31) - 1  # ZeroMQ's int option
LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}  # the log's levels, node.metrics.Log
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # part of file names in sink.directory: no '/', no '..'


def _section(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table")
    defaults = cls()
    known = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in data.items():
        if key not in known:
            hint = did_you_mean(str(key), known)
            raise ConfigError(f"{where}.{key}: unknown key{hint}; known keys are {', '.join(known)}")
        default = getattr(defaults, key)
        want = int if default is None else type(default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
            raise ConfigError(f"{where}.{key}: expected {want.__name__}, got {value!r}")
        if want is float and not math.isfinite(value):  # TOML has inf and nan; no time here means either
            raise ConfigError(f"{where}.{key}: expected a finite number, got {value!r}")
        item = LIST_ITEMS.get(key)
        if item is not None:
            for i, v in enumerate(value):
                if not isinstance(v, item) or isinstance(v, bool):
                    raise ConfigError(f"{where}.{key}[{i}]: expected {item.__name__}, got {v!r}")
        values[key] = value
    return cls(**values)


def parse(data: dict[str, Any], where: str = "node.toml", base: Path = Path(".")) -> Config:
    cfg = Config(path=base)
    for key, value in data.items():
        if key == "input":
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{where}: [[input]] must be an array of tables")
            cfg.inputs = [_section(Input, v, f"{where}: input[{i}]") for i, v in enumerate(value)]
        elif key in SECTIONS:
            setattr(cfg, key, _section(SECTIONS[key], value, f"{where}: {key}"))
        else:
            hint = did_you_mean(str(key), ["input", *SECTIONS])
            raise ConfigError(f"{where}: unknown section [{key}]{hint}; known: input, {', '.join(SECTIONS)}")
    check(cfg, where)
    return cfg


def load(path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such configuration file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text, as TOML must be ({exc})") from None
    return parse(data, str(path), path.resolve().parent)


def check(cfg: Config, where: str) -> None:
    n = cfg.node
    for key, low, high in RANGES:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value is None:
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            span = f">= {low}" if high is None else f"in {low}..{high}"
            raise ConfigError(f"{where}: {key} must be {span}, got {value!r}")
    # the longest file name the node makes: late-NAME-wK-yyyymmddTHHMMSS-NNNNN.h5.damaged.chunks (a
    # killed writer's file kept by a start, node.sinks._keep; longer than .tmp.chunks, .tmp.tail.new, .tmp.rebuilt)
    longest = len(f"late-{n.name}-w{n.workers - 1}-yyyymmddTHHMMSS-NNNNN.h5.damaged.chunks")
    if longest > 255:
        raise ConfigError(
            f"{where}: node.name is {len(n.name)} characters: the node's file names would be "
            f"{longest} long, more than the 255 a file system allows"
        )
    if not NAME.match(n.name):
        raise ConfigError(f"{where}: node.name {n.name!r} names the node's files: letters, digits, '_', '.', '-' "
                          f"(not first), no '/'")  # fmt: skip
    if n.name.startswith("late-"):  # late-X-wK-... are node X's late files: the two nodes' sinks collided
        raise ConfigError(f"{where}: node.name {n.name!r} begins with 'late-', the prefix of node "
                          f"{n.name.removeprefix('late-')!r}'s late files; pick a name that does not")  # fmt: skip
    if not n.sources or len(set(n.sources)) != len(n.sources) or not all(0 <= s < 65536 for s in n.sources):
        raise ConfigError(f"{where}: node.sources must be distinct ids in 0..65535, got {n.sources}")
    if len(n.sources) > 64:
        raise ConfigError(f"{where}: node.sources: at most 64 sources per node, got {len(n.sources)}")
    sm = cfg.fallback.source_manifests
    if sm and (len(sm) != len(n.sources) or not all(isinstance(m, str) and m for m in sm)):
        raise ConfigError(f"{where}: fallback.source_manifests must name one manifest per node.sources entry "
                          f"({len(n.sources)}), got {sm}")  # fmt: skip
    if sm and (cfg.fallback.manifest or cfg.offload.boards):
        raise ConfigError(f"{where}: fallback.source_manifests replaces fallback.manifest and excludes offload")
    if n.workers < 1:
        raise ConfigError(f"{where}: node.workers must be >= 1")
    if n.log_level not in LOG_LEVELS:  # else refused only when the log opens: in each worker, after the start
        raise ConfigError(f"{where}: node.log_level must be one of {', '.join(LOG_LEVELS)}, got {n.log_level!r}")
    for i, inp in enumerate(cfg.inputs):
        check_endpoint(inp.endpoint, f"{where}: input[{i}].endpoint")
        if n.workers > 1 and re.match(r"^tcp://.*:\*$", inp.endpoint):
            raise ConfigError(
                f"{where}: input[{i}].endpoint {inp.endpoint!r}: node.workers > 1 needs a port number "
                f"(worker k binds port + k)"
            )
        if inp.type not in ("pull", "sub"):
            raise ConfigError(f"{where}: input[{i}].type must be 'pull' or 'sub', got {inp.type!r}")
        if not 0 <= inp.hwm <= HWM_MAX:
            raise ConfigError(f"{where}: input[{i}].hwm must be in 0..{HWM_MAX} messages (0: no limit), got {inp.hwm}")
        check_port(inp.endpoint, n.workers, f"{where}: input[{i}].endpoint")
        if inp.bind:
            check_bind(inp.endpoint, cfg.security.allow_remote, f"{where}: input[{i}].endpoint")
    if cfg.sink.publish:
        check_endpoint(cfg.sink.publish, f"{where}: sink.publish")
        check_port(cfg.sink.publish, n.workers, f"{where}: sink.publish")
        check_bind(cfg.sink.publish, cfg.security.allow_remote, f"{where}: sink.publish")
    for i, board in enumerate(cfg.offload.boards):
        check_endpoint(board, f"{where}: offload.boards[{i}]")
        check_port(board, 1, f"{where}: offload.boards[{i}]")
    _check_collisions(cfg, where)
    if cfg.sink.format not in ("hdf5", "root"):
        raise ConfigError(f"{where}: sink.format must be 'hdf5' or 'root', got {cfg.sink.format!r}")
    if cfg.metrics.port and not cfg.security.allow_remote and not _loopback(cfg.metrics.host):
        raise ConfigError(f"{where}: metrics.host {cfg.metrics.host!r} is not loopback; set security.allow_remote")
    if bool(cfg.security.curve_secret_key) != bool(cfg.security.curve_clients):
        raise ConfigError(f"{where}: security.curve_secret_key and security.curve_clients go together")
    keys = cfg.offload.board_keys
    if keys and len(keys) != len(cfg.offload.boards):
        raise ConfigError(f"{where}: offload.board_keys must name one public key per offload.boards entry "
                          f"({len(cfg.offload.boards)}), got {len(keys)}")  # fmt: skip
    if keys and not cfg.security.curve_secret_key:
        raise ConfigError(f"{where}: offload.board_keys needs security.curve_secret_key (the node's own key pair)")
    if cfg.fragment.raw_bytes not in (None, 1, 2, 4, 8):
        raise ConfigError(f"{where}: fragment.raw_bytes must be 1, 2, 4 or 8")


def _check_collisions(cfg: Config, where: str) -> None:
    """No two sockets the node binds on one address, every worker's included (worker k
    binds port + k): else one of them fails at start, blaming whichever bound second, or
    with workers only in worker k, at run time."""
    binds = [(f"input[{i}].endpoint", inp.endpoint) for i, inp in enumerate(cfg.inputs) if inp.bind]
    if cfg.sink.publish:
        binds.append(("sink.publish", cfg.sink.publish))
    seen: dict[tuple[str, str], str] = {}
    for key, endpoint in binds:
        for k in range(cfg.node.workers):
            address = _address(worker_endpoint(endpoint, k))
            if address is None:
                continue
            worker = f" (worker {k}: {worker_endpoint(endpoint, k)})" if k else ""
            for other in _clashes(address, seen):
                raise ConfigError(f"{where}: {key} {endpoint!r}{worker} binds where {seen[other]} does")
            seen[address] = f"{key}{worker}"
    if cfg.metrics.port:
        address = _address(f"tcp://{cfg.metrics.host}:{cfg.metrics.port}")
        for other in _clashes(address, seen):
            raise ConfigError(f"{where}: metrics.port {cfg.metrics.port} is where {seen[other]} binds")


def _address(endpoint: str) -> tuple[str, str] | None:
    """(transport, host:port or path) of an endpoint; None for a wildcard port."""
    m = re.match(r"^(tcp|ipc|inproc)://(.*)$", endpoint)
    if m is None or (m.group(1) == "tcp" and m.group(2).endswith(":*")):
        return None
    if m.group(1) == "tcp" and m.group(2).startswith("localhost:"):  # one name for one address
        return "tcp", "127.0.0.1:" + str(int(m.group(2).rsplit(":", 1)[1]))
    if m.group(1) == "tcp":
        host, port = m.group(2).rsplit(":", 1)
        return "tcp", f"{host}:{int(port)}"  # 05555 is 5555
    return m.group(1), m.group(2)


def _clashes(address: tuple[str, str], seen: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    """Addresses in ``seen`` that one bind at ``address`` would collide with (a tcp
    wildcard host, * or 0.0.0.0, takes its port on every interface)."""
    if address in seen:
        return [address]
    if address[0] != "tcp":
        return []
    host, port = address[1].rsplit(":", 1)
    out = []
    for transport, other in seen:
        if transport == "tcp":
            other_host, other_port = other.rsplit(":", 1)
            if other_port == port and ({host, other_host} & {"*", "0.0.0.0", "[::]", "::"}):
                out.append((transport, other))
    return out


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str, what: str) -> None:
    if not re.match(r"^(tcp://.+:(\d+|\*)|ipc://.+|inproc://.+)$", endpoint):
        raise ConfigError(f"{what}: {endpoint!r} is not a ZeroMQ endpoint (tcp://host:port, ipc://path)")


def check_bind(endpoint: str, allow_remote: bool, what: str) -> None:
    """Binding beyond loopback must be asked for explicitly."""
    m = re.match(r"^(tcp|ipc|inproc)://(.*)$", endpoint)
    if not m:
        raise ConfigError(f"{what}: {endpoint!r} is not a ZeroMQ endpoint (tcp://host:port, ipc://path)")
    if m.group(1) != "tcp" or allow_remote:
        return
    host = m.group(2).rsplit(":", 1)[0].strip("[]")
    if not _loopback(host):
        raise ConfigError(f"{what}: {endpoint!r} binds beyond loopback; set security.allow_remote = true to allow it")


def check_port(endpoint: str, workers: int, what: str) -> None:
    """A tcp endpoint's port, and the last worker's (port + workers - 1), in 1..65535: ZeroMQ
    takes 99999 and binds another port (99999 mod 65536)."""
    m = re.match(r"^tcp://.*:(\d+)$", endpoint)
    if m is None:
        return  # ipc, inproc, or a wildcard port ('*')
    port = int(m.group(1))
    if not 1 <= port <= port + workers - 1 <= 65535:
        last = f" (worker {workers - 1}: port {port + workers - 1})" if workers > 1 else ""
        raise ConfigError(f"{what}: {endpoint!r}: the port must be in 1..65535{last}")


def worker_endpoint(endpoint: str, worker: int) -> str:
    """Worker k of a multi-worker node uses the configured tcp port + k (ipc: path suffix -k)."""
    if worker == 0:
        return endpoint
    m = re.match(r"^(tcp://.*:)(\d+)$", endpoint)
    if m:
        return f"{m.group(1)}{int(m.group(2)) + worker}"
    return f"{endpoint}-{worker}"
