"""A client generated from openapi.yaml by openapi-python-client keeps every documented response,
and reads an error code it does not know (one added later) instead of failing.

Run with the venv `make pytools` makes: target/pytools/bin/python scripts/openapi-client-check.py
"""

import importlib
import pathlib
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEC = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "openapi.yaml"
GENERATOR = pathlib.Path(sys.executable).parent / "openapi-python-client"


def main() -> int:
    spec = yaml.safe_load(SPEC.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "client"
        run = subprocess.run(
            [str(GENERATOR), "generate", "--path", str(SPEC), "--meta", "none", "--output-path", str(out)],
            capture_output=True,
            text=True,
        )
        report = run.stdout + run.stderr
        if run.returncode != 0:
            print(report)
            return 1
        # A warning other than the missing formatter means something was left out.
        warnings = [
            line
            for line in report.splitlines()
            if line.strip() and "ruff" not in line and "Skipping Integration" not in line
            and not line.startswith(("Generating", "Warning(s) encountered", "If you believe"))
        ]
        if warnings:
            print("generator warnings:\n" + "\n".join(warnings))
            return 1
        sys.path.insert(0, tmp)
        failures = []
        checked = 0
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                module = importlib.import_module(f"client.api.default.{snake(operation['operationId'])}")
                source = pathlib.Path(module.__file__).read_text()
                for status in operation["responses"]:
                    checked += 1
                    if f"response.status_code == {status}" not in source:
                        failures.append(f"{method.upper()} {path} {status}: dropped by the generator")
        # A body with a code added after the client was generated: read as a plain string.
        models = importlib.import_module("client.models")
        for name in ("ListUsersResponse401", "ListUsersResponse503"):
            model = getattr(models, name)
            body = {"error": "some_future_code", "message": "m", "request_id": "r1"}
            try:
                parsed = model.from_dict(body)
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                failures.append(f"{name}: an unknown code raised {type(e).__name__}: {e}")
                continue
            if str(parsed.error) != "some_future_code":
                failures.append(f"{name}: read {parsed.error!r}")
        if failures:
            print("\n".join(failures))
            return 1
        print(f"openapi-python-client keeps all {checked} documented responses; unknown error codes read as strings")
        return 0


def snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


if __name__ == "__main__":
    sys.exit(main())
