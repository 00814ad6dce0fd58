"""audit.rules and audit.report are pure: no database, web framework, files or network; the CLI reads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = ("audit.rules", "audit.report")
FORBIDDEN = ("sqlalchemy", "fastapi", "starlette", "uvicorn", "httpx", "psycopg", "ledger.store", "api", "tqdm")


def test_rules_and_report_import_nothing_impure() -> None:
    code = (
        "import importlib, sys\n"
        f"for m in {PURE!r}: importlib.import_module(m)\n"
        f"bad = sorted(n for n in sys.modules if any(n == f or n.startswith(f + '.') for f in {FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the pure audit modules pull in {out.stdout.strip()}"


def test_rules_and_report_do_no_io() -> None:
    for name in PURE:
        path = ROOT / (name.replace(".", "/") + ".py")
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for n in names:
                    assert n.split(".")[0] not in {"os", "socket", "pathlib", "urllib", "sys"}, f"{name} imports {n}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"open", "print", "input"}, f"{name} calls {node.func.id}()"
