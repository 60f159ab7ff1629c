"""The station's FastAPI app on Ray Serve: many lines' archives and fleet views on a cluster.

    from ray import serve
    serve.run(station_deployment(StationConfig(db_url="postgresql://..."), num_replicas=2))

Every route of ``lineguard serve`` answers unchanged (``serve.ingress`` wraps the very
app :func:`lineguard.server.app.create_app` builds), recording into the station's
database: PostgreSQL once several replicas write. One route is added,
``POST /api/v1/scale/score`` (image + product -> verdict and score, nothing recorded),
for archive look-ups and fleet views: concurrent requests are gathered by
``serve.batch`` into one model call, and ``serve.multiplexed`` keeps the models of the
products a replica last served loaded, so a client that sends the
``serve_multiplexed_model_id: <product>`` header is routed to a replica that has that
product's model already. Replicas per product are a config change (``num_replicas``,
or one deployment per product group).

The PLC-facing loop stays on the station PC: a line's deadline never waits on a network
hop to a cluster.
"""
# No ``from __future__ import annotations``: FastAPI reads the route's parameter types
# (UploadFile, imported inside station_deployment) at definition time.
from typing import Any, Callable, Optional

from ..line.scale import require_ray

SCORE_ROUTE = "/api/v1/scale/score"


def station_deployment(config: Any, loader: Optional[Callable[..., Any]] = None,
                       trainer: Optional[Callable[..., Any]] = None, num_replicas: int = 1,
                       max_models_per_replica: int = 4, max_batch_size: int = 8,
                       batch_wait_timeout_s: float = 0.01, name: str = "lineguard-station") -> Any:
    """A bound Serve application (pass it to ``serve.run``) of the station app.

    ``config``: the :class:`~lineguard.line.config.StationConfig` every replica opens its
    station with; ``loader``/``trainer``: as for ``create_app`` (tests pass a fake model).
    """
    require_ray()
    from fastapi import Depends, File, Form, Request, UploadFile
    from fastapi.concurrency import run_in_threadpool
    from ray import serve

    from .app import create_app
    from .deps import require

    app = create_app(config, loader=loader, trainer=trainer)

    async def an_operator(request: Request) -> Any:
        # require("operator") itself as the dependency loses its string annotations when
        # Serve ships the class to a replica (FastAPI then took `request` for a query field)
        return await require("operator")(request, request.app.state.station, None, None)

    @serve.deployment(name=name, num_replicas=num_replicas, ray_actor_options={"num_cpus": 1})
    @serve.ingress(app)
    class StationDeployment:
        @serve.multiplexed(max_num_models_per_replica=max_models_per_replica)
        async def model_for(self, product: str) -> Any:
            station = app.state.station
            mv = await run_in_threadpool(station.models.active_for, product, "")
            return await run_in_threadpool(station.models.inspector, mv)

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s)
        async def _score(self, jobs: list[tuple[str, bytes]]) -> list[Any]:
            """One model call per product in the batch; a part that fails answers with its
            own error (returned, raised by its request) and never fails the others."""
            from ..line.errors import CorruptImage, ImageTooLarge, PhotoTooDeep
            from ..vision.errors import ImageError, ImageTooLarge as HeaderTooLarge, PhotoTooDeep as TooDeep
            from ..vision.imageio import load_photo_for
            max_pixels = app.state.station.config.max_image_pixels
            answers: dict[int, Any] = {}
            by_product: dict[str, list[int]] = {}
            for i, (product, _) in enumerate(jobs):
                by_product.setdefault(product, []).append(i)
            for product, idx in by_product.items():
                try:
                    insp = await self.model_for(product)
                except Exception as exc:  # noqa: BLE001 - no active model: each request's own 404
                    answers.update((i, exc) for i in idx)
                    continue
                ok, images = [], []
                for i in idx:
                    # as the station decodes a part: within its pixel limit, a 16-bit photo
                    # scaled by the model's camera depth (read as 16-bit, a 12-bit photo
                    # would be judged 16 times too dark)
                    try:
                        images.append(await run_in_threadpool(load_photo_for, insp, jobs[i][1], max_pixels))
                        ok.append(i)
                    except HeaderTooLarge as exc:
                        answers[i] = ImageTooLarge(f"the image {exc.problem}; send a smaller image (downscale or "
                                                   "crop it) or raise the station's pixel limit")
                    except TooDeep as exc:
                        answers[i] = PhotoTooDeep(f"the photo {exc.problem}; {exc.hint}")
                    except ImageError as exc:
                        answers[i] = CorruptImage(f"the image could not be read ({exc}); send a PNG or JPEG")
                if not images:
                    continue
                if hasattr(insp, "inspect_batch"):
                    results = await run_in_threadpool(insp.inspect_batch, images)
                else:   # an inspector without batches (the tests' fake one)
                    results = [await run_in_threadpool(insp.inspect, im) for im in images]
                for i, r in zip(ok, results):
                    answers[i] = {"product": product, "verdict": r.verdict.value, "score": float(r.score),
                                  "threshold": float(r.threshold), "regions": [g.to_dict() for g in r.regions],
                                  "model_id": r.model_id, "model_version": r.model_version,
                                  "photo_issues": list(r.photo_issues), "batch_size": len(jobs)}
            return [answers[i] for i in range(len(jobs))]

        @app.post(SCORE_ROUTE, summary="Score one part with the product's active model (nothing recorded)",
                  tags=["scale"])
        async def score(self, image: UploadFile = File(...), product: str = Form(..., min_length=1),
                        _caller: Any = Depends(an_operator)) -> dict:
            # an operator key or session, as for inspecting a part: without one, anyone on the
            # network scored photos with the plant's models (verdict, threshold, model id)
            answer = await self._score((product, await image.read()))
            if isinstance(answer, Exception):
                raise answer   # the app's handlers turn a StationError into its JSON 4xx
            return answer

    return StationDeployment.bind()
