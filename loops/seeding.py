"""The seeded loop templates: loops/loop_templates/NN-<slug>.json, each a loop in the JSON format of
loops.services.specs (with a "description"), in the gallery in file order. Seeded by a data migration; rows are
matched by slug and brought up to date."""

import json
from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent / "loop_templates"


def template_specs() -> list[tuple[str, dict]]:
    """(slug, spec) of each template file, in gallery order."""
    return [(path.stem.split("-", 1)[1], json.loads(path.read_text())) for path in sorted(TEMPLATES_DIR.glob("*.json"))]


def templates_seed(template_model) -> None:
    """Create or update the templates, with the (historical, in a migration) LoopTemplate model given."""
    for position, (slug, spec) in enumerate(template_specs(), start=1):
        template_model.objects.update_or_create(
            slug=slug,
            defaults={
                "name": spec["name"],
                "description": spec.get("description", ""),
                "spec": spec,
                "position": position,
            },
        )
