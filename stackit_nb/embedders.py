"""STACKITTextEmbedder and STACKITDocumentEmbedder: embeddings from STACKIT's model serving."""

from __future__ import annotations

from typing import Any, ClassVar

import openai
from haystack import Document, component, default_from_dict, default_to_dict
from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
from haystack.utils import Secret

from stackit_nb import errors
from stackit_nb._common import (
    DEFAULT_API_BASE_URL,
    DEFAULT_API_KEY,
    AsyncClientPerLoop,
    client_settings,
    compatible_init_parameters,
    resolve_base_url,
)
from stackit_nb._scrub import secret_kept_out
from stackit_nb._trust import check_loaded_settings

_EMBEDDING_MODELS = ["intfloat/e5-mistral-7b-instruct", "Qwen/Qwen3-VL-Embedding-8B"]
_REFERENCE_PACKAGE = "haystack_integrations.components.embedders.stackit"


class _STACKITEmbedding(AsyncClientPerLoop):
    """What both embedders share: the key and URL rules, and helpful errors."""

    api_key: Secret
    api_base_url: str | None
    model: str
    timeout: float | None
    max_retries: int | None
    client: openai.OpenAI | None
    async_client: openai.AsyncOpenAI | None

    @property
    def resolved_api_base_url(self) -> str:
        """The URL requests go to (``api_base_url`` after the ``STACKIT_API_BASE_URL`` rule)."""
        return resolve_base_url(self.api_base_url)

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "api_key": errors.resolve_api_key(self.api_key),
            "base_url": self.resolved_api_base_url,
            **client_settings(self.timeout, self.max_retries),
        }

    def warm_up(self) -> None:
        """Create the OpenAI client (once), wrapped so that its errors say what to do."""
        super().warm_up()  # type: ignore[misc]
        if self.client is not None and not isinstance(self.client, _ExplainingClient):
            self.client = _ExplainingClient(self.client, self.model)  # type: ignore[assignment]

    async def warm_up_async(self) -> None:
        """Create the async OpenAI client for the running event loop, wrapped like the sync one."""
        await super().warm_up_async()
        client = self.async_client
        if client is not None and not isinstance(client, _ExplainingClient):
            self.async_client = _ExplainingClient(client, self.model)  # type: ignore[assignment]


class _ExplainingClient:
    """An OpenAI client whose ``embeddings.create`` raises :mod:`stackit_nb.errors`' errors.

    Both embedders call ``embeddings.create`` inside Haystack's code; here is the one place
    that sees every failure. The text embedder raises the helpful error; the document embedder
    (like the reference) logs it per failed batch, which works for a body that is not JSON
    too, since the helpful error for that is an ``openai.APIError``. Everything else is the
    wrapped client's.
    """

    def __init__(self, client: Any, model: str) -> None:
        self._client = client
        self.embeddings = _ExplainingEmbeddings(client, model)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _ExplainingEmbeddings:
    def __init__(self, client: Any, model: str) -> None:
        self._client, self._model = client, model
        self._is_async = isinstance(client, openai.AsyncOpenAI)

    def create(self, **kwargs: Any) -> Any:
        if self._is_async:
            return self._acreate(**kwargs)
        with secret_kept_out(self._client):  # the key leaves in no error, chain included
            try:
                return self._client.embeddings.create(**kwargs)
            except errors.EXPLAINABLE as exc:
                client, model = self._client, self._model
                better = errors.explain_from(exc, client, model=model, kind="embedding")
                if better is None:
                    raise
                raise better from exc

    async def _acreate(self, **kwargs: Any) -> Any:
        with secret_kept_out(self._client):
            try:
                return await self._client.embeddings.create(**kwargs)
            except errors.EXPLAINABLE as exc:
                client, model = self._client, self._model
                better = await errors.aexplain_from(exc, client, model=model, kind="embedding")
                if better is None:
                    raise
                raise better from exc


