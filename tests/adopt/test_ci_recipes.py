"""The CI recipes in examples/ci, run for real: each job's shell steps against live servers.

A recipe is only worth copying if it works, so these tests parse the YAML and run every
shell step of a job the way the CI system would (bash, the job's environment, GitHub's
`if:` on a step), in a git checkout whose origin is a local bare repository, against two
environments of the demo's loopback site (TLS edge, redirector, uvicorn + middleware).
What they skip: `uses:` actions and the step that installs rollout (this checkout's own
`rollout` is on PATH instead). The CI systems' locks (GitHub's concurrency groups,
GitLab's resource groups) cannot run here; their configuration is asserted instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml

from rollout.demo.servers import LocalEnvironment, start

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / "examples" / "ci" / "github-actions.yml"
GITLAB = ROOT / "examples" / "ci" / "gitlab-ci.yml"
EDGE = {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}
ENVS = {"staging": "staging.shop.test", "production": "shop.test"}

PLAN = """\
[policy]
content-security-policy = "default-src 'self'; object-src 'none'"
referrer-policy = "strict-origin-when-cross-origin"
x-frame-options = "DENY"
x-content-type-options = "nosniff"
csp-report-uri = "/csp-report"

[environments.staging]
urls = ["https://staging.shop.test/"]
edge = ["x-content-type-options", "x-frame-options"]
connect-to = {staging}
cacert = "staging-ca.pem"
soak = "0s"

[environments.production]
after = "staging"
urls = ["https://shop.test/"]
edge = ["x-content-type-options", "x-frame-options"]
connect-to = {production}
cacert = "production-ca.pem"
soak = "0s"
"""


@dataclass
class Checkout:
    """A clone whose stages/ the demo apps read, and the bare origin it pushes to."""

    work: Path
    origin: Path
    envs: dict[str, LocalEnvironment]

    def stage(self, env: str) -> str:
        """The environment's stage as the working copy's stage file says."""
        path = self.work / "stages" / f"{env}.toml"
        if not path.exists():
            return "off"
        return re.search(r"^stage = (\S+)", path.read_text(), re.M).group(1).strip('"')  # type: ignore[union-attr]

    def origin_log(self) -> list[str]:
        """Commit subjects on the origin's main branch, newest first."""
        out = _git(self.origin, "log", "--format=%s", "main")
        return out.splitlines()

    def origin_file(self, path: str) -> str:
        """A file as committed on the origin's main branch."""
        return _git(self.origin, "show", f"main:{path}")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[Checkout]:
    """Two live environments and a repository holding their plan, cloned as CI would."""
    work, origin = tmp_path / "work", tmp_path / "origin.git"
    stages = work / "stages"
    stages.mkdir(parents=True)
    envs: dict[str, LocalEnvironment] = {}
    try:
        for name, host in ENVS.items():
            envs[name] = start(
                tmp_path / f"srv-{name}",
                stages / f"{name}.toml",
                EDGE,
                host=host,
                subdomain=f"api.{host}",
                check_interval=0.1,
            )
            (stages / f"{name}-ca.pem").write_bytes(envs[name].ca_path.read_bytes())
        (stages / "plan.toml").write_text(
            PLAN.format(**{n: json.dumps(e.connect_to()) for n, e in envs.items()})
        )
        _git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
        _git(work, "init", "--quiet", "--initial-branch=main")
        _git(work, "-c", "user.name=t", "-c", "user.email=t@t", "add", "stages")
        _git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "plan")
        _git(work, "remote", "add", "origin", str(origin))
        _git(work, "push", "--quiet", "-u", "origin", "main")
        yield Checkout(work, origin, envs)
    finally:
        for env in envs.values():
            env.stop()


def _shell_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment a CI shell step gets: this checkout's rollout first on PATH."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_", "ROLLOUT"))}
    path = f"{Path(sys.executable).parent}{os.pathsep}{keep.get('PATH', '')}"
    # git needs an identity only where the recipe sets none; the recipes set their own.
    return {**keep, "PATH": path, "GIT_TERMINAL_PROMPT": "0", **extra}


def _bash(script: str, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    # GitHub's `shell: bash` runs `bash --noprofile --norc -eo pipefail {0}`; GitLab's
    # runner also stops at the first failing command.
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=180,
    )


# --- GitHub Actions ---------------------------------------------------------------------

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _expand(text: str, context: Mapping[str, str]) -> str:
    """Replace each ${{ expression }} by the value the test gives it; unknown ones fail."""

    def value(m: re.Match[str]) -> str:
        if m.group(1) not in context:
            pytest.fail(f"the test gives no value for ${{{{ {m.group(1)} }}}}")
        return context[m.group(1)]

    return _EXPR.sub(value, text)


@dataclass
class StepRun:
    """One `run:` step: its name and what it did."""

    name: str
    code: int
    out: str


