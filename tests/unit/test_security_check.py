"""The security checks of the test command (scripts/security_check.py): bandit findings fail unless the one
reviewed file accepts them (inline `# nosec` hides nothing), stale entries fail, and pip-audit results — a
vulnerability, a package it could not audit, a service it could not reach — fail with a message saying which."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import security_check as check

SHELL_CALL = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)  # nosec\n"


def test_the_code_passes_bandit_with_the_reviewed_exceptions() -> None:
    accepted = check.load_exceptions(check.EXCEPTIONS)
    assert check.bandit_problems(check.bandit_findings(), accepted.bandit) == []


def test_an_unlisted_finding_fails_and_nosec_does_not_hide_it(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "tool.py").write_text(SHELL_CALL)
    findings = check.bandit_findings("pkg", root=tmp_path)
    problems = check.bandit_problems(findings, [])
    assert any(p.startswith("bandit B602 (high) pkg/tool.py:5:") for p in problems), problems
    accepted = [{"test": "B602", "path": "pkg/tool.py", "reason": "r"}, {"test": "B404", "path": "pkg/", "reason": "r"}]
    assert check.bandit_problems(findings, accepted) == []
    other = [{"test": "B602", "path": "elsewhere/", "reason": "r"}, {"test": "B404", "path": "pkg/", "reason": "r"}]
    problems = check.bandit_problems(findings, other)
    assert any("B602" in p and "pkg/tool.py:5" in p for p in problems)  # accepted for another path only
    assert "bandit exception no longer matches anything (remove it): B602 elsewhere/" in problems


def test_an_entry_without_a_reason_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "exceptions.toml"
    path.write_text('[[bandit]]\ntest = "B101"\npath = "rubin_app/"\n')
    with pytest.raises(SystemExit, match="lacks reason"):
        check.load_exceptions(path)
    path.write_text('[[pip-audit]]\nreason = "why"\n')
    with pytest.raises(SystemExit, match="lacks id"):
        check.load_exceptions(path)


def _report(*deps: dict[str, object]) -> dict[str, object]:
    """A report in pip-audit's JSON format (`-f json`)."""
    return {"dependencies": list(deps), "fixes": []}


VULN = {"id": "PYSEC-2099-1", "aliases": ["GHSA-aaaa-bbbb-cccc", "CVE-2099-1"], "fix_versions": ["2.0.1"]}


def test_a_vulnerability_fails_unless_accepted_by_id_or_alias() -> None:
    fine = {"name": "fine", "version": "1", "vulns": []}
    report = _report({"name": "somepkg", "version": "2.0.0", "vulns": [VULN]}, fine)
    assert check.audit_problems(report, "", []) == (["pip-audit somepkg 2.0.0: PYSEC-2099-1 (fixed in: 2.0.1)"], [])
    accepted = [{"id": "GHSA-aaaa-bbbb-cccc", "package": "somepkg", "reason": "not reachable from our code"}]
    assert check.audit_problems(report, "", accepted) == ([], [])
    stale = [{"id": "GHSA-zzzz-zzzz-zzzz", "reason": "gone"}]
    assert check.audit_problems(_report(fine), "", stale) == (
        ["pip-audit exception no longer matches anything (remove it): GHSA-zzzz-zzzz-zzzz"],
        [],
    )


def test_packages_that_could_not_be_audited_are_reported_with_the_reason() -> None:
    """Not a finding (a warning; fatal with PIP_AUDIT_REQUIRED=1); a vulnerability found next to it still fails."""
    skipped = {"name": "reflex", "version": "0.10.1", "skip_reason": "Dependency not found on PyPI"}
    vulnerable = {"name": "somepkg", "version": "2.0.0", "vulns": [VULN]}
    found, [problem] = check.audit_problems(_report(skipped, vulnerable), "", [])
    assert found == ["pip-audit somepkg 2.0.0: PYSEC-2099-1 (fixed in: 2.0.1)"]
    assert "could not audit 1 packages" in problem and "reflex: Dependency not found on PyPI" in problem
    assert "PIP_AUDIT_VULNERABILITY_SERVICE=osv" in problem


def test_an_unreachable_service_is_reported_with_its_error() -> None:
    stderr = "Traceback ...\nrequests.exceptions.ConnectionError: Failed to resolve 'api.osv.dev'\n"
    found, [problem] = check.audit_problems(None, stderr, [])
    assert found == []
    assert problem.startswith("pip-audit could not reach a vulnerability service: ")
    assert "api.osv.dev" in problem


def test_the_audit_covers_what_the_pins_pull_in() -> None:
    pins = check.pinned()
    assert pins["httpx"] and pins["reflex"]
    closure = check.installed_closure(pins)
    assert closure["httpx"] == pins["httpx"]
    assert closure["httpcore"]  # httpx's own dependency, not pinned by us: audited as installed
    assert "pytest" not in closure  # test tools are not shipped
