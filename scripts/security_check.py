"""Security checks of the test command: bandit on rubin_app/, pip-audit on the pinned dependencies.

A finding fails the check unless `.ci/security-exceptions.toml` lists it with a reason: that file is the one
reviewed list of accepted findings (bandit runs with --ignore-nosec, so an inline `# nosec` hides nothing). An
entry that no longer matches any finding fails too, so the list stays true. pip-audit that cannot audit a
package (no vulnerability service reachable, a package unknown to it) is reported as a warning, and fails
only with PIP_AUDIT_REQUIRED=1 (where a service is reachable); a known vulnerability always fails.

    python scripts/security_check.py [--only bandit|pip-audit]

pip-audit asks PyPI's JSON API by default; PIP_AUDIT_VULNERABILITY_SERVICE=osv (and PIP_AUDIT_OSV_URL for a
mirror) switch it to OSV.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXCEPTIONS = ROOT / ".ci" / "security-exceptions.toml"
REQUIREMENTS = (ROOT / "requirements.txt", ROOT / "requirements-engine.txt", ROOT / "requirements-embed.txt")
BANDIT_TARGET = "rubin_app"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)")


@dataclass
class Exceptions:
    """The accepted findings: bandit entries (test id + path prefix) and pip-audit entries (advisory id)."""

    bandit: list[dict[str, str]] = field(default_factory=list)
    audit: list[dict[str, str]] = field(default_factory=list)


def load_exceptions(path: Path) -> Exceptions:
    """Read and check the exceptions file: every entry names its finding and gives a reason."""
    data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    found = Exceptions(list(data.get("bandit", [])), list(data.get("pip-audit", [])))
    for kind, entries, keys in (("bandit", found.bandit, ("test", "path")), ("pip-audit", found.audit, ("id",))):
        for entry in entries:
            missing = [k for k in (*keys, "reason") if not str(entry.get(k, "")).strip()]
            if missing:
                raise SystemExit(f"{path.name}: a [[{kind}]] entry lacks {', '.join(missing)}: {entry}")
    return found


# --------------------------------------------------------------------------- bandit


def bandit_findings(target: str = BANDIT_TARGET, root: Path = ROOT) -> list[dict[str, Any]]:
    """Every bandit finding in `target` (inline `# nosec` ignored)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bandit.json"
        command = [sys.executable, "-m", "bandit", "-q", "-r", target, "--ignore-nosec", "-f", "json", "-o", str(out)]
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
        if not out.exists():
            raise SystemExit(f"bandit did not run: {done.stderr.strip()[-500:]}")
        report = json.loads(out.read_text())
    if report.get("errors"):
        raise SystemExit(f"bandit could not read some files: {report['errors']}")
    return list(report["results"])


def bandit_problems(findings: list[dict[str, Any]], accepted: list[dict[str, str]]) -> list[str]:
    """Findings no entry accepts, and entries that accept nothing."""
    used: set[int] = set()
    problems = []
    for item in findings:
        path = Path(item["filename"]).as_posix().removeprefix("./")
        match = [i for i, e in enumerate(accepted) if e["test"] == item["test_id"] and path.startswith(e["path"])]
        if match:
            used.update(match)
            continue
        problems.append(
            f"bandit {item['test_id']} ({item['issue_severity'].lower()}) {path}:{item['line_number']}: "
            f"{item['issue_text']}"
        )
    problems += [
        f"bandit exception no longer matches anything (remove it): {e['test']} {e['path']}"
        for i, e in enumerate(accepted)
        if i not in used
    ]
    return problems


# --------------------------------------------------------------------------- pip-audit


def pinned(files: tuple[Path, ...] = REQUIREMENTS) -> dict[str, str]:
    """name -> version of every `name==version` line of the requirement files."""
    pins: dict[str, str] = {}
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
            if found := PIN.match(line.strip()):
                pins[found.group(1).lower()] = found.group(3)
    return pins


