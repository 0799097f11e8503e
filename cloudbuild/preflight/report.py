"""What preflight tells: a readable summary, and the full state as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudbuild.preflight.session import Session

OUTPUT_TAIL = 3000  # characters of a failed step's output worth showing


def state(session: Session, prediction: dict | None, experiment: dict | None) -> dict[str, Any]:
    images = [json.loads(p.read_text()) for p in sorted(session.images.glob("*.json"))]
    folder = session.double.storage.local_path(session.config.bucket, "models")
    # Every branch's LATEST pointer, by branch slug.
    models = {p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("*/LATEST"))}
    return {
        "branch": session.branch,
        "commit": session.sha,
        "builds": session.builds,
        "images": images,
        "models": models,
        "services": session.double.run.services(),
        "prediction": prediction,
        "experiment": experiment,
    }


def summary(found: dict[str, Any]) -> str:
    lines = [
        f"Preflight of a push of {found['branch']!r} at {found['commit'][:7]} "
        f"changing {', '.join(found['changed'])}",
        f"fires: {', '.join(found['triggers'])}",
        "",
    ]
    for build in found["builds"]:
        lines.append(
            f"build {build['trigger']:<24} {build['status']:<9} {build['seconds']:7.1f} s"
            f"   (branch {build['branch']})"
        )
        if build.get("error"):
            lines.append(f"  refused before any step: {build['error']}")
        for step in build["steps"]:
            lines.append(f"  {step['id']:<22} {step['status']:<9} {step['seconds']:7.1f} s")
        failed = next((s for s in build["steps"] if s["status"] in ("FAILURE", "TIMEOUT")), None)
        if failed:
            lines.append(f"  step {failed['id']!r} failed; its output ends:")
            lines.extend("    | " + line for line in failed["output"][-OUTPUT_TAIL:].splitlines())
    if found.get("images"):
        lines.append("")
        lines.append("images (recorded, not built):")
        lines.extend(f"  {image['image']}" for image in found["images"])
    if found.get("models"):
        lines.append("")
        lines.append("models (LATEST pointers):")
        for slug, pointer in sorted(found["models"].items()):
            lines.append(
                f"  {slug}: {pointer.get('model_uri')} (commit {pointer.get('commit', '')[:7]})"
            )
    if found.get("services"):
        lines.append("")
        lines.append("Cloud Run services:")
        for service in found["services"]:
            lines.append(f"  {service['name']}  {service.get('url', '')}")
            for entry in service.get("traffic", []):
                tag = f" tag {entry['tag']} {entry.get('url', '')}" if entry.get("tag") else ""
                lines.append(f"    {entry.get('percent', 0):>3}% {entry.get('revision', '')}{tag}")
            if service.get("invokers"):
                lines.append(f"    invokers: {', '.join(service['invokers'])}")
    prediction = found.get("prediction")
    lines.append("")
    if prediction:
        lines.append(
            f"prediction via {prediction['via']}: POST {prediction['url']} -> "
            f"{prediction['status']} in {prediction['milliseconds']} ms"
        )
        lines.append("  " + json.dumps(prediction["response"])[:1500])
    else:
        lines.append("prediction: none (nothing was deployed by this push)")
    experiment = found.get("experiment")
    if experiment:
        document = experiment["document"]
        lines.append("")
        if not document["variants"]:
            lines.append("A/B experiment: none running (published config has no variants)")
        else:
            lines.append(
                f"A/B experiment {document['experiment']!r} (control {document['control']!r}),"
                " one gateway route per variant:"
            )
        for variant, answer in zip(document["variants"], experiment["predictions"], strict=True):
            response = answer["response"]
            model = response.get("model", {}) if isinstance(response, dict) else {}
            lines.append(
                f"  {variant['name']:<12} {variant['weight']:>3}%  POST {variant['route']} -> "
                f"{answer['status']} (model {model.get('commit', '?')[:7]} of "
                f"{model.get('branch', '?')}, branch {variant['branch']})"
            )
    return "\n".join(lines)


def write_json(path: Path | None, found: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found, indent=2, default=str))