def run_github_job(
    job_name: str, checkout: Checkout, context: Mapping[str, str], tmp: Path
) -> list[StepRun]:
    """Run a job's `run:` steps in order, honouring `if:` on steps as GitHub does."""
    workflow = yaml.safe_load(GITHUB.read_text())
    job = workflow["jobs"][job_name]
    summary = tmp / f"summary-{job_name}.md"
    env = {
        "GITHUB_REF_NAME": "main",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_WORKFLOW": workflow["name"],
        "GITHUB_JOB": job_name,
        "CI": "true",
    }
    for scope in (workflow.get("env", {}), job.get("env", {})):
        env.update({k: _expand(str(v), context) for k, v in scope.items()})
    runs: list[StepRun] = []
    failed = False
    for step in job["steps"]:
        if "run" not in step or step.get("id") == "install":
            continue
        condition = step.get("if")
        if condition is None:
            if failed:
                continue
        elif condition.replace(" ", "") not in ("${{!cancelled()}}", "always()", "${{always()}}"):
            pytest.fail(f"{job_name}: the test does not know the condition {condition!r}")
        step_env = {**env, **{k: _expand(str(v), context) for k, v in step.get("env", {}).items()}}
        done = _bash(_expand(step["run"], context), checkout.work, _shell_env(step_env))
        runs.append(
            StepRun(step.get("name", step["run"][:30]), done.returncode, done.stdout + done.stderr)
        )
        failed = failed or done.returncode != 0
    return runs


def _ok(runs: list[StepRun]) -> None:
    bad = [r for r in runs if r.code != 0]
    assert not bad, "\n".join(f"{r.name}: exit {r.code}\n{r.out}" for r in bad)


def test_github_verify_after_a_deployment(checkout: Checkout, tmp_path: Path) -> None:
    """The deployment_status job verifies the deployed environment and writes a summary."""
    context = {"github.event.deployment.environment": "staging"}
    runs = run_github_job("verify", checkout, context, tmp_path)
    _ok(runs)
    report = json.loads((checkout.work / "verify.json").read_text())
    assert (report["environment"], report["stage"], report["ok"]) == ("staging", "off", True)
    assert (tmp_path / "summary-verify.md").read_text() == "### staging stage off: verified\n"
    junit = ElementTree.parse(checkout.work / "verify.xml").getroot()
    assert int(junit.get("tests", "0")) == len(report["checks"]) and junit.get("failures") == "0"


def test_github_verify_fails_the_job_when_a_header_is_wrong(
    checkout: Checkout, tmp_path: Path
) -> None:
    """An edge that lost a header fails the verify step; the summary names the finding."""
    checkout.envs["staging"].set_edge_headers({"x-content-type-options": "nosniff"})
    runs = run_github_job(
        "verify", checkout, {"github.event.deployment.environment": "staging"}, tmp_path
    )
    assert [r.code for r in runs] == [1, 0]  # verify failed, the summary still ran
    summary = (tmp_path / "summary-verify.md").read_text().splitlines()
    assert summary[0] == "### staging stage off: 2 checks failed"
    assert "- `header.E001` page https://staging.shop.test/ x-frame-options: " in summary[1]


def _advance_context(env: str) -> dict[str, str]:
    return {"matrix.environment": env, "inputs.reason": ""}


def test_github_scheduled_advance_commits_each_environment(
    checkout: Checkout, tmp_path: Path
) -> None:
    """The schedule advances staging, then production after it, committing each stage file."""
    _ok(run_github_job("advance", checkout, _advance_context("staging"), tmp_path))
    assert checkout.stage("staging") == "0"
    _ok(run_github_job("advance", checkout, _advance_context("production"), tmp_path))
    assert checkout.stage("production") == "0"
    _ok(run_github_job("advance", checkout, _advance_context("staging"), tmp_path))
    assert checkout.stage("staging") == "1"
    assert checkout.origin_log()[:3] == [
        "rollout: staging (rollout advance)",
        "rollout: production (rollout advance)",
        "rollout: staging (rollout advance)",
    ]
    assert "stage = 1\n" in checkout.origin_file("stages/staging.toml")
    history = checkout.origin_file("stages/staging.history.jsonl").splitlines()
    assert [json.loads(line)["action"] for line in history][-2:] == ["advance", "verify"]


def test_github_scheduled_advance_waits_quietly_behind_after(
    checkout: Checkout, tmp_path: Path
) -> None:
    """Production cannot pass staging: the job says what it waits for and stays green."""
    runs = run_github_job("advance", checkout, _advance_context("production"), tmp_path)
    _ok(runs)
    assert "production stays: waiting for after" in runs[0].out
    assert checkout.stage("production") == "off"
    assert checkout.origin_log() == ["plan"]


def test_github_manual_revert_confirms_and_commits(checkout: Checkout, tmp_path: Path) -> None:
    """The manual revert steps staging back, confirms live, and commits with the reason."""
    for _ in range(2):
        _ok(run_github_job("advance", checkout, _advance_context("staging"), tmp_path))
    context = {
        "inputs.environment": "staging",
        "inputs.reason": "INC-42 login loop",
        "inputs.to": "",
        "inputs.clear_hsts && 'yes' || ''": "",
    }
    _ok(run_github_job("revert", checkout, context, tmp_path))
    assert checkout.stage("staging") == "0"
    out = json.loads((checkout.work / "revert.json").read_text())
    assert (out["ok"], out["stage"]) == (True, 0)
    last = json.loads(checkout.origin_file("stages/staging.history.jsonl").splitlines()[-2])
    assert (last["action"], last["reason"]) == ("revert", "INC-42 login loop")


