"""Import cost: what a user types, each in a fresh interpreter, many times, median.

``from stackit_nb import STACKITChatGenerator`` against Haystack's own
``from haystack.components.generators.chat import OpenAIChatGenerator`` (goal <= 1.15x: widgets,
pillow and the local server must load lazily), and bare ``import stackit_nb`` against an empty
interpreter. A last check lists which heavy modules each import actually loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from _common import Row, interleave, report

REPEAT = 5
STATEMENTS = {
    "interpreter only": "pass",
    "import stackit_nb": "import stackit_nb",
    "from stackit_nb import STACKITChatGenerator": "from stackit_nb import STACKITChatGenerator",
    "Haystack OpenAIChatGenerator": (
        "from haystack.components.generators.chat import OpenAIChatGenerator"
    ),
}
# loaded only when used: the notebook widgets, pillow, the local server and its web stack
LAZY = (
    "ipywidgets",
    "PIL",
    "uvicorn",
    "fastapi",
    "starlette",
    "stackit_nb.local",
    "tqdm",
    "matplotlib",
)
ENV = {**os.environ, "HAYSTACK_TELEMETRY_ENABLED": "False"}


def fresh(statement: str) -> None:
    subprocess.run([sys.executable, "-c", statement], check=True, env=ENV)


def loaded_modules(statement: str) -> list[str]:
    probe = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, env=ENV, capture_output=True, text=True
    ).stdout
    return json.loads(out)


def main() -> None:
    samples = interleave(
        {name: (lambda s=statement: fresh(s)) for name, statement in STATEMENTS.items()}, REPEAT
    )
    generator = samples["from stackit_nb import STACKITChatGenerator"]
    haystack = samples["Haystack OpenAIChatGenerator"]
    bare = samples["import stackit_nb"]
    empty = samples["interpreter only"]
    net = {
        name: [t - e for t, e in zip(values, empty, strict=True)]
        for name, values in samples.items()
        if name != "interpreter only"
    }

    # what our imports load of the lazy set beyond what Haystack's own import already loads
    # (Haystack itself imports pillow for its ImageContent)
    haystack_modules = set(loaded_modules(STATEMENTS["Haystack OpenAIChatGenerator"]))
    heavy = {}
    for name in ("import stackit_nb", "from stackit_nb import STACKITChatGenerator"):
        extra = set(loaded_modules(STATEMENTS[name])) - haystack_modules
        heavy[name] = sorted(
            {lazy for lazy in LAZY for m in extra if m == lazy or m.startswith(lazy + ".")}
        )
    bare_modules = loaded_modules("import stackit_nb")
    bare_heavy = [m for m in ("haystack", "openai", "pydantic") if m in bare_modules]

    rows = [
        Row.ratio_of(
            "from stackit_nb import STACKITChatGenerator",
            generator,
            "from haystack...chat import OpenAIChatGenerator",
            haystack,
            at_most=1.15,
        ),
        Row.ratio_of(
            "  same, interpreter start-up subtracted",
            net["from stackit_nb import STACKITChatGenerator"],
            "OpenAIChatGenerator, same",
            net["Haystack OpenAIChatGenerator"],
        ),
        Row.ratio_of("import stackit_nb", bare, "python -c pass", empty),
        Row.check(
            "lazy modules loaded beyond Haystack's",
            not any(heavy.values()),
            "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in heavy.items()),
            "none",
        ),
        Row.check(
            "bare import loads no haystack/openai",
            not bare_heavy,
            ", ".join(bare_heavy) or "none",
            "none",
        ),
    ]
    report(
        "import",
        rows,
        {**samples, **{f"{k} (net)": v for k, v in net.items()}},
        notes=[f"median of {REPEAT} fresh interpreters each, interleaved; pyc caches warm"],
        extra={"heavy_modules_loaded": heavy},
    )


if __name__ == "__main__":
    main()