def installed_closure(pins: dict[str, str]) -> dict[str, str]:
    """The pins plus everything they pull in, as installed here (name -> version): what actually runs."""
    from packaging.requirements import Requirement

    found = dict(pins)
    queue = [(name, _extras(name)) for name in pins]
    while queue:
        name, extras = queue.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not installed here (e.g. the bundled engine): its pin alone is audited
        found.setdefault(name, dist.version)
        for spec in dist.requires or []:
            req = Requirement(spec)
            envs = [{"extra": e} for e in extras or {""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            key = req.name.lower()
            if key not in found:
                found[key] = ""
                queue.append((key, set(req.extras)))
    return {name: version or _version(name) for name, version in found.items() if version or _version(name)}


def _extras(name: str) -> set[str]:
    for path in REQUIREMENTS:
        for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
            found = PIN.match(line.strip())
            if found and found.group(1).lower() == name and found.group(2):
                return {e.strip() for e in found.group(2).strip("[]").split(",")}
    return set()


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def run_pip_audit(packages: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    """pip-audit's JSON report on exactly these versions, and its error output."""
    with tempfile.TemporaryDirectory() as tmp:
        requirements, out = Path(tmp) / "requirements.txt", Path(tmp) / "audit.json"
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in sorted(packages.items())))
        command = [sys.executable, "-m", "pip_audit", "-r", str(requirements), "--no-deps", "--disable-pip",
                   "--progress-spinner", "off", "-f", "json", "-o", str(out)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
        report = json.loads(out.read_text()) if out.exists() and out.stat().st_size else None
    return report, done.stderr


def audit_problems(
    report: dict[str, Any] | None, stderr: str, accepted: list[dict[str, str]]
) -> tuple[list[str], list[str]]:
    """(known vulnerabilities no entry accepts and unused entries; what could not be audited, and why)."""
    if report is None:
        last = [ln for ln in stderr.strip().splitlines() if ln.strip()][-1:] or ["(no output)"]
        return [], [f"pip-audit could not reach a vulnerability service: {last[0][:400]}"]
    used: set[int] = set()
    problems, skipped = [], []
    for dep in report.get("dependencies", []):
        if dep.get("skip_reason"):
            skipped.append(f"{dep['name']}: {dep['skip_reason']}")
        for vuln in dep.get("vulns", []):
            ids = {vuln["id"], *vuln.get("aliases", [])}
            match = [i for i, e in enumerate(accepted) if e["id"] in ids]
            if match:
                used.update(match)
                continue
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            problems.append(f"pip-audit {dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fixed})")
    unaudited = []
    if skipped:
        unaudited.append(
            f"pip-audit could not audit {len(skipped)} packages, so their vulnerabilities are unknown; e.g. "
            f"{skipped[0]}. PyPI's per-version JSON API (https://pypi.org/pypi/<name>/<version>/json) did not answer "
            "for them: set PIP_AUDIT_VULNERABILITY_SERVICE=osv (PIP_AUDIT_OSV_URL for a mirror) where OSV is reachable"
        )
    else:  # only a complete audit can tell that an accepted advisory no longer applies
        problems += [f"pip-audit exception no longer matches anything (remove it): {e['id']}"
                     for i, e in enumerate(accepted) if i not in used]  # fmt: skip
    return problems, unaudited


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the checks; print every problem; 1 when there is any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["bandit", "pip-audit"])
    args = parser.parse_args(argv)
    accepted = load_exceptions(EXCEPTIONS)
    problems: list[str] = []
    if args.only in (None, "bandit"):
        findings = bandit_findings()
        problems += bandit_problems(findings, accepted.bandit)
        print(f"bandit: {len(findings)} findings in {BANDIT_TARGET}/, {len(accepted.bandit)} accepted entries")
    if args.only in (None, "pip-audit"):
        packages = installed_closure(pinned())
        report, stderr = run_pip_audit(packages)
        found, unaudited = audit_problems(report, stderr, accepted.audit)
        problems += found
        print(f"pip-audit: {len(packages)} pinned and installed packages")
        # No reachable vulnerability service is not a finding: said loudly, and fatal where an audit is
        # required (PIP_AUDIT_REQUIRED=1, e.g. a CI with internet access); a known vulnerability always fails.
        if unaudited and os.environ.get("PIP_AUDIT_REQUIRED") == "1":
            problems += unaudited
        for line in [] if os.environ.get("PIP_AUDIT_REQUIRED") == "1" else unaudited:
            print(f"  WARNING (not audited; PIP_AUDIT_REQUIRED=1 makes this fail) {line}")
    for problem in problems:
        print(f"  FAIL {problem}")
    if problems:
        print(f"security checks failed: fix the findings, or list them with a reason in {EXCEPTIONS.relative_to(ROOT)}")
        return 1
    print("security checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
