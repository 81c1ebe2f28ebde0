"""An administrator runs this tool on Windows: no POSIX-only call on a product path without a
platform guard. Scans `batch_rotate/` (not the simulator, which tests and demos start) with `ast`.

Guarded means: inside either branch of an `if`/conditional on `os.name`, `sys.platform`,
`platform.system()` or `hasattr(...)`; after such a test in an `and`/`or`; or in the body of a
`try` that catches ImportError / ModuleNotFoundError / AttributeError.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from batch_rotate.graph.signin import default_token_cache

PACKAGE = Path(__file__).resolve().parent.parent / "batch_rotate"
# Modules that do not exist on Windows.
POSIX_MODULES = frozenset(
    {"fcntl", "pwd", "grp", "resource", "termios", "tty", "pty", "posix", "syslog", "crypt"}
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Attributes that do not exist on Windows (Python 3.11, the oldest supported).
POSIX_ATTRIBUTES = {
    "os": _words(
        "getuid geteuid getgid getegid getgroups fchmod fchown chown lchown lchmod setsid setpgrp "
        "getpgid killpg fork forkpty O_NOFOLLOW O_CLOEXEC O_DIRECTORY uname mkfifo statvfs "
        "fstatvfs sync getloadavg nice wait3 wait4 WNOHANG posix_spawn sched_getaffinity "
        "pathconf sysconf openpty ttyname"
    ),
    "signal": _words(
        "SIGHUP SIGUSR1 SIGUSR2 SIGKILL SIGQUIT SIGALRM SIGPIPE SIGCHLD SIGTSTP SIGCONT SIGSTOP "
        "SIGWINCH SIGTTIN SIGTTOU alarm setitimer getitimer pause pthread_sigmask pthread_kill "
        "siginterrupt sigwait"
    ),
}
_GUARD_NAMES = ("os.name", "sys.platform", "platform.system", "hasattr(")
_CAUGHT = frozenset({"ImportError", "ModuleNotFoundError", "AttributeError"})


def _is_platform_test(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return any(name in text for name in _GUARD_NAMES)


def _catches(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in _CAUGHT for n in names)


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    child, parent = node, parents.get(node)
    while parent is not None:
        if (
            isinstance(parent, ast.If | ast.IfExp)
            and child is not parent.test
            and _is_platform_test(parent.test)
        ):
            return True
        if isinstance(parent, ast.BoolOp):
            earlier = parent.values[: parent.values.index(child)] if child in parent.values else []
            if any(_is_platform_test(value) for value in earlier):
                return True
        if (
            isinstance(parent, ast.Try)
            and child in parent.body
            and any(_catches(handler) for handler in parent.handlers)
        ):
            return True
        child, parent = parent, parents.get(parent)
    return False


def posix_only_uses(source: str, filename: str = "<source>") -> list[str]:
    """`file:line name` for each unguarded POSIX-only import or attribute."""
    tree = ast.parse(source, filename)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    aliases: dict[str, str] = {}  # local name -> module (`import signal as sig`)
    found: list[tuple[ast.AST, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                aliases[alias.asname or root] = root
                if root in POSIX_MODULES:
                    found.append((node, root))
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in POSIX_MODULES:
                found.append((node, root))
            for alias in node.names:
                if alias.name in POSIX_ATTRIBUTES.get(root, ()):
                    found.append((node, f"{root}.{alias.name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module and node.attr in POSIX_ATTRIBUTES.get(module, ()):
                found.append((node, f"{module}.{node.attr}"))
    return sorted(
        f"{filename}:{getattr(node, 'lineno', 0)} {name}"
        for node, name in found
        if not _guarded(node, parents)
    )


def _product_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "sim" not in p.relative_to(PACKAGE).parts)


def test_no_unguarded_posix_only_call_on_a_product_path() -> None:
    files = _product_files()
    assert len(files) > 50  # the scan really looked at the package
    found = [
        hit
        for path in files
        for hit in posix_only_uses(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    ]
    assert found == [], "POSIX-only on a product path; guard it for Windows:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.fchmod(fd, 0o600)",
        "import fcntl",
        "from os import getuid",
        "import signal as sig\nsig.signal(sig.SIGHUP, handler)",
        "import os\nif verbose:\n    os.killpg(0, 9)",
        "import os\ntry:\n    os.setsid()\nexcept OSError:\n    pass",
    ],
)
def test_the_scan_finds_an_unguarded_use(source: str) -> None:
    assert posix_only_uses(source) != []


@pytest.mark.parametrize(
    "source",
    [
        'import os\nif os.name != "nt":\n    os.fchmod(fd, 0o600)',
        'import os, sys\nif sys.platform == "win32":\n    pass\nelse:\n    os.getuid()',
        'import os\nif hasattr(os, "fchmod"):\n    os.fchmod(fd, 0o600)',
        "try:\n    import fcntl\nexcept ImportError:\n    fcntl = None",
        'import os\nroot = os.name != "nt" and os.geteuid() == 0',
        'import signal, sys\nsigs = [signal.SIGHUP] if sys.platform != "win32" else []',
    ],
)
def test_the_scan_accepts_a_guarded_use(source: str) -> None:
    assert posix_only_uses(source) == []


def test_the_token_cache_follows_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    tenant, client = "contoso.onmicrosoft.com", "00000000-0000-4000-8000-0000000c11e7"
    name = f"msal-token-cache-{tenant}-{client}.json"
    local = {"LOCALAPPDATA": r"C:\Users\op\AppData\Local"}
    on_windows = default_token_cache(tenant, client, environ=local, windows=True)
    assert on_windows == Path(local["LOCALAPPDATA"]) / "batch-rotate" / name
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: Path("/home/op")))
    bare = default_token_cache(tenant, client, environ={}, windows=True)
    assert bare == Path("/home/op/AppData/Local/batch-rotate") / name
    xdg = default_token_cache(tenant, client, environ={"XDG_CACHE_HOME": "/x"}, windows=False)
    assert xdg == Path("/x/batch-rotate") / name
    relative = default_token_cache(tenant, client, environ={"XDG_CACHE_HOME": "x"}, windows=False)
    assert relative == Path("/home/op/.cache/batch-rotate") / name
