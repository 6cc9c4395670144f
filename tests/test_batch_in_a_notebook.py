"""run_many in a real kernel: the progress bar is a widget there, and a saved notebook still shows
how the batch ended (GitHub and nbconvert draw no widgets)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kernel import KernelSession

from stackit_nb.local import LocalSTACKIT

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def kernel(local_server: LocalSTACKIT) -> Iterator[KernelSession]:
    env = {"STACKIT_API_KEY": local_server.api_key, "STACKIT_API_BASE_URL": local_server.url}
    with KernelSession(env=env) as session:
        yield session


def test_a_finished_batch_leaves_its_last_line_as_text(kernel: KernelSession) -> None:
    run = kernel.execute(
        "from stackit_nb import STACKITChatGenerator\n"
        "from stackit_nb.batch import run_many\n"
        "generator = STACKITChatGenerator(model='neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8')\n"
        "results = run_many(generator, ['Tell me a joke.', 'x' * 2_000_000, 'Hello'])\n",
        timeout=60,
    )
    assert run.error is None, run.error
    assert run.count("comm_open") >= 1  # the bar is a widget in a kernel
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("run_many: 3 of 3 done, 1 failed, tokens in/out ")
    tokens_in, tokens_out = map(int, last.rsplit(" ", 1)[1].split("/"))
    assert tokens_in > 0 and tokens_out > 0


def test_no_bar_no_line(kernel: KernelSession) -> None:
    run = kernel.execute("results = run_many(generator, ['Tell me a joke.'], progress=False)")
    assert run.error is None and run.stdout == ""