@component
class STACKITTextEmbedder(_STACKITEmbedding, OpenAITextEmbedder):
    """Embeds a string with a STACKIT embedding model.

    A drop-in for ``stackit-haystack``'s ``STACKITTextEmbedder``: ``run(text)`` returns
    ``{"embedding": [...], "meta": {"model", "usage"}}``; ``run_async`` too. Left at its default
    URL it follows ``STACKIT_API_BASE_URL`` (set by ``stackit_nb.connect()``).

    :param model: The embedding model id.
    :param api_key: The STACKIT auth token; default from ``STACKIT_API_KEY`` at first run.
    :param api_base_url: The endpoint (see above).
    :param prefix: Text added before the input.
    :param suffix: Text added after the input.
    :param dimensions: Output size, for models that support it (``Qwen/Qwen3-VL-Embedding-8B``).
    :param timeout: Seconds per request; default ``OPENAI_TIMEOUT`` or 30.
    :param max_retries: Retries; default ``OPENAI_MAX_RETRIES`` or 5.
    :param http_client_kwargs: Keyword arguments for a custom ``httpx`` client.

    Example::

        from stackit_nb import STACKITTextEmbedder

        embedder = STACKITTextEmbedder(model="intfloat/e5-mistral-7b-instruct")
        print(len(embedder.run("I love pizza!")["embedding"]))
    """

    SUPPORTED_MODELS: ClassVar[list[str]] = _EMBEDDING_MODELS
    """A non-exhaustive list of embedding models; ``stackit_nb.list_models()`` asks the endpoint."""

    def __init__(
        self,
        model: str,
        api_key: Secret = DEFAULT_API_KEY,
        api_base_url: str | None = DEFAULT_API_BASE_URL,
        prefix: str = "",
        suffix: str = "",
        *,
        dimensions: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        http_client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Create a STACKITTextEmbedder (parameters in the class docstring)."""
        # explicit form: @component rebuilds the class, so zero-argument super() would misbind
        super(STACKITTextEmbedder, self).__init__(  # noqa: UP008
            api_key=api_key,
            model=model,
            dimensions=dimensions,
            api_base_url=api_base_url,
            organization=None,
            prefix=prefix,
            suffix=suffix,
            timeout=timeout,
            max_retries=max_retries,
            http_client_kwargs=http_client_kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        """Serialize with the reference's ``init_parameters`` keys (no secret in it)."""
        return default_to_dict(
            self,
            api_key=self.api_key.to_dict(),
            model=self.model,
            dimensions=self.dimensions,
            api_base_url=self.api_base_url,
            prefix=self.prefix,
            suffix=self.suffix,
            timeout=self.timeout,
            max_retries=self.max_retries,
            http_client_kwargs=self.http_client_kwargs,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> STACKITTextEmbedder:
        """Deserialize from :meth:`to_dict`'s output or a reference ``stackit-haystack`` dict."""
        reference = (
            f"{_REFERENCE_PACKAGE}.text_embedder.STACKITTextEmbedder",
            f"{_REFERENCE_PACKAGE}.STACKITTextEmbedder",
        )
        data = compatible_init_parameters(cls, data, reference)
        check_loaded_settings(cls, data["init_parameters"])
        return default_from_dict(cls, data)

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(self, text: str) -> dict[str, Any]:
        """Embed ``text``; returns ``{"embedding": list[float], "meta": {...}}``."""
        return super(STACKITTextEmbedder, self).run(text)  # noqa: UP008

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(self, text: str) -> dict[str, Any]:
        """Embed ``text`` without blocking the event loop."""
        return await super(STACKITTextEmbedder, self).run_async(text)  # noqa: UP008


@component
class STACKITDocumentEmbedder(_STACKITEmbedding, OpenAIDocumentEmbedder):
    """Embeds Documents with a STACKIT embedding model, in batches, with a progress bar.

    A drop-in for ``stackit-haystack``'s ``STACKITDocumentEmbedder``: ``run(documents)`` returns
    ``{"documents": [...with .embedding], "meta": {"model", "usage"}}``; ``run_async`` too. As in
    the reference, a failed batch is logged and its documents come back without embeddings.

    :param model: The embedding model id.
    :param api_key: The STACKIT auth token; default from ``STACKIT_API_KEY`` at first run.
    :param api_base_url: The endpoint; left at its default it follows ``STACKIT_API_BASE_URL``.
    :param prefix: Text added before each document's text.
    :param suffix: Text added after each document's text.
    :param batch_size: Documents per request.
    :param progress_bar: Show a tqdm progress bar.
    :param meta_fields_to_embed: Meta fields embedded along with the text.
    :param embedding_separator: Separator between meta fields and the text.
    :param dimensions: Output size, for models that support it.
    :param timeout: Seconds per request.
    :param max_retries: Retries per request.
    :param http_client_kwargs: Keyword arguments for a custom ``httpx`` client.

    Example::

        from haystack import Document
        from stackit_nb import STACKITDocumentEmbedder

        embedder = STACKITDocumentEmbedder(model="intfloat/e5-mistral-7b-instruct")
        docs = embedder.run([Document(content="I love pizza!")])["documents"]
    """

    SUPPORTED_MODELS: ClassVar[list[str]] = _EMBEDDING_MODELS
    """A non-exhaustive list of embedding models; ``stackit_nb.list_models()`` asks the endpoint."""

    def __init__(
        self,
        model: str,
        api_key: Secret = DEFAULT_API_KEY,
        api_base_url: str | None = DEFAULT_API_BASE_URL,
        prefix: str = "",
        suffix: str = "",
        batch_size: int = 32,
        progress_bar: bool = True,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        *,
        dimensions: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        http_client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Create a STACKITDocumentEmbedder (parameters in the class docstring)."""
        super(STACKITDocumentEmbedder, self).__init__(  # noqa: UP008
            api_key=api_key,
            model=model,
            dimensions=dimensions,
            api_base_url=api_base_url,
            organization=None,
            prefix=prefix,
            suffix=suffix,
            batch_size=batch_size,
            progress_bar=progress_bar,
            meta_fields_to_embed=meta_fields_to_embed,
            embedding_separator=embedding_separator,
            timeout=timeout,
            max_retries=max_retries,
            http_client_kwargs=http_client_kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        """Serialize with the reference's ``init_parameters`` keys (no secret in it)."""
        return default_to_dict(
            self,
            model=self.model,
            dimensions=self.dimensions,
            api_key=self.api_key.to_dict(),
            api_base_url=self.api_base_url,
            prefix=self.prefix,
            suffix=self.suffix,
            batch_size=self.batch_size,
            progress_bar=self.progress_bar,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            timeout=self.timeout,
            max_retries=self.max_retries,
            http_client_kwargs=self.http_client_kwargs,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> STACKITDocumentEmbedder:
        """Deserialize from :meth:`to_dict`'s output or a reference ``stackit-haystack`` dict."""
        reference = (
            f"{_REFERENCE_PACKAGE}.document_embedder.STACKITDocumentEmbedder",
            f"{_REFERENCE_PACKAGE}.STACKITDocumentEmbedder",
        )
        data = compatible_init_parameters(cls, data, reference)
        check_loaded_settings(cls, data["init_parameters"])
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """Embed ``documents``; returns ``{"documents": [...], "meta": {...}}``."""
        return super(STACKITDocumentEmbedder, self).run(documents)  # noqa: UP008

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        """Embed ``documents`` without blocking the event loop."""
        return await super(STACKITDocumentEmbedder, self).run_async(documents)  # noqa: UP008