def test_github_locks_are_per_environment_and_never_cancel() -> None:
    """advance and revert share one concurrency group per environment and cancel nothing;
    verify stays out of it; the schedule and the manual inputs are there."""
    workflow = yaml.safe_load(GITHUB.read_text())
    jobs = workflow["jobs"]
    assert jobs["advance"]["concurrency"] == {
        "group": "rollout-${{ matrix.environment }}",
        "cancel-in-progress": False,
    }
    assert jobs["revert"]["concurrency"] == {
        "group": "rollout-${{ inputs.environment }}",
        "cancel-in-progress": False,
    }
    assert "concurrency" not in jobs["verify"]
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"] and "deployment_status" in triggers
    assert set(triggers["workflow_dispatch"]["inputs"]) >= {"environment", "reason", "to"}


# --- GitLab CI --------------------------------------------------------------------------


def run_gitlab_job(name: str, checkout: Checkout, variables: Mapping[str, str]) -> StepRun:
    """Run a job's before_script and script in one shell, as the runner does."""
    doc = yaml.safe_load(GITLAB.read_text())
    job = doc[name]
    template: dict[str, Any] = doc[job["extends"]] if "extends" in job else {}
    env = {
        **{k: str(v) for k, v in doc.get("variables", {}).items()},
        **{k: str(v) for k, v in job.get("variables", {}).items()},
        "CI_COMMIT_BRANCH": "main",
        "CI_JOB_NAME": name,
        "CI": "true",
        # What a pipeline variable overrides: push to the test's origin, not to GitLab.
        "ROLLOUT_GIT_REMOTE": str(checkout.origin),
        **variables,
    }
    lines = [
        line
        for line in [*template.get("before_script", []), *job.get("before_script", [])]
        if "pip install" not in line
    ]
    script = "\n".join([*lines, *job["script"]])
    done = _bash(script, checkout.work, _shell_env(env))
    return StepRun(name, done.returncode, done.stdout + done.stderr)


def test_gitlab_jobs_verify_advance_and_revert(checkout: Checkout) -> None:
    """verify, the scheduled advance (twice), and the manual revert, each for real."""
    r = run_gitlab_job("rollout-verify", checkout, {"ROLLOUT_ENV": "staging"})
    assert r.code == 0, r.out
    assert json.loads((checkout.work / "verify.json").read_text())["ok"] is True
    # The file the job hands GitLab as its junit report exists and is JUnit XML.
    recipe = yaml.safe_load(GITLAB.read_text())
    assert recipe["rollout-verify"]["artifacts"]["reports"]["junit"] == "verify.xml"
    assert ElementTree.parse(checkout.work / "verify.xml").getroot().tag in (
        "testsuites",
        "testsuite",
    )
    for want in ("0", "1"):
        r = run_gitlab_job("rollout-advance", checkout, {"ROLLOUT_ENV": "staging"})
        assert r.code == 0, r.out
        assert checkout.stage("staging") == want
    r = run_gitlab_job(
        "rollout-revert",
        checkout,
        {"ROLLOUT_ENV": "staging", "ROLLOUT_REASON": "INC-7", "ROLLOUT_TO": "off"},
    )
    assert r.code == 0, r.out
    assert checkout.stage("staging") == "off"
    assert checkout.origin_log()[:3] == [
        "rollout: staging (rollout-revert)",
        "rollout: staging (rollout-advance)",
        "rollout: staging (rollout-advance)",
    ]


def test_gitlab_failed_advance_still_records_its_history(checkout: Checkout) -> None:
    """An advance whose live check fails exits 1, and its history still reaches the origin."""
    checkout.envs["staging"].set_edge_headers({})  # the edge lost its headers
    r = run_gitlab_job("rollout-advance", checkout, {"ROLLOUT_ENV": "staging"})
    assert r.code == 1, r.out
    assert checkout.stage("staging") == "off"
    history = checkout.origin_file("stages/staging.history.jsonl").splitlines()
    assert json.loads(history[-1]) | {"time": "", "user": ""} == json.loads(history[-1]) | {
        "time": "",
        "user": "",
        "action": "verify",
        "verified": False,
    }


def test_gitlab_jobs_share_one_resource_group_per_environment() -> None:
    """Every rollout job runs in `rollout-$ROLLOUT_ENV`; advance on schedules, revert by hand."""
    doc = yaml.safe_load(GITLAB.read_text())
    assert doc[".rollout"]["resource_group"] == "rollout-$ROLLOUT_ENV"
    for name in ("rollout-verify", "rollout-advance", "rollout-revert"):
        assert doc[name]["extends"] == ".rollout"
    assert doc["rollout-advance"]["rules"][0]["if"].startswith('$CI_PIPELINE_SOURCE == "schedule"')
    assert doc["rollout-revert"]["rules"][0]["when"] == "manual"
