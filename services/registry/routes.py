"""The registry's internal HTTP API, answered only for the gateway (internal token)."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Response
from fastapi.encoders import jsonable_encoder

from libs.kit.errors import BadRequest, FieldError, ValidationFailed
from libs.kit.http import Caller, read_model_scope
from services.registry import domain, store
from services.registry.handlers import RegistryHandlers
from services.registry.schemas import ModelCreate, ModelListQuery, ModelOut, ModelPage, ModelPatch


def model_out(model: domain.Model) -> ModelOut:
    return ModelOut(**model.state(), status=model.status)


def parse_if_match(value: str | None) -> int | None:
    """ETags are the model revision, quoted: ``If-Match: "3"``."""
    if value is None:
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise BadRequest(f"If-Match must be a revision ETag like \"3\", got {value!r}") from None


def parse_tag_filters(values: list[str]) -> list[tuple[str, str | None]]:
    filters = []
    for raw in values:
        key, sep, value = raw.partition(":")
        if not key:
            raise ValidationFailed("tag: empty tag key", errors=[FieldError("tag", "use key or key:value")])
        filters.append((key, value if sep else None))
    return filters


def build_router(handlers: RegistryHandlers, caller_dep) -> APIRouter:
    router = APIRouter(prefix="/internal/models", tags=["models"])
    CallerDep = Annotated[Caller, Depends(caller_dep)]

    @router.post("", status_code=201, response_model=ModelOut)
    async def register(body: ModelCreate, caller: CallerDep, response: Response) -> ModelOut:
        model = await handlers.register(domain.Registration(**body.model_dump(exclude={"model_path"})), caller)
        response.headers["Location"] = f"/api/v1/models/{model.id}"
        response.headers["ETag"] = f'"{model.revision}"'
        return model_out(model)

    async def _list(query: ModelListQuery, model_ids: list[UUID] | None) -> ModelPage:
        if model_ids is not None and not model_ids:
            return ModelPage(total=0, page=query.page, page_size=query.page_size, models=[])
        total, models = await store.list_live(
            handlers.rt.pool,
            type=query.type.value if query.type else None,
            framework=query.framework,
            task=query.task,
            owner=query.owner,
            tags=parse_tag_filters(query.tag),
            q=query.q,
            sort=query.sort,
            limit=query.page_size,
            offset=(query.page - 1) * query.page_size,
            model_ids=model_ids,
        )
        return ModelPage(total=total, page=query.page, page_size=query.page_size, models=[model_out(m) for m in models])

    @router.get("", response_model=ModelPage)
    async def list_models(caller: CallerDep, query: Annotated[ModelListQuery, Depends()]) -> ModelPage:
        return await _list(query, None)

    @router.post("/scoped", response_model=ModelPage)
    async def list_scoped_models(caller: CallerDep, query: Annotated[ModelListQuery, Depends()],
                                 model_ids: Annotated[list[UUID], Depends(read_model_scope)]) -> ModelPage:
        """The same listing restricted to the models in the body (``ModelScope``): the gateway sends it for
        a caller whose role cannot read every model. Filters and paging apply within the scope."""
        return await _list(query, model_ids)

    @router.get("/{model_ref}", response_model=ModelOut)
    async def get_model(model_ref: str, caller: CallerDep, response: Response) -> ModelOut:
        model = await handlers.get(model_ref)
        response.headers["ETag"] = f'"{model.revision}"'
        return model_out(model)

    async def _update(model_ref: str, body: ModelPatch, caller: Caller, if_match: str | None, response: Response):
        patch = jsonable_encoder(body.model_dump(exclude_unset=True))
        model = await handlers.update(model_ref, patch, caller, if_match=parse_if_match(if_match))
        response.headers["ETag"] = f'"{model.revision}"'
        return model_out(model)

    @router.patch("/{model_ref}", response_model=ModelOut)
    async def patch_model(
        model_ref: str, body: ModelPatch, caller: CallerDep, response: Response,
        if_match: str | None = Header(None),
    ) -> ModelOut:
        return await _update(model_ref, body, caller, if_match, response)

    @router.put("/{model_ref}", response_model=ModelOut)
    async def put_model(
        model_ref: str, body: ModelPatch, caller: CallerDep, response: Response,
        if_match: str | None = Header(None),
    ) -> ModelOut:
        return await _update(model_ref, body, caller, if_match, response)

    @router.delete("/{model_ref}", status_code=204)
    async def delete_model(model_ref: str, caller: CallerDep, if_match: str | None = Header(None)) -> Response:
        await handlers.delete(model_ref, caller, if_match=parse_if_match(if_match))
        return Response(status_code=204)

    return router


def build_types_router(caller_dep) -> APIRouter:
    router = APIRouter(prefix="/internal/model-types", tags=["models"])

    @router.get("")
    async def model_types(caller: Annotated[Caller, Depends(caller_dep)]) -> dict:
        """JSON Schema of the typed metadata each model type accepts."""
        return {t.value: schema.model_json_schema() for t, schema in domain.METADATA_SCHEMAS.items()}

    return router
